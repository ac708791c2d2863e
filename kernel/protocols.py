"""The interfaces at the boundaries. One real implementation each; `rag.services` picks it from settings."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from kernel.filters import FieldType, FilterSpec
from kernel.types import ChunkRecord, ChunkSelector, ChunkState, Hit, SparseVector

SearchMode = Literal["hybrid", "dense", "sparse"]


@dataclass(frozen=True)
class SearchPlan:
    """`limit` hits, fused by reciprocal rank fusion (`rrf_k`) from `candidates` dense and `candidates` sparse ones."""

    limit: int
    candidates: int
    mode: SearchMode = "hybrid"
    rrf_k: int = 60


class Embedder(Protocol):
    """Dense text encoder. Blocking: callers run it in a thread."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class PassageChecker(Protocol):
    """The support checker seen from retrieval and generation: does a passage answer a question. Blocking."""

    def answers(self, question: str, passages: Sequence[str]) -> list[float]:
        """For each passage, the probability that it answers the question."""
        ...


class Redactor(Protocol):
    """Replaces personal data (names, e-mails, phones, cards, IBANs) with typed placeholders such as "<EMAIL>".
    Blocking and CPU-bound: callers run it in a thread."""

    def redact(self, text: str) -> str: ...

    def redact_many(self, texts: Sequence[str]) -> list[str]: ...


class SparseEncoder(Protocol):
    """BM25-style term vectors; the store applies IDF at query time."""

    def encode_document(self, text: str) -> SparseVector: ...

    def encode_query(self, text: str) -> SparseVector: ...


class StoredVectors(Protocol):
    """Dense vectors already in the vector store, found by the text they encode: the embedding cache."""

    async def dense_by_text(self, model_id: str, text_sha256: Sequence[str]) -> dict[str, list[float]]:
        """{sha256 of a chunk's text: its dense vector} for the chunks made by `model_id` whose text has one of
        these digests, in any state and collection (a vector depends only on the text and the model)."""
        ...


class SampledVectors(Protocol):
    """Dense vectors of a selection of chunks, for statistics (a collection's mean embedding, for query drift)."""

    async def sample_dense(self, selector: ChunkSelector, limit: int) -> list[list[float]]:
        """Up to `limit` dense vectors of the chunks `selector` picks, in the store's own order (not random)."""
        ...


class SentenceVectors(Protocol):
    """Vectors of the sentences extractive answers are chosen from, encoded at ingestion so that answering need not
    encode them again. Keyed by the model and the sha256 of the sentence as encoded (`kernel.text.answer_sentences`)."""

    async def get(self, model_id: str, text_sha256: Sequence[str]) -> dict[str, list[float]]:
        """{digest: vector} for the digests stored for `model_id`; the others are missing."""
        ...

    async def put(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None: ...

    async def hold(self, model_id: str, generation: int, refs: Mapping[tuple[str, int], Collection[str]]) -> None:
        """Record which sentences (digests) the chunks of each (document, version) in `generation` have: a vector
        is kept while a chunk that has its sentence is (the catalog deletes the others)."""
        ...


class VectorStore(StoredVectors, SampledVectors, Protocol):
    """Chunk records with a dense and a sparse vector. Blocking or not, every method is async here."""

    async def ensure(self, dim: int) -> None:
        """Create the collection and its payload indexes if missing; check the dimension if present."""
        ...

    async def upsert(self, records: Sequence[ChunkRecord]) -> None: ...

    async def set_state(self, selector: ChunkSelector, state: ChunkState) -> None: ...

    async def delete(self, selector: ChunkSelector) -> None: ...

    async def count(self, selector: ChunkSelector) -> int: ...

    async def drop_generations(self, collection: str, keep: int) -> None:
        """Delete the collection's chunks of every generation but `keep`, chunks without a generation included:
        what a reindex does once queries see the new generation (`rag reindex`)."""
        ...

    async def ensure_field_index(self, field: str, type_: FieldType) -> None:
        """Index a payload field (e.g. `metadata.year`) so filters on it are fast and allowed."""
        ...

    async def search(self, dense: list[float], sparse: SparseVector, spec: FilterSpec, plan: SearchPlan) -> list[Hit]:
        """Active chunks matching `spec`: dense and sparse candidates fused with reciprocal rank fusion."""
        ...

    async def ping(self) -> None:
        """Raise TransientError when the store cannot be reached."""
        ...

    async def close(self) -> None: ...

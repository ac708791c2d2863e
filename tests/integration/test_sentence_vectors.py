"""Sentence vectors stored at ingestion: extractive answers read them instead of encoding their candidate sentences,
and come out the same as answers that encode them (documents indexed without them, or the setting off). A reindex
stores the new generation's sentences too, and deleting documents and collections deletes the vectors of sentences
no kept chunk has."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import sqlalchemy as sa

from ingestion.reindex import ChunkSizes
from kernel.protocols import Embedder
from rag.generation.extractive import ExtractiveGenerator
from rag.pipeline import to_contexts
from rag.prompts.registry import load_prompt
from rag.reindex import reindex_collection
from rag.services import Services
from rag.storage.schema import sentence_refs, sentence_vectors
from rag.storage.sentence_vectors import SentenceVectorStore
from tests.integration.test_reindex import QUESTIONS as REINDEX_QUESTIONS
from tests.integration.test_reindex import records as reindex_records
from tests.support.service import RunningService, create_collection, import_records

GATE = Path(__file__).resolve().parents[1] / "data" / "gate"


class CountingEmbedder:
    """The real embedder, counting the texts each call encodes."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.texts = 0

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def max_tokens(self) -> int:
        return self._inner.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts += len(texts)
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.texts += 1
        return self._inner.embed_query(text)


def _gate(name: str) -> list[dict]:
    with (GATE / name).open() as fh:
        return [json.loads(line) for line in fh]


async def test_answers_read_stored_sentence_vectors_and_stay_the_same(
    own_service: Callable[..., Awaitable[RunningService]],
) -> None:
    svc = await own_service({"cache": {"sentence_vectors": True}, "scoring": {"enabled": False}})
    client, services = svc.client, svc.services
    name = await create_collection(client, "gate")
    records = [{"id": d["id"], "title": d["title"], "text": d["text"]} for d in _gate("documents.jsonl")]
    await import_records(client, name, records)

    store = SentenceVectorStore(services.catalog.engine)
    stored = CountingEmbedder(services.embedder)
    plain = CountingEmbedder(services.embedder)
    with_vectors = ExtractiveGenerator(stored, sentence_vectors=store)
    without = ExtractiveGenerator(plain)  # what an index without sentence vectors, or the setting off, gives
    prompt = load_prompt("grounded_answer")
    questions = [q["question"] for q in _gate("questions.jsonl")]
    for question in questions:
        contexts = to_contexts((await services.retriever.retrieve(question, [name])).hits[:5])
        a = await with_vectors.generate(question, contexts, prompt)
        b = await without.generate(question, contexts, prompt)
        assert a.text == b.text and a.text
        assert a.evidence is not None and b.evidence is not None and abs(a.evidence - b.evidence) < 1e-4
    # Stored: only the question is encoded. Without: the question and up to 24 sentences, every time.
    assert stored.texts == len(questions)
    assert plain.texts > 5 * len(questions)


async def _stored(services: Services) -> tuple[set[str], set[tuple[str, int]]]:
    """The digests of the stored vectors, and the (document, generation) pairs the references name."""
    async with services.catalog.engine.connect() as conn:
        vectors: set[str] = set((await conn.execute(sa.select(sentence_vectors.c.text_sha256))).scalars())
        rows = await conn.execute(sa.select(sentence_refs.c.document_id, sentence_refs.c.generation))
        refs = {(r.document_id, r.generation) for r in rows}
    return vectors, refs


async def test_a_reindex_stores_its_sentences_and_deletes_release_them(
    own_service: Callable[..., Awaitable[RunningService]],
) -> None:
    svc = await own_service({"cache": {"sentence_vectors": True}, "scoring": {"enabled": False}})
    client, services = svc.client, svc.services
    name = await create_collection(client, "rechunked")
    await import_records(client, name, reindex_records())
    assert (await _stored(services))[0]
    async with services.catalog.engine.begin() as conn:
        # As the upgrade to 0015 leaves documents indexed before it: no vectors (a reindex is how they come back).
        await conn.execute(sentence_refs.delete())
        await conn.execute(sentence_vectors.delete())

    await reindex_collection(services, name, ChunkSizes(48, 8), drain_seconds=0)
    after, refs = await _stored(services)
    assert after and {g for _, g in refs} == {1}

    # Answering over the new generation encodes the question only: every sentence's vector is stored.
    stored = CountingEmbedder(services.embedder)
    generator = ExtractiveGenerator(stored, sentence_vectors=SentenceVectorStore(services.catalog.engine))
    prompt = load_prompt("grounded_answer")
    for question in REINDEX_QUESTIONS:
        hits = (await services.retriever.retrieve(question, [name])).hits[:5]
        assert {h.payload["generation"] for h in hits} == {1}
        assert (await generator.generate(question, to_contexts(hits), prompt)).text
    assert stored.texts == len(REINDEX_QUESTIONS)

    # A deleted document's references go, and the vectors of the sentences only it had.
    gone = (await client.get(f"/v1/collections/{name}/documents")).json()[0]["document_id"]
    assert (await client.delete(f"/v1/documents/{gone}")).status_code == 204
    left, refs = await _stored(services)
    assert left < after and gone not in {d for d, _ in refs}
    # Deleting the collection leaves none of its sentences' vectors behind.
    assert (await client.delete(f"/v1/collections/{name}")).status_code == 204
    assert await _stored(services) == (set(), set())

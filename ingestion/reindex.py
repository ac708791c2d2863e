"""Rebuilding a collection's chunks into a new generation (`rag reindex`): every indexed version is parsed again
from its stored bytes, chunked with the given sizes and embedded with the given model, and written beside the live
generation, which queries keep seeing until the catalog switches (see `rag.reindex`).

Chunks of the new generation are written in their final state (active or retired, as their version): the
generation filter alone keeps them from queries until the switch. Memory stays bounded: documents are loaded one at
a time and chunks are embedded and written a group at a time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ingestion.chunk import chunk_elements
from ingestion.load import DocumentParser, Loaded, Loader
from ingestion.payload import Stamp, chunk_payload
from ingestion.reuse import ReusingEncoder
from ingestion.sentences import SentenceEncoder
from kernel.cache_stats import CacheStats
from kernel.errors import InvalidInput, RagError
from kernel.ports import BlobReader, DocumentCatalog, WriteGuard
from kernel.protocols import Embedder, Redactor, SparseEncoder, StoredVectors, VectorStore
from kernel.records import IndexedVersion, JobItem
from kernel.types import Chunk, ChunkRecord, ChunkSelector, ChunkState, ParsedElement, VersionStatus

# Chunks per embedding round, as in ingestion jobs.
GROUP = 256
Progress = Callable[[int, int], None]  # (versions done, versions in all)


@dataclass(frozen=True)
class ChunkSizes:
    """The chunking of the new generation, checked against the model that embeds it."""

    max_tokens: int
    overlap_tokens: int

    def check(self, embedder: Embedder) -> None:
        limit = embedder.max_tokens - 2
        if not 32 <= self.max_tokens <= limit:
            raise InvalidInput(
                f"chunk size {self.max_tokens} tokens is out of range: {embedder.model_id} takes 32 to {limit}"
            )
        if not 0 <= self.overlap_tokens * 2 <= self.max_tokens:
            raise InvalidInput(
                f"chunk overlap {self.overlap_tokens} tokens must be between 0 and half the chunk size "
                f"({self.max_tokens // 2})"
            )


def reindex_chunk_id(collection: str, generation: int, item: JobItem, index: int) -> str:
    key = f"rag-reindex:{collection}:{generation}:{item.document_id}:{item.version}:{index}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


@dataclass
class Rebuilder:
    """Writes one new generation of a collection's chunks; the caller switches to it (or drops it on failure)."""

    blobs: BlobReader
    parser: DocumentParser
    store: VectorStore
    embedder: Embedder
    sparse: SparseEncoder
    documents: DocumentCatalog
    guard: WriteGuard
    encode_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The collection's policy redacts personal data before indexing: then its reindex does too.
    redactor: Redactor | None = None
    # Vectors of texts already stored (a chunking change keeps many texts): reused rather than encoded again.
    stored_vectors: StoredVectors | None = None
    # Stores the new chunks' answer sentences' vectors, as ingestion does (the indexer's SentenceEncoder); None:
    # answers over the new generation encode them.
    sentences: SentenceEncoder | None = None

    async def build(
        self, items: Sequence[JobItem], generation: int, sizes: ChunkSizes, progress: Progress | None = None
    ) -> list[IndexedVersion]:
        """Write every version's chunks into `generation`; returns each version still present, with its count.

        A version that no longer parses fails the whole build (RagError): the live generation stays whole."""
        sizes.check(self.embedder)
        if not items:
            return []
        collection = items[0].collection
        stamp = Stamp(f"reindex-{collection}-g{generation}", self.embedder.model_id, _now(), generation)
        await self.store.delete(ChunkSelector(collection=collection, generation=generation))  # a failed run's
        counts: dict[tuple[str, int], int] = {}
        pending: list[tuple[JobItem, Chunk]] = []
        done = 0
        loader = Loader(self.blobs, self.parser)
        for loads in (
            loader.load("import", [i for i in items if i.record_index is not None]),
            loader.load("ingest", [i for i in items if i.record_index is None]),
        ):
            async for item, elements in _each(loads):
                if isinstance(elements, str):
                    raise RagError(f"{item.filename} (document {item.document_id}) no longer parses: {elements}")
                chunks = await asyncio.to_thread(self._chunk, await self._redact(elements), sizes)
                counts[(item.document_id, item.version)] = len(chunks)
                pending.extend((item, c) for c in chunks)
                while len(pending) >= GROUP:
                    await self._write(stamp, pending[:GROUP])
                    del pending[:GROUP]
                done += 1
                if progress is not None:
                    progress(done, len(items))
        if pending:
            await self._write(stamp, pending)
        return [IndexedVersion(doc, version, n) for (doc, version), n in counts.items()]

    def _chunk(self, elements: Sequence[ParsedElement], sizes: ChunkSizes) -> list[Chunk]:
        return chunk_elements(elements, self.embedder.count_tokens, sizes.max_tokens, sizes.overlap_tokens)

    async def _redact(self, elements: list[ParsedElement]) -> list[ParsedElement]:
        if self.redactor is None:
            return elements
        texts = [t for e in elements for t in (e.text, e.section or "")]
        async with self.encode_lock:
            redacted = iter(await asyncio.to_thread(self.redactor.redact_many, texts))
        clean = []
        for e in elements:
            text, section = next(redacted), next(redacted)
            clean.append(e.model_copy(update={"text": text, "section": section if e.section is not None else None}))
        return clean

    async def _write(self, stamp: Stamp, group: Sequence[tuple[JobItem, Chunk]]) -> None:
        texts = [c.text for _, c in group]
        encoder = ReusingEncoder(self.embedder, self.stored_vectors, CacheStats())
        dense = (await encoder.embed(texts, self.encode_lock)).vectors
        if self.sentences is not None:
            await self.sentences.store_for(group, stamp.generation, self.encode_lock)
        records = await asyncio.to_thread(self._records, stamp, group, dense)
        collection = group[0][0].collection
        async with self.guard.hold(collection):
            # Under the guard, as ingestion: a document deleted meanwhile must not get chunks back.
            alive = {d for d in {item.document_id for item, _ in group} if await self.documents.exists(d)}
            kept = [r for (item, _), r in zip(group, records, strict=True) if item.document_id in alive]
            if kept:
                await self.store.upsert(kept)

    def _records(
        self, stamp: Stamp, group: Sequence[tuple[JobItem, Chunk]], dense: list[list[float]]
    ) -> list[ChunkRecord]:
        return [
            ChunkRecord(
                id=reindex_chunk_id(item.collection, stamp.generation, item, c.index),
                dense=vec,
                sparse=self.sparse.encode_document(c.text),
                payload=chunk_payload(stamp, item, c, _state(item)),
            )
            for (item, c), vec in zip(group, dense, strict=True)
        ]


def _state(item: JobItem) -> ChunkState:
    return ChunkState.active if item.status == VersionStatus.active else ChunkState.retired


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _each(loads: AsyncIterator[Loaded]) -> AsyncIterator[Loaded]:
    try:
        async for loaded in loads:
            yield loaded
    finally:
        await loads.aclose()  # type: ignore[attr-defined]  # an async generator at runtime

"""The ingestion pipeline of one job: parse, chunk, embed, index, then switch versions atomically.

A job is idempotent: chunk ids are derived from (document, version, chunk index), a rerun first clears what an
interrupted run staged, and versions that were already switched are not indexed again. It is also cancellable:
deleting its documents (or their collection) makes it skip their chunks and stop once none is left, and it
writes chunks only under the collection's write guard, after checking that their documents still exist.
Memory stays bounded: documents are loaded and chunked one at a time into a spill file, then embedded a batch at
a time (see `ingestion.load` and `ingestion.spill`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ingestion.chunk import chunk_elements
from ingestion.live import LiveVersions
from ingestion.load import DocumentParser, Loaded, Loader
from ingestion.parse.sandbox import ParseSandbox
from ingestion.payload import Stamp, chunk_payload
from ingestion.reuse import ReusingEncoder
from ingestion.sentences import SentenceEncoder
from ingestion.spill import ChunkSpill
from kernel.cache_stats import CacheStats
from kernel.errors import NotFound
from kernel.ports import (
    BlobReader,
    DocumentCatalog,
    GenerationReader,
    JobLedger,
    PolicyReader,
    VersionLedger,
    WriteGuard,
)
from kernel.protocols import Embedder, Redactor, SparseEncoder, StoredVectors, VectorStore
from kernel.records import IndexedVersion, Job, JobItem
from kernel.settings import ChunkingSettings, IngestionSettings
from kernel.types import (
    Chunk,
    ChunkRecord,
    ChunkSelector,
    ChunkState,
    JobStage,
    JobStatus,
    ParsedElement,
    SparseVector,
    VersionStatus,
)

log = logging.getLogger(__name__)

# Chunks per embedding round: large enough to batch well, small enough for frequent progress (and for a delete to
# be noticed soon: a job checks for one before every round).
EMBED_GROUP = 256
# Chunks read back from the spill at once and sorted by length, which keeps padding (wasted encoding) low.
BATCH_CHUNKS = 4096
# Import records loaded between two checks for a delete, while a job is still loading.
_CHECK_EVERY = 64
# How often a job waiting for a document to load (parse) checks whether it was deleted meanwhile.
PARSE_CHECK_SECONDS = 1.0
_ENDED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
_CANCELLED = "cancelled: its documents were deleted before they were indexed"


async def _next_while_alive(loads: AsyncIterator[Loaded], live: LiveVersions) -> Loaded | None:
    """The next loaded document, or None at the end or once a delete leaves the job nothing to index.

    A parse may take up to the parse timeout (minutes); the job checks for a delete while it waits, and a parse it
    no longer needs is cancelled, which kills the parser process working on it."""

    async def pull() -> Loaded | None:
        return await anext(loads, None)

    step = asyncio.ensure_future(pull())
    try:
        while True:
            done, _ = await asyncio.wait({step}, timeout=PARSE_CHECK_SECONDS)
            if done:
                return step.result()
            await live.refresh()
            if live.none_left:
                return None
    finally:
        if not step.done():
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await step


def chunk_id(job_id: str, document_id: str, version: int, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rag-chunk:{job_id}:{document_id}:{version}:{index}"))


@dataclass
class Indexer:
    """Runs ingestion jobs: reads the catalog's jobs and versions, the blobs, and writes the vector store."""

    jobs: JobLedger
    versions: VersionLedger
    documents: DocumentCatalog
    blobs: BlobReader
    store: VectorStore
    embedder: Embedder
    sparse: SparseEncoder
    ingestion: IngestionSettings
    chunking: ChunkingSettings
    # The collection's policy decides whether chunk text is redacted before it is embedded and stored.
    policies: PolicyReader
    redactor: Redactor
    guard: WriteGuard
    # Serialises encoding: two jobs encoding at once on a small machine only thrash the same cores.
    encode_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # None: a parser process with the limits of `ingestion` (ParseSandbox), started on first use.
    parser: DocumentParser | None = None
    # Where jobs spill chunks; None: the system's temporary directory.
    work_dir: Path | None = None
    # The embedding cache (ingestion/reuse.py): vectors of chunk texts already stored; None encodes every chunk.
    stored_vectors: StoredVectors | None = None
    cache_stats: CacheStats = field(default_factory=CacheStats)
    # Chunks are written into their collection's live generation (`rag reindex`); None: generation 0.
    generations: GenerationReader | None = None
    # Encodes and stores the candidate answer sentences' vectors (ingestion/sentences.py); None: answering encodes
    # them. Its embedder is the plain one the answers read with: sentences are not chunks embedded in the metrics.
    sentences: SentenceEncoder | None = None

    def __post_init__(self) -> None:
        # A parser process this indexer starts is also the one it stops (`close`).
        self._sandbox: ParseSandbox | None = None
        parser = self.parser
        if parser is None:
            parser = self._sandbox = ParseSandbox(self.ingestion)
        self._loader = Loader(self.blobs, parser)

    async def close(self) -> None:
        """Stop the parser process, if this indexer started one."""
        if self._sandbox is not None:
            await self._sandbox.close()

    async def run(self, job_id: str) -> JobStatus | None:
        """Run the job to its end; returns how it ended (None: the job no longer exists)."""
        try:
            job = await self.jobs.get(job_id)
        except NotFound:
            log.info("job %s no longer exists: its collection was deleted", job_id)
            return None
        if job.status in _ENDED:
            return job.status  # a duplicate delivery of a finished job, or one cancelled while it was queued
        try:
            redact = (await self.policies.policies([job.collection]))[job.collection].pii == "redact_ingest"
        except NotFound:
            log.info("job %s no longer has a collection: it was deleted", job_id)
            return None
        attempts = await self.jobs.started(job_id)
        if attempts is None:
            return JobStatus.cancelled  # ended between the two reads: only a delete ends a job from outside
        limit = self.ingestion.max_tries + 1
        if attempts > limit:
            # The process died during every attempt (out of memory, killed): stop the crash loop.
            await self.jobs.finished(
                job_id, JobStatus.failed, f"gave up after {attempts - 1} attempts that never finished (worker stopped)"
            )
            return JobStatus.failed
        items = await self.jobs.items(job_id)
        if not items:
            await self.jobs.finished(job_id, JobStatus.cancelled, _CANCELLED)
            return JobStatus.cancelled
        spill = await asyncio.to_thread(ChunkSpill, self.work_dir)
        try:
            return await self._run(job, items, spill, redact)
        finally:
            await asyncio.to_thread(spill.close)

    async def _run(self, job: Job, items: Sequence[JobItem], spill: ChunkSpill, redact: bool) -> JobStatus:
        job_id = job.job_id
        live = LiveVersions(self.versions, job_id, items)
        pending = [i for i in items if i.status == VersionStatus.queued]
        switched = [i for i in items if i.status == VersionStatus.active]
        failures = await self._prepare(job, pending, spill, live, redact)
        if live.none_left:
            return JobStatus.cancelled
        if not spill.documents and not switched:
            reason = failures[0][1] if len(failures) == 1 else f"all {len(failures)} documents failed"
            await self.jobs.finished(job_id, JobStatus.failed, reason)
            return JobStatus.failed

        await self._clear_staged(job_id, [item for item, _ in spill.documents], bool(switched))
        if not await self._embed_and_upsert(job, spill, live):
            return JobStatus.cancelled

        await self.jobs.progress(job_id, JobStage.indexing)
        await self._switch(job_id, spill.documents, switched)
        note = None
        if failures:
            note = f"{len(failures)} of {len(items)} documents failed; first: {failures[0][1]}"
        await self.jobs.finished(job_id, JobStatus.succeeded, note)
        return JobStatus.succeeded

    async def _prepare(
        self, job: Job, pending: Sequence[JobItem], spill: ChunkSpill, live: LiveVersions, redact: bool
    ) -> list[tuple[JobItem, str]]:
        """Load and chunk every pending document into the spill (redacted first when `redact`: the collection's
        policy is redact_ingest); returns those that failed, with the reason.

        Stops early when a delete leaves the job nothing to index (then `live.none_left`)."""
        imports = job.kind == "import"
        await self.jobs.progress(job.job_id, JobStage.chunking if imports else JobStage.parsing)
        failures: list[tuple[JobItem, str]] = []
        loads = self._loader.load(job.kind, pending)
        n = 0
        try:
            while (step := await _next_while_alive(loads, live)) is not None:
                item, loaded = step
                n += 1
                if not imports or n % _CHECK_EVERY == 0:
                    await live.refresh()
                if live.none_left:
                    return failures
                if not live.has(item):
                    continue
                reason = loaded if isinstance(loaded, str) else await self._spill(job, item, loaded, spill, redact)
                if reason is not None:
                    failures.append((item, reason))
                    await self.versions.failed(item.document_id, item.version, reason)
        finally:
            await loads.aclose()
        await live.refresh()
        return failures

    async def _spill(
        self, job: Job, item: JobItem, elements: list[ParsedElement], spill: ChunkSpill, redact: bool
    ) -> str | None:
        """Chunk one document into the spill (its elements redacted first when `redact`); why it cannot be indexed,
        or None. A redactor failure raises, which fails the job: never index the raw text of a collection that asked
        for redaction."""
        if job.kind != "import":
            await self.jobs.progress(job.job_id, JobStage.chunking)
        if redact:
            elements = await self._redact(elements)
        chunks = await asyncio.to_thread(self._chunk, elements)
        reason = self._refusal(item, chunks)
        if reason is None:
            await asyncio.to_thread(spill.add, item, chunks)
        return reason

    async def _redact(self, elements: Sequence[ParsedElement]) -> list[ParsedElement]:
        """One document's elements with personal data replaced by placeholders, before chunking: chunk sizes are
        counted on the text that is stored, and the overlap between chunks is not analysed twice. Section titles
        too, since they are stored with every chunk. A failure fails the job (retried like any other): never index
        the raw text of a collection that asked for redaction."""
        texts = [t for e in elements for t in (e.text, e.section or "")]
        async with self.encode_lock:  # CPU-bound like encoding: two at once only thrash the same cores
            redacted = iter(await asyncio.to_thread(self.redactor.redact_many, texts))
        clean = []
        for e in elements:
            text, section = next(redacted), next(redacted)
            clean.append(e.model_copy(update={"text": text, "section": section if e.section is not None else None}))
        return clean

    def _chunk(self, elements: Sequence[ParsedElement]) -> list[Chunk]:
        budget = min(self.chunking.max_tokens, self.embedder.max_tokens - 2)
        overlap = min(self.chunking.overlap_tokens, budget // 2)
        return chunk_elements(elements, self.embedder.count_tokens, budget, overlap)

    def _refusal(self, item: JobItem, chunks: Sequence[Chunk]) -> str | None:
        if not chunks:
            return f"{item.filename} contains no text to index"
        limit = self.ingestion.max_document_chunks
        if len(chunks) > limit:
            return (
                f"{item.filename} makes {len(chunks):,} chunks; the limit is {limit:,} per document "
                "(RAG_INGESTION__MAX_DOCUMENT_CHUNKS): split it into smaller documents"
            )
        return None

    async def _clear_staged(self, job_id: str, prepared: Sequence[JobItem], some_switched: bool) -> None:
        """Remove what an interrupted run of this job wrote, so a rerun leaves no orphaned chunk."""
        if not some_switched:
            await self.store.delete(ChunkSelector(job_id=job_id))
            return
        for item in prepared:
            await self.store.delete(ChunkSelector(document_id=item.document_id, version=item.version))

    async def _embed_and_upsert(self, job: Job, spill: ChunkSpill, live: LiveVersions) -> bool:
        """Embed and write every chunk in the spill; False when a delete left the job nothing to index."""
        await self.jobs.progress(job.job_id, JobStage.embedding, done=0, total=spill.chunks)
        created = datetime.now(UTC).isoformat()
        batches = spill.batches(BATCH_CHUNKS)
        done = 0
        while batch := await asyncio.to_thread(next, batches, None):
            # Encoding in order of length keeps padding (wasted work) low, as the raw encoder does on a whole corpus.
            batch.sort(key=lambda pair: pair[1].tokens)
            for start in range(0, len(batch), EMBED_GROUP):
                group = batch[start : start + EMBED_GROUP]
                if not await self._embed_group(job, group, live, created):
                    return False
                done += len(group)
                await self.jobs.progress(job.job_id, JobStage.embedding, done=done)
        return True

    async def _embed_group(
        self, job: Job, group: Sequence[tuple[JobItem, Chunk]], live: LiveVersions, created: str
    ) -> bool:
        await live.refresh()
        group = [(item, chunk) for item, chunk in group if live.has(item)]
        if not group:
            return not live.none_left
        texts = [c.text for _, c in group]
        encoder = ReusingEncoder(self.embedder, self.stored_vectors, self.cache_stats)  # the embedder of the moment
        dense = (await encoder.embed(texts, self.encode_lock)).vectors
        # Stable while the job runs: a reindex does not start while a job of its collection is unfinished.
        generation = 0 if self.generations is None else await self.generations.generation(job.collection)
        if self.sentences is not None:
            await self.sentences.store_for(group, generation, self.encode_lock)
        sparse = await asyncio.to_thread(self._encode_sparse, texts)
        stamp = Stamp(job.job_id, self.embedder.model_id, created, generation)
        # In a thread: the payloads scan every chunk's text for injection flags.
        payloads = await asyncio.to_thread(lambda: [chunk_payload(stamp, i, c, ChunkState.staged) for i, c in group])
        records = [
            ChunkRecord(id=chunk_id(job.job_id, i.document_id, i.version, c.index), dense=vec, sparse=sp, payload=p)
            for (i, c), vec, sp, p in zip(group, dense, sparse, payloads, strict=True)
        ]
        async with self.guard.hold(job.collection):
            # Again under the guard: a delete that ran while this group was being encoded has the last word.
            await live.refresh()
            records = [r for (item, _), r in zip(group, records, strict=True) if live.has(item)]
            if records:
                await self.store.upsert(records)
        return not live.none_left

    def _encode_sparse(self, texts: list[str]) -> list[SparseVector]:
        return [self.sparse.encode_document(t) for t in texts]

    async def _switch(self, job_id: str, prepared: Sequence[tuple[JobItem, int]], switched: Sequence[JobItem]) -> None:
        # New chunks turn active before the catalog switches and old ones retire after it: a search that keeps
        # only chunks of the catalog's active version sees exactly one version at every instant.
        await self.store.set_state(ChunkSelector(job_id=job_id, state=ChunkState.staged), ChunkState.active)
        activations = await self.versions.activate(
            job_id,
            [IndexedVersion(item.document_id, item.version, count) for item, count in prepared],
            self.embedder.model_id,
        )
        activated = {a.document_id for a in activations}
        for item, _ in prepared:
            if item.document_id not in activated:
                # Deleted while this job ran: its chunks must not outlive it.
                await self.store.delete(ChunkSelector(job_id=job_id, document_id=item.document_id))
        documents = {a.document_id for a in activations if a.previous is not None or a.superseded}
        documents |= {i.document_id for i in switched}
        for document_id in sorted(documents):
            await self.retire_old_versions(document_id)

    async def retire_old_versions(self, document_id: str) -> None:
        """Mark the chunks of every retired version retired, and delete those beyond the rollback window."""
        if not await self.documents.exists(document_id):
            return
        detail = await self.documents.get(document_id)
        for v in detail.versions:
            if v.status == VersionStatus.retired:
                await self.store.set_state(
                    ChunkSelector(document_id=document_id, version=v.version), ChunkState.retired
                )
        purge = await self.versions.beyond(document_id, self.ingestion.keep_versions)
        for version in purge:
            await self.store.delete(ChunkSelector(document_id=document_id, version=version))
        await self.versions.mark_purged(document_id, purge)

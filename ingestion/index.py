"""The ingestion pipeline of one job: parse, chunk, embed, index, then switch versions atomically.

A job is idempotent: chunk ids are derived from (document, version, chunk index), a rerun first clears what an
interrupted run staged, and versions that were already switched are not indexed again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ingestion.chunk import chunk_elements
from ingestion.records import parse_jsonl, record_elements
from kernel.errors import DocumentError, NotFound
from kernel.injection import injection_flags
from kernel.ports import BlobReader, DocumentCatalog, JobLedger, PolicyReader, VersionLedger
from kernel.protocols import Embedder, Redactor, SparseEncoder, VectorStore
from kernel.records import IndexedVersion, JobItem
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

# Chunks per embedding round: large enough to batch well, small enough for frequent progress.
EMBED_GROUP = 256


@dataclass
class Prepared:
    item: JobItem
    chunks: list[Chunk]


def _flag_all(texts: list[str]) -> list[list[str]]:
    """Each chunk's flags: "injection" when its text addresses the model (indirect injection); answers exclude or
    quote such chunks by their collection's policy."""
    return [injection_flags(t) for t in texts]


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
    # Serialises encoding: two jobs encoding at once on a small machine only thrash the same cores.
    encode_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self, job_id: str) -> JobStatus | None:
        """Run the job to its end; returns how it ended (None: the job no longer exists)."""
        try:
            job = await self.jobs.get(job_id)
        except NotFound:
            log.info("job %s no longer exists: its collection was deleted", job_id)
            return None
        if job.status in (JobStatus.succeeded, JobStatus.failed):
            return job.status  # a duplicate delivery of a finished job
        try:
            redact = (await self.policies.policies([job.collection]))[job.collection].pii == "redact_ingest"
        except NotFound:
            log.info("job %s no longer has a collection: it was deleted", job_id)
            return None
        attempts = await self.jobs.started(job_id)
        limit = self.ingestion.max_tries + 1
        if attempts > limit:
            # The process died during every attempt (out of memory, killed): stop the crash loop.
            await self.jobs.finished(
                job_id, JobStatus.failed, f"gave up after {attempts - 1} attempts that never finished (worker stopped)"
            )
            return JobStatus.failed
        items = await self.jobs.items(job_id)
        if not items:
            await self.jobs.finished(job_id, JobStatus.failed, "nothing to index: the document was deleted")
            return JobStatus.failed
        pending = [i for i in items if i.status == VersionStatus.queued]
        switched = [i for i in items if i.status == VersionStatus.active]

        await self.jobs.progress(job_id, JobStage.parsing)
        elements, failures = await self._load(job.kind, pending)
        for item, error in failures:
            await self.versions.failed(item.document_id, item.version, error)

        await self.jobs.progress(job_id, JobStage.chunking)
        if redact:
            elements = await self._redact(elements)
        prepared, empty = await asyncio.to_thread(self._chunk_all, elements)
        for item in empty:
            reason = f"{item.filename} contains no text to index"
            failures.append((item, reason))
            await self.versions.failed(item.document_id, item.version, reason)

        if not prepared and not switched:
            reason = failures[0][1] if len(failures) == 1 else f"all {len(failures)} documents failed"
            await self.jobs.finished(job_id, JobStatus.failed, reason)
            return JobStatus.failed

        await self._clear_staged(job_id, prepared, bool(switched))
        await self._embed_and_upsert(job_id, prepared)

        await self.jobs.progress(job_id, JobStage.indexing)
        await self._switch(job_id, prepared, switched)
        note = None
        if failures:
            note = f"{len(failures)} of {len(items)} documents failed; first: {failures[0][1]}"
        await self.jobs.finished(job_id, JobStatus.succeeded, note)
        return JobStatus.succeeded

    async def _load(
        self, kind: str, items: Sequence[JobItem]
    ) -> tuple[list[tuple[JobItem, list[ParsedElement]]], list[tuple[JobItem, str]]]:
        loaded: list[tuple[JobItem, list[ParsedElement]]] = []
        failures: list[tuple[JobItem, str]] = []
        if kind == "import":
            bodies: dict[str, list] = {}
            for item in items:
                if item.blob not in bodies:
                    body = await asyncio.to_thread(self.blobs.get, item.blob)
                    bodies[item.blob] = await asyncio.to_thread(parse_jsonl, body)
                assert item.record_index is not None
                loaded.append((item, record_elements(bodies[item.blob][item.record_index])))
            return loaded, failures
        from ingestion.parse import parse_document

        for item in items:
            data = await asyncio.to_thread(self.blobs.get, item.blob)
            try:
                loaded.append((item, await asyncio.to_thread(parse_document, data, item.filename)))
            except DocumentError as exc:
                failures.append((item, exc.message))
        return loaded, failures

    async def _redact(
        self, loaded: Sequence[tuple[JobItem, list[ParsedElement]]]
    ) -> list[tuple[JobItem, list[ParsedElement]]]:
        """The elements with personal data replaced by placeholders, before chunking: chunk sizes are counted on
        the text that is stored, and the overlap between chunks is not analysed twice. Section titles too, since
        they are stored with every chunk. A failure fails the job (retried like any other): never index the raw
        text of a collection that asked for redaction."""
        texts = [t for _, elements in loaded for e in elements for t in (e.text, e.section or "")]
        async with self.encode_lock:  # CPU-bound like encoding: two at once only thrash the same cores
            redacted = iter(await asyncio.to_thread(self.redactor.redact_many, texts))
        out = []
        for item, elements in loaded:
            clean = []
            for e in elements:
                text, section = next(redacted), next(redacted)
                clean.append(e.model_copy(update={"text": text, "section": section if e.section is not None else None}))
            out.append((item, clean))
        return out

    def _chunk_all(self, loaded: Sequence[tuple[JobItem, list[ParsedElement]]]) -> tuple[list[Prepared], list[JobItem]]:
        budget = min(self.chunking.max_tokens, self.embedder.max_tokens - 2)
        overlap = min(self.chunking.overlap_tokens, budget // 2)
        prepared, empty = [], []
        for item, elements in loaded:
            chunks = chunk_elements(elements, self.embedder.count_tokens, budget, overlap)
            (prepared.append(Prepared(item, chunks)) if chunks else empty.append(item))
        return prepared, empty

    async def _clear_staged(self, job_id: str, prepared: Sequence[Prepared], some_switched: bool) -> None:
        """Remove what an interrupted run of this job wrote, so a rerun leaves no orphaned chunk."""
        if not some_switched:
            await self.store.delete(ChunkSelector(job_id=job_id))
            return
        for p in prepared:
            await self.store.delete(ChunkSelector(document_id=p.item.document_id, version=p.item.version))

    async def _embed_and_upsert(self, job_id: str, prepared: Sequence[Prepared]) -> None:
        flat = [(p, c) for p in prepared for c in p.chunks]
        # Encoding in order of length keeps padding (wasted work) low, as the raw encoder does on a whole corpus.
        flat.sort(key=lambda pc: pc[1].tokens)
        total = len(flat)
        await self.jobs.progress(job_id, JobStage.embedding, done=0, total=total)
        created = datetime.now(UTC).isoformat()
        for start in range(0, total, EMBED_GROUP):
            group = flat[start : start + EMBED_GROUP]
            texts = [c.text for _, c in group]
            async with self.encode_lock:
                dense = await asyncio.to_thread(self.embedder.embed_documents, texts)
            sparse = await asyncio.to_thread(self._encode_sparse, texts)
            flags = await asyncio.to_thread(_flag_all, texts)
            records = [
                ChunkRecord(
                    id=chunk_id(job_id, p.item.document_id, p.item.version, c.index),
                    dense=vec,
                    sparse=sp,
                    payload={**self._payload(job_id, p.item, c, created), "flags": flag},
                )
                for (p, c), vec, sp, flag in zip(group, dense, sparse, flags, strict=True)
            ]
            await self.store.upsert(records)
            await self.jobs.progress(job_id, JobStage.embedding, done=start + len(group))

    def _encode_sparse(self, texts: list[str]) -> list[SparseVector]:
        return [self.sparse.encode_document(t) for t in texts]

    def _payload(self, job_id: str, item: JobItem, chunk: Chunk, created: str) -> dict:
        return {
            "collection": item.collection,
            "document_id": item.document_id,
            "version": item.version,
            "chunk_index": chunk.index,
            "text": chunk.text,
            "tokens": chunk.tokens,
            "page": chunk.page,
            "page_end": chunk.page_end,
            "section": chunk.section,
            "element_types": chunk.element_types,
            "filename": item.filename,
            "kind": item.kind,
            "content_sha256": item.sha256,
            "model_id": self.embedder.model_id,
            "job_id": job_id,
            "state": ChunkState.staged.value,
            "created_at": created,
            "metadata": item.metadata,
        }

    async def _switch(self, job_id: str, prepared: Sequence[Prepared], switched: Sequence[JobItem]) -> None:
        # New chunks turn active before the catalog switches and old ones retire after it: a search that keeps
        # only chunks of the catalog's active version sees exactly one version at every instant.
        await self.store.set_state(ChunkSelector(job_id=job_id, state=ChunkState.staged), ChunkState.active)
        activations = await self.versions.activate(
            job_id,
            [IndexedVersion(p.item.document_id, p.item.version, len(p.chunks)) for p in prepared],
            self.embedder.model_id,
        )
        activated = {a.document_id for a in activations}
        for p in prepared:
            if p.item.document_id not in activated:
                # Deleted while this job ran: its chunks must not outlive it.
                await self.store.delete(ChunkSelector(job_id=job_id, document_id=p.item.document_id))
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

"""A chunk's payload in the vector store: what searches filter on and answers cite. Shared by ingestion jobs and
reindexing, so that a reindexed chunk looks exactly like a freshly ingested one."""

from __future__ import annotations

from dataclasses import dataclass

from ingestion.reuse import text_digest
from kernel.injection import injection_flags
from kernel.records import JobItem
from kernel.types import Chunk, ChunkState


@dataclass(frozen=True)
class Stamp:
    """What every chunk a run writes shares: who wrote it, with which model, when, into which generation."""

    job_id: str
    model_id: str
    created_at: str
    generation: int = 0


def chunk_payload(stamp: Stamp, item: JobItem, chunk: Chunk, state: ChunkState) -> dict:
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
        "model_id": stamp.model_id,
        "text_sha256": text_digest(chunk.text),
        "job_id": stamp.job_id,
        "state": state.value,
        "created_at": stamp.created_at,
        "metadata": item.metadata,
        # Each chunk's text addressing the model (indirect injection): answers exclude or quote such chunks.
        "flags": injection_flags(chunk.text),
        "generation": stamp.generation,
    }

"""Documents: listing, one document with its version history, deletion and the blobs it leaves unused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.errors import NotFound
from kernel.records import Document, DocumentWithVersions, Version
from kernel.types import VersionStatus
from rag.storage.collections import require_collection
from rag.storage.engine import Transaction, as_utc, utc
from rag.storage.jobs import cancel_orphaned_jobs
from rag.storage.schema import documents, sentence_refs, versions
from rag.storage.sentence_vectors import lock_versions, release


class DocumentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def in_collection(self, collection: str, limit: int, offset: int) -> list[Document]:
        async with Transaction(self._engine) as conn:
            await require_collection(conn, collection)
            rows = await conn.execute(
                _summary_query()
                .where(documents.c.collection == collection)
                .order_by(documents.c.key)
                .limit(limit)
                .offset(offset)
            )
            return [_document(r) for r in rows]

    async def get(self, document_id: str) -> DocumentWithVersions:
        async with Transaction(self._engine) as conn:
            row = (await conn.execute(_summary_query().where(documents.c.id == document_id))).first()
            if row is None:
                raise NotFound(f"document {document_id!r} does not exist")
            vrows = await conn.execute(
                versions.select().where(versions.c.document_id == document_id).order_by(versions.c.version)
            )
            history = tuple(
                Version(
                    version=v.version,
                    status=VersionStatus(v.status),
                    sha256=v.sha256,
                    size_bytes=v.size_bytes,
                    kind=v.kind,
                    filename=v.filename,
                    chunk_count=v.chunk_count,
                    job_id=v.job_id,
                    error=v.error,
                    model_id=v.model_id,
                    created_at=utc(v.created_at),
                    indexed_at=as_utc(v.indexed_at),
                )
                for v in vrows
            )
        return DocumentWithVersions(**vars(_document(row)), versions=history)

    async def exists(self, document_id: str) -> bool:
        async with Transaction(self._engine) as conn:
            row = (await conn.execute(sa.select(documents.c.id).where(documents.c.id == document_id))).first()
            return row is not None

    async def active_versions(self, document_ids: Sequence[str]) -> dict[str, int]:
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(documents.c.id, documents.c.active_version).where(
                    documents.c.id.in_(list(document_ids)), documents.c.active_version.is_not(None)
                )
            )
            return {r.id: r.active_version for r in rows}

    async def delete(self, document_id: str) -> list[str]:
        """Remove the document and its versions, and cancel the jobs that indexed nothing else; returns the blobs
        no other version refers to."""
        async with Transaction(self._engine) as conn:
            # Its sentences' vectors go unless a kept chunk of another document has the same sentence.
            await lock_versions(conn, versions.c.document_id == document_id)
            await release(conn, sentence_refs.c.document_id == document_id)
            rows = (
                await conn.execute(
                    sa.select(versions.c.blob, versions.c.job_id, versions.c.filename).where(
                        versions.c.document_id == document_id
                    )
                )
            ).all()
            await conn.execute(versions.delete().where(versions.c.document_id == document_id))
            result = await conn.execute(documents.delete().where(documents.c.id == document_id))
            if result.rowcount == 0:
                raise NotFound(f"document {document_id!r} does not exist")
            name = rows[-1].filename if rows else document_id
            await cancel_orphaned_jobs(
                conn, {r.job_id for r in rows}, f"cancelled: {name} was deleted before it was indexed"
            )
        return await self.unused_blobs({r.blob for r in rows})

    async def unused_blobs(self, candidates: set[str]) -> list[str]:
        """The candidates that no remaining version refers to: safe to delete from the blob store."""
        if not candidates:
            return []
        async with Transaction(self._engine) as conn:
            used: set[str] = set(
                (await conn.execute(sa.select(versions.c.blob).where(versions.c.blob.in_(list(candidates))))).scalars()
            )
        return sorted(candidates - used)


def _summary_query() -> sa.Select[Any]:
    latest = versions.alias("latest")
    active = versions.alias("active")
    return sa.select(
        documents,
        latest.c.status.label("latest_status"),
        sa.func.coalesce(active.c.chunk_count, 0).label("active_chunks"),
    ).select_from(
        documents.join(
            latest,
            (latest.c.document_id == documents.c.id) & (latest.c.version == documents.c.latest_version),
        ).outerjoin(
            active,
            (active.c.document_id == documents.c.id) & (active.c.version == documents.c.active_version),
        )
    )


def _document(r: Any) -> Document:
    return Document(
        document_id=r.id,
        collection=r.collection,
        key=r.key,
        filename=r.filename,
        status=r.latest_status,
        active_version=r.active_version,
        latest_version=r.latest_version,
        chunk_count=r.active_chunks,
        metadata=r.meta,
        created_at=utc(r.created_at),
        updated_at=utc(r.updated_at),
    )

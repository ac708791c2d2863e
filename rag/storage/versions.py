"""Document versions: registering uploads and imports, switching the active version, rollback and purging.

The catalog is the source of truth for which version of a document is active; the vector store follows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kernel.errors import Conflict, NotFound
from kernel.records import Activation, ImportRegistration, IndexedVersion, NewVersion, Registration
from kernel.types import VersionStatus
from rag.storage.collections import require_collection
from rag.storage.engine import Transaction, now
from rag.storage.jobs import insert_job
from rag.storage.schema import documents, sentence_refs, versions
from rag.storage.sentence_vectors import lock_versions, release

_BATCH = 500  # ids per IN (...): well below every driver's bound-parameter limit


def document_id_for(collection: str, key: str) -> str:
    """A document's identity is (collection, key): the same pair always gets the same id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rag:{collection}/{key}"))


class VersionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # ----- registering uploads ---------------------------------------------------------------------------------
    async def register_upload(self, collection: str, item: NewVersion) -> Registration:
        """Record a new version unless the bytes equal the latest one (then `needs_job` is False)."""
        # Content hash plus a nonce: same bytes are caught by the latest-version check, and a document deleted
        # and uploaded again must never share a job (or its chunk ids) with the old one.
        job_id = f"ing-{document_id_for(collection, item.key)[:8]}-{item.sha256[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            async with Transaction(self._engine) as conn:
                await require_collection(conn, collection)
                results = await _register(conn, collection, [item], lambda version: f"{job_id}-v{version}")
                if results[0].needs_job:
                    await insert_job(conn, results[0].job_id, "ingest", collection)
        except IntegrityError:
            raise Conflict(f"another upload of {item.filename!r} is being registered right now; try again") from None
        return results[0]

    async def register_import(
        self, collection: str, items: Sequence[NewVersion], body_sha256: str
    ) -> ImportRegistration:
        job_id = f"imp-{body_sha256[:24]}-{uuid.uuid4().hex[:8]}"
        try:
            async with Transaction(self._engine) as conn:
                await require_collection(conn, collection)
                results = await _register(conn, collection, items, lambda _v: job_id)
                new = sum(1 for r in results if r.needs_job)
                if new:
                    await insert_job(conn, job_id, "import", collection)
        except IntegrityError:
            raise Conflict("another import into this collection is being registered; try again") from None
        return ImportRegistration(
            job_id=job_id if new else None,
            status="queued" if new else "unchanged",
            records=len(items),
            new_versions=new,
            unchanged=len(items) - new,
        )

    # ----- a job's versions ----------------------------------------------------------------------------------
    async def failed(self, document_id: str, version: int, error: str) -> None:
        async with Transaction(self._engine) as conn:
            await conn.execute(
                versions.update()
                .where(versions.c.document_id == document_id, versions.c.version == version)
                .values(status=VersionStatus.failed.value, error=error)
            )

    async def activate(self, job_id: str, items: Sequence[IndexedVersion], model_id: str) -> list[Activation]:
        """Switch each indexed version to active in one transaction.

        Documents deleted while their job ran are skipped (the caller removes their chunks).
        """
        ts = now()
        done: list[Activation] = []
        async with Transaction(self._engine) as conn:
            ids = [item.document_id for item in items]
            current: dict[str, int | None] = {}
            mine: set[tuple[str, int]] = set()
            for start in range(0, len(ids), _BATCH):
                # FOR UPDATE: two workers switching the same document must not both act on a stale read
                # (SQLite ignores it; there one process owns the database and writes are serialised).
                rows = await conn.execute(
                    sa.select(documents.c.id, documents.c.active_version)
                    .where(documents.c.id.in_(ids[start : start + _BATCH]))
                    .with_for_update()
                )
                current.update({r.id: r.active_version for r in rows})
                owned = await conn.execute(
                    sa.select(versions.c.document_id, versions.c.version).where(
                        versions.c.document_id.in_(ids[start : start + _BATCH]), versions.c.job_id == job_id
                    )
                )
                mine.update((r.document_id, r.version) for r in owned)
            retire, activate, docs = [], [], []
            for item in items:
                doc_id, version = item.document_id, item.version
                if doc_id not in current or (doc_id, version) not in mine:
                    continue  # deleted (and maybe uploaded anew) while this job ran
                previous = current[doc_id]
                if previous == version:
                    done.append(Activation(doc_id, version, None))
                    continue
                if previous is not None and previous > version:
                    # A newer version finished first (or was rolled back to): never go backwards.
                    retire.append({"d": doc_id, "v": version})
                    done.append(Activation(doc_id, version, None, superseded=True))
                    continue
                if previous is not None:
                    retire.append({"d": doc_id, "v": previous})
                activate.append({"d": doc_id, "v": version, "n": item.chunk_count})
                docs.append({"d": doc_id, "v": version})
                done.append(Activation(doc_id, version, previous))
            key = (versions.c.document_id == sa.bindparam("d")) & (versions.c.version == sa.bindparam("v"))
            if retire:
                await conn.execute(versions.update().where(key).values(status=VersionStatus.retired.value), retire)
            if activate:
                await conn.execute(
                    versions.update()
                    .where(key)
                    .values(
                        status=VersionStatus.active.value,
                        chunk_count=sa.bindparam("n"),
                        indexed_at=ts,
                        model_id=model_id,
                        error=None,
                    ),
                    activate,
                )
                await conn.execute(
                    documents.update()
                    .where(documents.c.id == sa.bindparam("d"))
                    .values(active_version=sa.bindparam("v"), updated_at=ts),
                    docs,
                )
        return done

    async def count_of_job(self, job_id: str) -> int:
        async with Transaction(self._engine) as conn:
            query = sa.select(sa.func.count()).select_from(versions).where(versions.c.job_id == job_id)
            return (await conn.execute(query)).scalar_one()

    async def of_job(self, job_id: str) -> set[tuple[str, int]]:
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(versions.c.document_id, versions.c.version).where(versions.c.job_id == job_id)
            )
            return {(r.document_id, r.version) for r in rows}

    # ----- rollback and purging ------------------------------------------------------------------------------
    async def beyond(self, document_id: str, keep: int) -> list[int]:
        """Retired versions older than the `keep` newest retired ones: their chunks can go."""
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(versions.c.version)
                .where(versions.c.document_id == document_id, versions.c.status == VersionStatus.retired.value)
                .order_by(versions.c.version.desc())
            )
            return list(rows.scalars())[keep:]

    async def mark_purged(self, document_id: str, version_numbers: Sequence[int]) -> None:
        if not version_numbers:
            return
        async with Transaction(self._engine) as conn:
            chosen = versions.c.document_id == document_id, versions.c.version.in_(list(version_numbers))
            await lock_versions(conn, sa.and_(*chosen))
            await conn.execute(versions.update().where(*chosen).values(status=VersionStatus.purged.value))
            # Their chunks are deleted: so are the vectors of sentences no kept chunk has.
            await release(
                conn,
                sa.and_(
                    sentence_refs.c.document_id == document_id,
                    sentence_refs.c.version.in_(list(version_numbers)),
                ),
            )

    async def rollback_target(self, document_id: str) -> tuple[int, int]:
        """(current active version, the newest retired version before it)."""
        async with Transaction(self._engine) as conn:
            row = (
                await conn.execute(sa.select(documents.c.active_version).where(documents.c.id == document_id))
            ).first()
            if row is None:
                raise NotFound(f"document {document_id!r} does not exist")
            if row.active_version is None:
                raise Conflict(f"document {document_id} has no active version to roll back from")
            target = (
                await conn.execute(
                    sa.select(sa.func.max(versions.c.version)).where(
                        versions.c.document_id == document_id,
                        versions.c.status == VersionStatus.retired.value,
                        versions.c.version < row.active_version,
                    )
                )
            ).scalar()
        if target is None:
            raise Conflict(
                f"document {document_id} has no earlier version kept for rollback "
                "(versions beyond RAG_INGESTION__KEEP_VERSIONS are purged)"
            )
        return row.active_version, target

    async def switch_active(self, document_id: str, from_version: int, to_version: int) -> None:
        async with Transaction(self._engine) as conn:
            row = (
                await conn.execute(
                    sa.select(documents.c.active_version).where(documents.c.id == document_id).with_for_update()
                )
            ).first()
            if row is None or row.active_version != from_version:
                raise Conflict(f"document {document_id} changed while rolling back; try again")
            key = versions.c.document_id == document_id
            await conn.execute(
                versions.update()
                .where(key, versions.c.version == from_version)
                .values(status=VersionStatus.retired.value)
            )
            await conn.execute(
                versions.update().where(key, versions.c.version == to_version).values(status=VersionStatus.active.value)
            )
            await conn.execute(
                documents.update()
                .where(documents.c.id == document_id)
                .values(active_version=to_version, updated_at=now())
            )


async def _register(
    conn: AsyncConnection, collection: str, items: Sequence[NewVersion], job_id_for: Callable[[int], str]
) -> list[Registration]:
    ids = [document_id_for(collection, it.key) for it in items]
    latest: dict[str, tuple[int, str, str, str]] = {}
    for start in range(0, len(ids), _BATCH):
        rows = await conn.execute(
            sa.select(
                versions.c.document_id, versions.c.version, versions.c.sha256, versions.c.job_id, versions.c.status
            )
            .join(documents, documents.c.id == versions.c.document_id)
            .where(
                versions.c.document_id.in_(ids[start : start + _BATCH]),
                versions.c.version == documents.c.latest_version,
            )
        )
        for r in rows:
            latest[r.document_id] = (r.version, r.sha256, r.job_id, r.status)
    ts = now()
    results: list[Registration] = []
    new_docs: list[dict[str, Any]] = []
    new_versions: list[dict[str, Any]] = []
    bumped: list[dict[str, Any]] = []
    for doc_id, it in zip(ids, items, strict=True):
        prev = latest.get(doc_id)
        # Same bytes as the latest version: nothing to do, unless that attempt failed (then it is a retry).
        if prev is not None and prev[1] == it.sha256 and prev[3] != VersionStatus.failed.value:
            results.append(Registration(it.filename, doc_id, prev[0], prev[2], "unchanged"))
            continue
        version = 1 if prev is None else prev[0] + 1
        job_id = job_id_for(version)
        if prev is None:
            new_docs.append(
                dict(
                    id=doc_id,
                    collection=collection,
                    key=it.key,
                    filename=it.filename,
                    meta=it.metadata,
                    active_version=None,
                    latest_version=1,
                    created_at=ts,
                    updated_at=ts,
                )
            )
        else:
            bumped.append(dict(b_id=doc_id, b_version=version, b_filename=it.filename, b_meta=it.metadata))
        new_versions.append(
            dict(
                document_id=doc_id,
                version=version,
                status=VersionStatus.queued.value,
                sha256=it.sha256,
                size_bytes=it.size_bytes,
                kind=it.kind,
                filename=it.filename,
                blob=it.blob,
                record_index=it.record_index,
                chunk_count=0,
                job_id=job_id,
                created_at=ts,
            )
        )
        results.append(Registration(it.filename, doc_id, version, job_id, "queued"))
    if new_docs:
        await conn.execute(documents.insert(), new_docs)
    if bumped:
        await conn.execute(
            documents.update()
            .where(documents.c.id == sa.bindparam("b_id"))
            .values(
                latest_version=sa.bindparam("b_version"),
                filename=sa.bindparam("b_filename"),
                meta=sa.bindparam("b_meta"),
                updated_at=ts,
            ),
            bumped,
        )
    if new_versions:
        await conn.execute(versions.insert(), new_versions)
    return results

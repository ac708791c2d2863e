"""The metadata catalog: collections, documents, versions and jobs. SQLite embedded, PostgreSQL in production.

The catalog is the source of truth for which version of a document is active; the vector store follows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rag.errors import Conflict, NotFound, TransientError
from rag.types import (
    CollectionInfo,
    DocumentDetail,
    DocumentSummary,
    ImportResult,
    JobInfo,
    JobStage,
    JobStatus,
    UploadResult,
    VersionInfo,
    VersionStatus,
)

metadata = sa.MetaData()

collections = sa.Table(
    "collections",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("meta", sa.JSON, nullable=False, default=dict),
    sa.Column("filterable", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("collection", sa.String(64), sa.ForeignKey("collections.name", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("filename", sa.String(512), nullable=False),
    sa.Column("meta", sa.JSON, nullable=False, default=dict),
    sa.Column("active_version", sa.Integer, nullable=True),
    sa.Column("latest_version", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("collection", "key"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("document_id", sa.String(36), sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("filename", sa.String(512), nullable=False),
    sa.Column("blob", sa.String(64), nullable=False),
    sa.Column("record_index", sa.Integer, nullable=True),
    sa.Column("chunk_count", sa.Integer, nullable=False, default=0),
    sa.Column("job_id", sa.String(80), nullable=False, index=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("model_id", sa.String(256), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("collection", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("done", sa.Integer, nullable=False, default=0),
    sa.Column("total", sa.Integer, nullable=False, default=0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)


def now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def document_id_for(collection: str, key: str) -> str:
    """A document's identity is (collection, key): the same pair always gets the same id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rag:{collection}/{key}"))


@dataclass(frozen=True)
class NewVersion:
    """What the API registers for one file or one imported record."""

    key: str
    filename: str
    sha256: str
    size_bytes: int
    kind: str
    blob: str
    metadata: dict[str, Any]
    record_index: int | None = None


@dataclass(frozen=True)
class JobItem:
    """One document version a job indexes."""

    document_id: str
    collection: str
    key: str
    version: int
    status: VersionStatus
    filename: str
    kind: str
    sha256: str
    blob: str
    record_index: int | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Activation:
    document_id: str
    version: int
    previous: int | None
    superseded: bool = False


class Catalog:
    def __init__(self, url: str) -> None:
        self._url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        self._engine: AsyncEngine = create_async_engine(url, **kwargs)
        if url.startswith("sqlite"):
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def create_schema(self) -> None:
        async with self._tx() as conn:
            await conn.run_sync(metadata.create_all)

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.text("SELECT 1"))

    def _tx(self):  # type: ignore[no-untyped-def]
        return _Transaction(self._engine)

    # ----- collections -------------------------------------------------------------------------------------
    async def create_collection(
        self, name: str, description: str, meta: dict[str, Any], filterable: dict[str, str] | None = None
    ) -> CollectionInfo:
        try:
            async with self._tx() as conn:
                await conn.execute(
                    collections.insert().values(
                        name=name, description=description, meta=meta, filterable=filterable or {}, created_at=now()
                    )
                )
        except IntegrityError:
            raise Conflict(f"collection {name!r} already exists") from None
        return await self.get_collection(name)

    async def list_collections(self) -> list[CollectionInfo]:
        async with self._tx() as conn:
            names = (await conn.execute(sa.select(collections.c.name).order_by(collections.c.name))).scalars()
            return [await self._collection_info(conn, n) for n in list(names)]

    async def get_collection(self, name: str) -> CollectionInfo:
        async with self._tx() as conn:
            return await self._collection_info(conn, name)

    async def _collection_info(self, conn: AsyncConnection, name: str) -> CollectionInfo:
        row = (await conn.execute(collections.select().where(collections.c.name == name))).first()
        if row is None:
            raise NotFound(f"collection {name!r} does not exist")
        stats = (
            await conn.execute(
                sa.select(sa.func.count(documents.c.id), sa.func.coalesce(sa.func.sum(versions.c.chunk_count), 0))
                .select_from(
                    documents.outerjoin(
                        versions,
                        (versions.c.document_id == documents.c.id) & (versions.c.version == documents.c.active_version),
                    )
                )
                .where(documents.c.collection == name)
            )
        ).one()
        return CollectionInfo(
            name=row.name,
            description=row.description,
            metadata=row.meta,
            filterable=row.filterable or {},
            created_at=_utc(row.created_at),
            document_count=stats[0],
            chunk_count=stats[1],
        )

    async def filterable_fields(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each collection's declared metadata filters; NotFound names the first unknown collection.

        Cheap on purpose: it runs on every search (unlike get_collection, which counts documents)."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(collections.c.name, collections.c.filterable).where(collections.c.name.in_(list(names)))
            )
            found = {r.name: r.filterable or {} for r in rows}
        for name in names:
            if name not in found:
                raise NotFound(f"collection {name!r} does not exist")
        return found

    async def delete_collection(self, name: str) -> None:
        async with self._tx() as conn:
            doc_ids = sa.select(documents.c.id).where(documents.c.collection == name)
            await conn.execute(versions.delete().where(versions.c.document_id.in_(doc_ids)))
            await conn.execute(documents.delete().where(documents.c.collection == name))
            await conn.execute(jobs.delete().where(jobs.c.collection == name))
            result = await conn.execute(collections.delete().where(collections.c.name == name))
            if result.rowcount == 0:
                raise NotFound(f"collection {name!r} does not exist")

    # ----- registering uploads ---------------------------------------------------------------------------
    async def register_upload(self, collection: str, item: NewVersion) -> tuple[UploadResult, bool]:
        """Record a new version unless the bytes equal the latest one. Returns (result, needs_job)."""
        # Content hash plus a nonce: same bytes are caught by the latest-version check, and a document deleted
        # and uploaded again must never share a job (or its chunk ids) with the old one.
        job_id = f"ing-{document_id_for(collection, item.key)[:8]}-{item.sha256[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            async with self._tx() as conn:
                await self._require_collection(conn, collection)
                results = await self._register(conn, collection, [item], lambda version: f"{job_id}-v{version}")
                if results[0][1]:
                    await self._insert_job(conn, results[0][0].job_id, "ingest", collection)
        except IntegrityError:
            raise Conflict(f"another upload of {item.filename!r} is being registered right now; try again") from None
        return results[0]

    async def register_import(
        self, collection: str, items: Sequence[NewVersion], body_sha256: str
    ) -> tuple[ImportResult, bool]:
        job_id = f"imp-{body_sha256[:24]}-{uuid.uuid4().hex[:8]}"
        try:
            async with self._tx() as conn:
                await self._require_collection(conn, collection)
                results = await self._register(conn, collection, items, lambda _v: job_id)
                new = sum(1 for _, is_new in results if is_new)
                if new:
                    await self._insert_job(conn, job_id, "import", collection)
        except IntegrityError:
            raise Conflict("another import into this collection is being registered; try again") from None
        status = "queued" if new else "unchanged"
        return (
            ImportResult(
                job_id=job_id if new else None,
                status=status,
                records=len(items),
                new_versions=new,
                unchanged=len(items) - new,
            ),
            new > 0,
        )

    async def _register(
        self, conn: AsyncConnection, collection: str, items: Sequence[NewVersion], job_id_for
    ) -> list[tuple[UploadResult, bool]]:  # type: ignore[no-untyped-def]
        ids = [document_id_for(collection, it.key) for it in items]
        latest: dict[str, tuple[int, str, str, str]] = {}
        for chunk_start in range(0, len(ids), 500):
            part = ids[chunk_start : chunk_start + 500]
            rows = await conn.execute(
                sa.select(
                    versions.c.document_id, versions.c.version, versions.c.sha256, versions.c.job_id, versions.c.status
                )
                .join(documents, documents.c.id == versions.c.document_id)
                .where(versions.c.document_id.in_(part), versions.c.version == documents.c.latest_version)
            )
            for r in rows:
                latest[r.document_id] = (r.version, r.sha256, r.job_id, r.status)
        ts = now()
        results: list[tuple[UploadResult, bool]] = []
        new_docs, new_versions, bumped = [], [], []
        for doc_id, it in zip(ids, items, strict=True):
            prev = latest.get(doc_id)
            # Same bytes as the latest version: nothing to do, unless that attempt failed (then it is a retry).
            if prev is not None and prev[1] == it.sha256 and prev[3] != VersionStatus.failed.value:
                results.append(
                    (
                        UploadResult(
                            filename=it.filename,
                            document_id=doc_id,
                            version=prev[0],
                            job_id=prev[2],
                            status="unchanged",
                        ),
                        False,
                    )
                )
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
            results.append(
                (
                    UploadResult(
                        filename=it.filename,
                        document_id=doc_id,
                        version=version,
                        job_id=job_id,
                        status="queued",
                    ),
                    True,
                )
            )
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

    async def _require_collection(self, conn: AsyncConnection, name: str) -> None:
        row = (await conn.execute(sa.select(collections.c.name).where(collections.c.name == name))).first()
        if row is None:
            raise NotFound(f"collection {name!r} does not exist: create it first with POST /v1/collections")

    async def _insert_job(self, conn: AsyncConnection, job_id: str, kind: str, collection: str) -> None:
        await conn.execute(
            jobs.insert().values(
                id=job_id,
                kind=kind,
                collection=collection,
                status=JobStatus.queued.value,
                stage=JobStage.queued.value,
                done=0,
                total=0,
                attempts=0,
                created_at=now(),
            )
        )

    # ----- jobs --------------------------------------------------------------------------------------------
    async def get_job(self, job_id: str) -> JobInfo:
        async with self._tx() as conn:
            row = (await conn.execute(jobs.select().where(jobs.c.id == job_id))).first()
            if row is None:
                raise NotFound(f"job {job_id!r} does not exist")
            n = (
                await conn.execute(sa.select(sa.func.count()).select_from(versions).where(versions.c.job_id == job_id))
            ).scalar_one()
        return JobInfo(
            job_id=row.id,
            kind=row.kind,
            collection=row.collection,
            status=JobStatus(row.status),
            stage=JobStage(row.stage),
            done=row.done,
            total=row.total,
            attempts=row.attempts,
            error=row.error,
            documents=n,
            created_at=_utc(row.created_at),
            started_at=_utc(row.started_at),
            finished_at=_utc(row.finished_at),
        )

    async def job_items(self, job_id: str) -> list[JobItem]:
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(versions, documents.c.collection, documents.c.key, documents.c.meta)
                .join(documents, documents.c.id == versions.c.document_id)
                .where(versions.c.job_id == job_id)
                .order_by(versions.c.record_index, versions.c.document_id)
            )
            return [
                JobItem(
                    document_id=r.document_id,
                    collection=r.collection,
                    key=r.key,
                    version=r.version,
                    status=VersionStatus(r.status),
                    filename=r.filename,
                    kind=r.kind,
                    sha256=r.sha256,
                    blob=r.blob,
                    record_index=r.record_index,
                    metadata=r.meta,
                )
                for r in rows
            ]

    async def job_started(self, job_id: str) -> int:
        async with self._tx() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(status=JobStatus.running.value, attempts=jobs.c.attempts + 1, started_at=now(), error=None)
            )
            return (await conn.execute(sa.select(jobs.c.attempts).where(jobs.c.id == job_id))).scalar_one()

    async def job_progress(
        self, job_id: str, stage: JobStage, done: int | None = None, total: int | None = None
    ) -> None:
        values: dict[str, Any] = {"stage": stage.value}
        if done is not None:
            values["done"] = done
        if total is not None:
            values["total"] = total
        async with self._tx() as conn:
            await conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    async def job_note_error(self, job_id: str, error: str) -> None:
        """A transient error: the job stays running (it will be retried) but the reason is visible."""
        async with self._tx() as conn:
            await conn.execute(jobs.update().where(jobs.c.id == job_id).values(error=error))

    async def job_finished(self, job_id: str, status: JobStatus, error: str | None = None) -> None:
        async with self._tx() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(status=status.value, stage=JobStage.done.value, error=error, finished_at=now())
            )
            if status == JobStatus.failed:
                await conn.execute(
                    versions.update()
                    .where(versions.c.job_id == job_id, versions.c.status == VersionStatus.queued.value)
                    .values(status=VersionStatus.failed.value, error=error)
                )

    async def unfinished_jobs(self) -> list[str]:
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.status.in_([JobStatus.queued.value, JobStatus.running.value]))
                .order_by(jobs.c.created_at)
            )
            return list(rows.scalars())

    # ----- versions ----------------------------------------------------------------------------------------
    async def version_failed(self, document_id: str, version: int, error: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                versions.update()
                .where(versions.c.document_id == document_id, versions.c.version == version)
                .values(status=VersionStatus.failed.value, error=error)
            )

    async def activate(self, job_id: str, items: Sequence[tuple[str, int, int]], model_id: str) -> list[Activation]:
        """Switch each (document_id, version, chunk_count) to active in one transaction.

        Documents deleted while their job ran are skipped (the caller removes their chunks).
        """
        ts = now()
        done: list[Activation] = []
        async with self._tx() as conn:
            ids = [doc_id for doc_id, _, _ in items]
            current: dict[str, int | None] = {}
            mine: set[tuple[str, int]] = set()
            for start in range(0, len(ids), 500):
                # FOR UPDATE: two workers switching the same document must not both act on a stale read
                # (SQLite ignores it; there one process owns the database and writes are serialised).
                rows = await conn.execute(
                    sa.select(documents.c.id, documents.c.active_version)
                    .where(documents.c.id.in_(ids[start : start + 500]))
                    .with_for_update()
                )
                current.update({r.id: r.active_version for r in rows})
                owned = await conn.execute(
                    sa.select(versions.c.document_id, versions.c.version).where(
                        versions.c.document_id.in_(ids[start : start + 500]), versions.c.job_id == job_id
                    )
                )
                mine.update((r.document_id, r.version) for r in owned)
            retire, activate, docs = [], [], []
            for doc_id, version, chunk_count in items:
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
                activate.append({"d": doc_id, "v": version, "n": chunk_count})
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

    async def versions_beyond(self, document_id: str, keep: int) -> list[int]:
        """Retired versions older than the `keep` newest retired ones: their chunks can go."""
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(versions.c.version)
                .where(versions.c.document_id == document_id, versions.c.status == VersionStatus.retired.value)
                .order_by(versions.c.version.desc())
            )
            return list(rows.scalars())[keep:]

    async def mark_purged(self, document_id: str, version_numbers: Sequence[int]) -> None:
        if not version_numbers:
            return
        async with self._tx() as conn:
            await conn.execute(
                versions.update()
                .where(versions.c.document_id == document_id, versions.c.version.in_(list(version_numbers)))
                .values(status=VersionStatus.purged.value)
            )

    async def rollback_target(self, document_id: str) -> tuple[int, int]:
        """(current active version, the newest retired version before it)."""
        doc = await self.get_document(document_id)
        if doc.active_version is None:
            raise Conflict(f"document {document_id} has no active version to roll back from")
        candidates = [
            v.version for v in doc.versions if v.status == VersionStatus.retired and v.version < doc.active_version
        ]
        if not candidates:
            raise Conflict(
                f"document {document_id} has no earlier version kept for rollback "
                "(versions beyond RAG_INGESTION__KEEP_VERSIONS are purged)"
            )
        return doc.active_version, max(candidates)

    async def switch_active(self, document_id: str, from_version: int, to_version: int) -> None:
        async with self._tx() as conn:
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

    # ----- documents ---------------------------------------------------------------------------------------
    async def list_documents(self, collection: str, limit: int, offset: int) -> list[DocumentSummary]:
        async with self._tx() as conn:
            await self._require_collection(conn, collection)
            rows = await conn.execute(
                self._summary_query()
                .where(documents.c.collection == collection)
                .order_by(documents.c.key)
                .limit(limit)
                .offset(offset)
            )
            return [self._summary(r) for r in rows]

    async def get_document(self, document_id: str) -> DocumentDetail:
        async with self._tx() as conn:
            row = (await conn.execute(self._summary_query().where(documents.c.id == document_id))).first()
            if row is None:
                raise NotFound(f"document {document_id!r} does not exist")
            vrows = await conn.execute(
                versions.select().where(versions.c.document_id == document_id).order_by(versions.c.version)
            )
            history = [
                VersionInfo(
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
                    created_at=_utc(v.created_at),
                    indexed_at=_utc(v.indexed_at),
                )
                for v in vrows
            ]
        return DocumentDetail(**self._summary(row).model_dump(), versions=history)

    def _summary_query(self) -> sa.Select:
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

    @staticmethod
    def _summary(r: Any) -> DocumentSummary:
        return DocumentSummary(
            document_id=r.id,
            collection=r.collection,
            key=r.key,
            filename=r.filename,
            status=r.latest_status,
            active_version=r.active_version,
            latest_version=r.latest_version,
            chunk_count=r.active_chunks,
            metadata=r.meta,
            created_at=_utc(r.created_at),
            updated_at=_utc(r.updated_at),
        )

    async def delete_document(self, document_id: str) -> list[str]:
        """Remove the document and its versions; returns the blobs no other version refers to."""
        async with self._tx() as conn:
            blobs = set(
                (await conn.execute(sa.select(versions.c.blob).where(versions.c.document_id == document_id))).scalars()
            )
            await conn.execute(versions.delete().where(versions.c.document_id == document_id))
            result = await conn.execute(documents.delete().where(documents.c.id == document_id))
            if result.rowcount == 0:
                raise NotFound(f"document {document_id!r} does not exist")
        return await self.unused_blobs(blobs)

    async def collection_blobs(self, name: str) -> set[str]:
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(versions.c.blob)
                .join(documents, documents.c.id == versions.c.document_id)
                .where(documents.c.collection == name)
                .distinct()
            )
            return set(rows.scalars())

    async def unused_blobs(self, candidates: set[str]) -> list[str]:
        """The candidates that no remaining version refers to: safe to delete from the blob store."""
        if not candidates:
            return []
        async with self._tx() as conn:
            used = set(
                (await conn.execute(sa.select(versions.c.blob).where(versions.c.blob.in_(list(candidates))))).scalars()
            )
        return sorted(candidates - used)

    async def document_exists(self, document_id: str) -> bool:
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(documents.c.id).where(documents.c.id == document_id))).first()
            return row is not None

    async def active_versions(self, document_ids: Sequence[str]) -> dict[str, int]:
        async with self._tx() as conn:
            rows = await conn.execute(
                sa.select(documents.c.id, documents.c.active_version).where(
                    documents.c.id.in_(list(document_ids)), documents.c.active_version.is_not(None)
                )
            )
            return {r.id: r.active_version for r in rows}


class _Transaction:
    """`async with` a connection in a transaction; an unreachable database becomes a TransientError."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._cm = engine.begin()

    async def __aenter__(self) -> AsyncConnection:
        try:
            return await self._cm.__aenter__()
        except (OperationalError, OSError) as exc:
            raise TransientError(f"the metadata database is unavailable: {exc}") from exc

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        try:
            return await self._cm.__aexit__(*exc_info)
        except OperationalError as exc:
            raise TransientError(f"the metadata database failed: {exc}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the worker writes; the timeout rides out short write contention.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

"""Ingestion jobs: queued -> running (attempts counted) -> succeeded | failed | cancelled, with the stage and progress
between. A job that has ended is never changed again: a delete that cancels a running job has the last word."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kernel.errors import NotFound
from kernel.records import Job, JobItem
from kernel.types import JobStage, JobStatus, VersionStatus
from rag.storage.engine import Transaction, as_utc, now, utc
from rag.storage.schema import documents, jobs, versions

_UNFINISHED = jobs.c.status.in_([JobStatus.queued.value, JobStatus.running.value])


def job_item(r: Any) -> JobItem:
    """A version row joined with its document's collection, key and metadata, as a job's item."""
    return JobItem(
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


class JobStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, job_id: str) -> Job:
        async with Transaction(self._engine) as conn:
            row = (await conn.execute(jobs.select().where(jobs.c.id == job_id))).first()
            if row is None:
                raise NotFound(f"job {job_id!r} does not exist")
            n = (
                await conn.execute(sa.select(sa.func.count()).select_from(versions).where(versions.c.job_id == job_id))
            ).scalar_one()
        return Job(
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
            created_at=utc(row.created_at),
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
        )

    async def items(self, job_id: str) -> list[JobItem]:
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(versions, documents.c.collection, documents.c.key, documents.c.meta)
                .join(documents, documents.c.id == versions.c.document_id)
                .where(versions.c.job_id == job_id)
                .order_by(versions.c.record_index, versions.c.document_id)
            )
            return [job_item(r) for r in rows]

    async def started(self, job_id: str) -> int | None:
        """Mark the job running; returns its attempt number (a crash loop shows as a growing count), or None when
        it has ended meanwhile (cancelled by a delete)."""
        async with Transaction(self._engine) as conn:
            result = await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, _UNFINISHED)
                .values(status=JobStatus.running.value, attempts=jobs.c.attempts + 1, started_at=now(), error=None)
            )
            if result.rowcount == 0:
                return None
            return (await conn.execute(sa.select(jobs.c.attempts).where(jobs.c.id == job_id))).scalar_one()

    async def progress(self, job_id: str, stage: JobStage, done: int | None = None, total: int | None = None) -> None:
        values: dict[str, Any] = {"stage": stage.value}
        if done is not None:
            values["done"] = done
        if total is not None:
            values["total"] = total
        async with Transaction(self._engine) as conn:
            # An ended (cancelled) job keeps the state it ended in.
            await conn.execute(jobs.update().where(jobs.c.id == job_id, _UNFINISHED).values(**values))

    async def note_error(self, job_id: str, error: str) -> None:
        """A transient error: the job stays running (it will be retried) but the reason is visible."""
        async with Transaction(self._engine) as conn:
            await conn.execute(jobs.update().where(jobs.c.id == job_id, _UNFINISHED).values(error=error))

    async def finished(self, job_id: str, status: JobStatus, error: str | None = None) -> None:
        """End the job, unless it has ended already: a job cancelled by a delete stays cancelled."""
        async with Transaction(self._engine) as conn:
            result = await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, _UNFINISHED)
                .values(status=status.value, stage=JobStage.done.value, error=error, finished_at=now())
            )
            if result.rowcount == 0:
                return
            if status == JobStatus.failed:
                await conn.execute(
                    versions.update()
                    .where(versions.c.job_id == job_id, versions.c.status == VersionStatus.queued.value)
                    .values(status=VersionStatus.failed.value, error=error)
                )

    async def unfinished(self) -> list[str]:
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.status.in_([JobStatus.queued.value, JobStatus.running.value]))
                .order_by(jobs.c.created_at)
            )
            return list(rows.scalars())


async def cancel_orphaned_jobs(conn: AsyncConnection, job_ids: set[str], reason: str) -> None:
    """Cancel the unfinished jobs among these that no version refers to any more (inside the caller's transaction,
    the one that deleted their versions): a queued one then never starts, a running one stops at its next check."""
    for job_id in sorted(job_ids):
        left = await conn.execute(sa.select(versions.c.version).where(versions.c.job_id == job_id).limit(1))
        if left.first() is None:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, _UNFINISHED)
                .values(status=JobStatus.cancelled.value, stage=JobStage.done.value, error=reason, finished_at=now())
            )


async def insert_job(conn: AsyncConnection, job_id: str, kind: str, collection: str) -> None:
    """A queued job, inside the caller's transaction (the one that registers its versions)."""
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

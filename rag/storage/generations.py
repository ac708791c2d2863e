"""Collection generations (`rag reindex`): which generation of its chunks a collection's queries see, and the one
reindex at a time that builds the next generation beside it and then switches to it in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.errors import Conflict, NotFound
from kernel.records import IndexedVersion, JobItem
from kernel.types import JobStatus, VersionStatus
from rag.storage.engine import Transaction, now
from rag.storage.jobs import job_item
from rag.storage.schema import collections, documents, jobs, sentence_refs, versions
from rag.storage.sentence_vectors import lock_versions, release

# The versions whose chunks are in the store: the active one and those kept for rollback.
_INDEXED = (VersionStatus.active.value, VersionStatus.retired.value)


@dataclass(frozen=True)
class ReindexTicket:
    """A reindex that owns its collection: it builds `target` beside the live `current` generation."""

    collection: str
    current: int
    target: int
    token: str


class GenerationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def live(self, names: Sequence[str]) -> dict[str, int]:
        """The live generation of each of these collections that exists. Cheap: it runs on every search."""
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(collections.c.name, collections.c.generation).where(collections.c.name.in_(list(names)))
            )
            return {r.name: int(r.generation) for r in rows}

    async def generation(self, name: str) -> int:
        """The live generation of one collection (0 for one that no longer exists: nothing will see its chunks)."""
        return (await self.live([name])).get(name, 0)

    async def begin(self, name: str, settings: dict[str, Any], *, force: bool = False) -> ReindexTicket:
        """Claim the collection for a reindex. Conflict while another reindex or an ingestion job is unfinished
        (`force` takes over a reindex that died); NotFound for an unknown collection."""
        async with Transaction(self._engine) as conn:
            row = (
                await conn.execute(
                    sa.select(collections.c.generation, collections.c.reindex).where(collections.c.name == name)
                )
            ).first()
            if row is None:
                raise NotFound(f"collection {name!r} does not exist (list them with GET /v1/collections)")
            running = row.reindex
            if running and not force:
                raise Conflict(
                    f"a reindex of {name!r} is already running (started {running.get('started_at')}, building "
                    f"generation {running.get('target')}); wait for it to finish, or if its process died, rerun "
                    "with --force to take over"
                )
            unfinished = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(jobs)
                    .where(
                        jobs.c.collection == name,
                        jobs.c.status.in_([JobStatus.queued.value, JobStatus.running.value]),
                    )
                )
            ).scalar_one()
            if unfinished:
                raise Conflict(
                    f"collection {name!r} has {unfinished} unfinished ingestion job(s); reindex it once they end "
                    "(GET /v1/jobs shows them)"
                )
            current = int(row.generation)
            ticket = ReindexTicket(name, current, current + 1, uuid.uuid4().hex)
            state = {"target": ticket.target, "token": ticket.token, "started_at": now().isoformat(), **settings}
            await conn.execute(collections.update().where(collections.c.name == name).values(reindex=state))
            return ticket

    async def running(self, name: str) -> dict[str, Any] | None:
        async with Transaction(self._engine) as conn:
            row = (await conn.execute(sa.select(collections.c.reindex).where(collections.c.name == name))).first()
            return None if row is None else row.reindex

    async def items(self, name: str) -> list[JobItem]:
        """Every version of the collection whose chunks are in the store, in a stable order."""
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(versions, documents.c.collection, documents.c.key, documents.c.meta)
                .join(documents, documents.c.id == versions.c.document_id)
                .where(documents.c.collection == name, versions.c.status.in_(_INDEXED))
                .order_by(versions.c.document_id, versions.c.version)
            )
            return [job_item(r) for r in rows]

    async def switch(self, ticket: ReindexTicket, indexed: Sequence[IndexedVersion], model_id: str) -> None:
        """Make the new generation the live one, with its chunk counts and model, in one transaction."""
        async with Transaction(self._engine) as conn:
            await self._own(conn, ticket)
            for v in indexed:
                await conn.execute(
                    versions.update()
                    .where(versions.c.document_id == v.document_id, versions.c.version == v.version)
                    .values(chunk_count=v.chunk_count, model_id=model_id)
                )
            await conn.execute(
                collections.update()
                .where(collections.c.name == ticket.collection)
                .values(generation=ticket.target, reindex=None)
            )
            # The old generation's chunks are dropped: so are the vectors of sentences only they had. (Queries still
            # reading them during the drain encode those sentences, as for chunks indexed without vectors.)
            await _release_generations(conn, ticket.collection, sentence_refs.c.generation != ticket.target)
            # Cached answers cite chunks of the old generation: the answer cache serves none from before a change.
            await conn.execute(
                documents.update().where(documents.c.collection == ticket.collection).values(updated_at=now())
            )

    async def abort(self, ticket: ReindexTicket) -> None:
        """Release the collection after a failed reindex; the live generation stays as it was."""
        async with Transaction(self._engine) as conn:
            row = (
                await conn.execute(sa.select(collections.c.reindex).where(collections.c.name == ticket.collection))
            ).first()
            if row is not None and (row.reindex or {}).get("token") == ticket.token:
                await conn.execute(
                    collections.update().where(collections.c.name == ticket.collection).values(reindex=None)
                )
                await _release_generations(conn, ticket.collection, sentence_refs.c.generation == ticket.target)

    @staticmethod
    async def _own(conn: Any, ticket: ReindexTicket) -> None:
        row = (
            await conn.execute(sa.select(collections.c.reindex).where(collections.c.name == ticket.collection))
        ).first()
        if row is None:
            raise NotFound(f"collection {ticket.collection!r} was deleted during its reindex")
        if (row.reindex or {}).get("token") != ticket.token:
            raise Conflict(f"the reindex of {ticket.collection!r} was taken over by another one (--force)")


async def _release_generations(conn: Any, collection: str, which: sa.ColumnElement[bool]) -> None:
    """Release the sentence references of the collection's chunks in the generations `which` selects."""
    doc_ids = sa.select(documents.c.id).where(documents.c.collection == collection)
    await lock_versions(conn, versions.c.document_id.in_(doc_ids))
    await release(conn, sa.and_(sentence_refs.c.document_id.in_(doc_ids), which))

"""Collections: create, read with their document and chunk counts, delete with everything in them."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kernel.errors import Conflict, NotFound
from kernel.records import Collection, NewCollection
from kernel.types import CollectionPolicy
from rag.storage.engine import Transaction, now, utc
from rag.storage.schema import collections, documents, jobs, sentence_refs, versions
from rag.storage.sentence_vectors import lock_versions, release


class CollectionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, new: NewCollection) -> Collection:
        try:
            async with Transaction(self._engine) as conn:
                await conn.execute(
                    collections.insert().values(
                        name=new.name,
                        description=new.description,
                        meta=new.metadata,
                        filterable=new.filterable,
                        policy=new.policy,
                        created_at=now(),
                    )
                )
        except IntegrityError:
            raise Conflict(f"collection {new.name!r} already exists") from None
        return await self.get(new.name)

    async def list_all(self) -> list[Collection]:
        async with Transaction(self._engine) as conn:
            names: list[str] = list(
                (await conn.execute(sa.select(collections.c.name).order_by(collections.c.name))).scalars()
            )
            return [await _collection(conn, n) for n in names]

    async def get(self, name: str) -> Collection:
        async with Transaction(self._engine) as conn:
            return await _collection(conn, name)

    async def filterable_fields(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each collection's declared metadata filters; NotFound names the first unknown collection.

        Cheap on purpose: it runs on every search (unlike `get`, which counts documents)."""
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(collections.c.name, collections.c.filterable).where(collections.c.name.in_(list(names)))
            )
            found = {r.name: r.filterable or {} for r in rows}
        for name in names:
            if name not in found:
                raise NotFound(f"collection {name!r} does not exist")
        return found

    async def policies(self, names: Sequence[str]) -> dict[str, CollectionPolicy]:
        """Each collection's policy (defaults where none was set); NotFound names the first unknown collection.
        Cheap, like `filterable_fields`: it runs on every answer."""
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(collections.c.name, collections.c.policy).where(collections.c.name.in_(list(names)))
            )
            found = {r.name: CollectionPolicy.model_validate(r.policy or {}) for r in rows}
        for name in names:
            if name not in found:
                raise NotFound(f"collection {name!r} does not exist")
        return found

    async def blobs(self, name: str) -> set[str]:
        """Every blob a version in this collection refers to."""
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                sa.select(versions.c.blob)
                .join(documents, documents.c.id == versions.c.document_id)
                .where(documents.c.collection == name)
                .distinct()
            )
            return set(rows.scalars())

    async def delete(self, name: str) -> None:
        async with Transaction(self._engine) as conn:
            doc_ids = sa.select(documents.c.id).where(documents.c.collection == name)
            # Its sentences' vectors go unless a kept chunk in another collection has the same sentence.
            await lock_versions(conn, versions.c.document_id.in_(doc_ids))
            await release(conn, sentence_refs.c.document_id.in_(doc_ids))
            await conn.execute(versions.delete().where(versions.c.document_id.in_(doc_ids)))
            await conn.execute(documents.delete().where(documents.c.collection == name))
            await conn.execute(jobs.delete().where(jobs.c.collection == name))
            result = await conn.execute(collections.delete().where(collections.c.name == name))
            if result.rowcount == 0:
                raise NotFound(f"collection {name!r} does not exist")


async def require_collection(conn: AsyncConnection, name: str) -> None:
    """NotFound, with what to do about it, unless the collection exists (inside the caller's transaction)."""
    row = (
        await conn.execute(sa.select(collections.c.name, collections.c.reindex).where(collections.c.name == name))
    ).first()
    if row is None:
        raise NotFound(f"collection {name!r} does not exist: create it first with POST /v1/collections")
    if row.reindex:
        # Its chunks are being rebuilt from the stored versions: a version added now would miss the new generation.
        raise Conflict(f"collection {name!r} is being reindexed (`rag reindex`); add documents once it finishes")


async def _collection(conn: AsyncConnection, name: str) -> Collection:
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
    return Collection(
        name=row.name,
        description=row.description,
        metadata=row.meta,
        filterable=row.filterable or {},
        policy=row.policy or {},
        created_at=utc(row.created_at),
        document_count=stats[0],
        chunk_count=stats[1],
    )

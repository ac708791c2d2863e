"""The sentence vectors table: vectors of candidate answer sentences by model and text digest (schema.py), and the
references that say which kept chunks have them (sentence_refs), so that a vector goes once none is left.

Design: a vector row is shared by every chunk with that sentence (in any document, version or collection), so it
cannot be deleted with one document. Each version's chunks hold a reference per (generation, model, sentence),
written before the vectors are looked up or stored (`SentenceVectorStore.hold`); the catalog deletes a version's,
document's or collection's references in the transaction that purges or deletes them, and a reindex those of the
generation it leaves, then the vectors no reference is left for (`release`). The version rows are locked first, so
a job storing references for them at the same time either commits before (and its references are released too) or
finds the versions gone (and stores none)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kernel.types import VersionStatus
from rag.storage.engine import Transaction
from rag.storage.schema import sentence_refs, sentence_vectors, versions

# Digests per query: well under the bound parameters SQLite and asyncpg take in one statement.
_CHUNK = 500


class SentenceVectorStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, model_id: str, text_sha256: Sequence[str]) -> dict[str, list[float]]:
        wanted = sorted(set(text_sha256))
        found: dict[str, list[float]] = {}
        async with Transaction(self._engine) as conn:
            for start in range(0, len(wanted), _CHUNK):
                part = wanted[start : start + _CHUNK]
                rows = await conn.execute(
                    sa.select(sentence_vectors.c.text_sha256, sentence_vectors.c.vector).where(
                        sentence_vectors.c.model_id == model_id, sentence_vectors.c.text_sha256.in_(part)
                    )
                )
                for row in rows:
                    found[row.text_sha256] = np.frombuffer(row.vector, dtype=np.float32).tolist()
        return found

    async def put(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None:
        """Keeps the vector already stored for a digest (two jobs may encode the same sentence at once)."""
        if not vectors:
            return
        try:
            await self._insert_missing(model_id, vectors)
        except sa.exc.IntegrityError:
            # Another job stored some of these digests between this one's read and its insert (both encode the same
            # sentences): read again and insert the rest, whose vectors are the same.
            await self._insert_missing(model_id, vectors)

    async def _insert_missing(self, model_id: str, vectors: Mapping[str, Sequence[float]]) -> None:
        async with Transaction(self._engine) as conn:
            have: set[str] = set()
            digests = sorted(vectors)
            for start in range(0, len(digests), _CHUNK):
                part = digests[start : start + _CHUNK]
                have |= set(
                    (
                        await conn.execute(
                            sa.select(sentence_vectors.c.text_sha256).where(
                                sentence_vectors.c.model_id == model_id, sentence_vectors.c.text_sha256.in_(part)
                            )
                        )
                    ).scalars()
                )
            rows = [
                {"model_id": model_id, "text_sha256": d, "vector": np.asarray(vectors[d], dtype=np.float32).tobytes()}
                for d in digests
                if d not in have
            ]
            if rows:
                await conn.execute(sentence_vectors.insert(), rows)

    async def hold(self, model_id: str, generation: int, refs: Mapping[tuple[str, int], Collection[str]]) -> None:
        """Record that the chunks of each (document, version) in `generation` have these sentences (digests), so
        their vectors stay while one of them is kept. Versions deleted or purged meanwhile are skipped."""
        if not refs:
            return
        try:
            await self._hold(model_id, generation, refs)
        except sa.exc.IntegrityError:
            # A version was deleted between the read and the insert (the reference's foreign key), or another run
            # of the same job stored the same references: read again and insert the rest.
            await self._hold(model_id, generation, refs)

    async def _hold(self, model_id: str, generation: int, refs: Mapping[tuple[str, int], Collection[str]]) -> None:
        r = sentence_refs.c
        async with Transaction(self._engine) as conn:
            for (document_id, version), wanted in sorted(refs.items()):
                kept = await conn.execute(
                    sa.select(versions.c.version).where(
                        versions.c.document_id == document_id,
                        versions.c.version == version,
                        versions.c.status != VersionStatus.purged.value,
                    )
                )
                if kept.first() is None:
                    continue
                digests = sorted(set(wanted))
                for start in range(0, len(digests), _CHUNK):
                    part = digests[start : start + _CHUNK]
                    have: set[str] = set(
                        (
                            await conn.execute(
                                sa.select(r.text_sha256).where(
                                    r.document_id == document_id,
                                    r.version == version,
                                    r.generation == generation,
                                    r.model_id == model_id,
                                    r.text_sha256.in_(part),
                                )
                            )
                        ).scalars()
                    )
                    rows = [
                        {
                            "document_id": document_id,
                            "version": version,
                            "generation": generation,
                            "model_id": model_id,
                            "text_sha256": d,
                        }
                        for d in part
                        if d not in have
                    ]
                    if rows:
                        await conn.execute(sentence_refs.insert(), rows)


async def lock_versions(conn: AsyncConnection, where: sa.ColumnElement[bool]) -> None:
    """Lock the version rows `where` selects until the caller's transaction ends (PostgreSQL; SQLite has one writer
    at a time anyway): a job cannot add sentence references to them meanwhile (see the module's docstring)."""
    await conn.execute(sa.select(versions.c.document_id).where(where).with_for_update())


async def release(conn: AsyncConnection, where: sa.ColumnElement[bool]) -> int:
    """Delete the sentence references `where` selects, then the vectors no reference is left for, inside the
    caller's transaction; returns how many vectors were deleted."""
    held = (await conn.execute(sa.select(sentence_refs.c.model_id, sentence_refs.c.text_sha256).where(where))).all()
    if not held:
        return 0
    await conn.execute(sentence_refs.delete().where(where))
    by_model: dict[str, set[str]] = {}
    for row in held:
        by_model.setdefault(row.model_id, set()).add(row.text_sha256)
    deleted = 0
    for model_id, digests in by_model.items():
        ordered = sorted(digests)
        for start in range(0, len(ordered), _CHUNK):
            still = sa.select(sentence_refs.c.text_sha256).where(
                sentence_refs.c.model_id == sentence_vectors.c.model_id,
                sentence_refs.c.text_sha256 == sentence_vectors.c.text_sha256,
            )
            result = await conn.execute(
                sentence_vectors.delete().where(
                    sentence_vectors.c.model_id == model_id,
                    sentence_vectors.c.text_sha256.in_(ordered[start : start + _CHUNK]),
                    ~sa.exists(still),
                )
            )
            deleted += result.rowcount
    return deleted

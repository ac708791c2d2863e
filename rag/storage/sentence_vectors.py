"""The sentence vectors table: vectors of candidate answer sentences by model and text digest (schema.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from rag.storage.engine import Transaction
from rag.storage.schema import sentence_vectors

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

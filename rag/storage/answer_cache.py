"""The answer cache's queries: the newest original answer under a key, and when a collection last changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.records import StoredAnswer
from rag.storage.engine import Transaction, as_utc, utc
from rag.storage.schema import answers, documents


class AnswerCacheStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def newest(self, key: str, since: datetime) -> StoredAnswer | None:
        """The newest answer made (not itself served from cache) under `key` since `since`."""
        query = (
            answers.select()
            .where(answers.c.cache_key == key, answers.c.cached_from.is_(None), answers.c.created_at >= since)
            .order_by(answers.c.created_at.desc())
            .limit(1)
        )
        async with Transaction(self._engine) as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        data = dict(row._mapping)
        return StoredAnswer(**{**data, "created_at": utc(data["created_at"])})

    async def remember(self, answer_id: str, key: str) -> None:
        async with Transaction(self._engine) as conn:
            await conn.execute(answers.update().where(answers.c.id == answer_id).values(cache_key=key))

    async def last_change(self, collections: Sequence[str]) -> datetime | None:
        """When a document of these collections last changed: a version registered, activated or rolled back."""
        query = sa.select(sa.func.max(documents.c.updated_at)).where(documents.c.collection.in_(list(collections)))
        async with Transaction(self._engine) as conn:
            return as_utc((await conn.execute(query)).scalar())

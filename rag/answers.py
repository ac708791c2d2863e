"""Answers with their whole lineage, and chat conversations. Same database as the catalog."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from rag.catalog import _utc, metadata, now
from rag.errors import Conflict, NotFound

answers = sa.Table(
    "answers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("conversation_id", sa.String(36), nullable=True, index=True),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("standalone_question", sa.Text, nullable=False),
    sa.Column("collections", sa.JSON, nullable=False),
    sa.Column("filters", sa.JSON, nullable=True),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("abstained", sa.Boolean, nullable=False),
    sa.Column("abstain_reason", sa.Text, nullable=True),
    sa.Column("citations", sa.JSON, nullable=False),
    sa.Column("contexts", sa.JSON, nullable=False),
    sa.Column("prompt_id", sa.String(64), nullable=False),
    sa.Column("prompt_version", sa.String(64), nullable=False),
    sa.Column("generator", sa.String(128), nullable=False, index=True),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("usage", sa.JSON, nullable=False),
    sa.Column("timings_ms", sa.JSON, nullable=False),
    sa.Column("removed_citations", sa.Integer, nullable=False, default=0),
    sa.Column("evidence", sa.Float, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

turns = sa.Table(
    "conversation_turns",
    metadata,
    sa.Column("conversation_id", sa.String(36), primary_key=True),
    sa.Column("turn", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("answer_id", sa.String(36), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class AnswerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, record: dict[str, Any]) -> str:
        answer_id = record.get("id") or str(uuid.uuid4())
        async with self._engine.begin() as conn:
            await conn.execute(answers.insert().values(**{**record, "id": answer_id, "created_at": now()}))
        return answer_id

    async def get(self, answer_id: str) -> dict[str, Any]:
        async with self._engine.begin() as conn:
            row = (await conn.execute(answers.select().where(answers.c.id == answer_id))).first()
        if row is None:
            raise NotFound(f"answer {answer_id!r} does not exist")
        data = dict(row._mapping)
        data["created_at"] = _utc(data["created_at"])
        return data

    async def history(self, conversation_id: str, limit: int = 20) -> list[dict[str, Any]]:
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                turns.select()
                .where(turns.c.conversation_id == conversation_id)
                .order_by(turns.c.turn.desc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in reversed(list(rows))]

    async def add_turns(self, conversation_id: str, entries: list[tuple[str, str, str | None]]) -> None:
        try:
            await self._add_turns(conversation_id, entries)
        except IntegrityError:
            raise Conflict("another message of this conversation was answered at the same time; retry") from None

    async def _add_turns(self, conversation_id: str, entries: list[tuple[str, str, str | None]]) -> None:
        async with self._engine.begin() as conn:
            last = (
                await conn.execute(
                    sa.select(sa.func.max(turns.c.turn)).where(turns.c.conversation_id == conversation_id)
                )
            ).scalar()
            start = (last or 0) + 1
            await conn.execute(
                turns.insert(),
                [
                    {
                        "conversation_id": conversation_id,
                        "turn": start + i,
                        "role": role,
                        "content": content,
                        "answer_id": answer_id,
                        "created_at": now(),
                    }
                    for i, (role, content, answer_id) in enumerate(entries)
                ],
            )

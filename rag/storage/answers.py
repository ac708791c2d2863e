"""Answers with their whole lineage, their feedback, and chat conversations. Same database as the catalog."""

from __future__ import annotations

import dataclasses
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kernel.errors import Conflict, NotFound
from kernel.records import Feedback, NewAnswer, ReportQuery, ReportRow, StoredAnswer, Turn
from rag.storage.engine import Transaction, now, utc
from rag.storage.report_filters import report_filters
from rag.storage.schema import answer_collections, answers, feedback, scores, turns
from rag.storage.scores import ScoreStore, insert_owed, score_state
from rag.storage.usage import record_model_usage

_BATCH = 500  # ids per IN (...): well below every driver's bound-parameter limit


class AnswerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.scores = ScoreStore(engine)

    async def save(self, answer: NewAnswer, *, score: bool = False) -> str:
        """With `score`, the owed score is recorded in the same transaction: no answer is left unscored.

        An answer in a conversation is saved with its two turns (the question and the answer) in that transaction
        too: when another message of the conversation took the turn first (Conflict), nothing is kept."""
        answer_id = answer.id or str(uuid.uuid4())
        row = {**dataclasses.asdict(answer), "id": answer_id, "created_at": now()}
        del row["rewrite"]  # a row of model_usage, not a column
        try:
            async with Transaction(self._engine) as conn:
                await conn.execute(answers.insert().values(**row))
                links = [{"answer_id": answer_id, "collection": c} for c in dict.fromkeys(answer.collections)]
                if links:
                    await conn.execute(answer_collections.insert(), links)
                if score:
                    await insert_owed(conn, answer_id)
                await record_model_usage(conn, answer_id, "rewrite", answer.rewrite)
                if answer.conversation_id is not None:
                    entries = [("user", answer.question, None), ("assistant", answer.answer, answer_id)]
                    await _append_turns(conn, answer.conversation_id, entries)
        except IntegrityError:
            if answer.conversation_id is None:
                raise
            raise Conflict(_TURN_TAKEN) from None
        return answer_id

    async def get(self, answer_id: str) -> StoredAnswer:
        async with Transaction(self._engine) as conn:
            row = (await conn.execute(answers.select().where(answers.c.id == answer_id))).first()
        if row is None:
            raise NotFound(f"answer {answer_id!r} does not exist")
        data = dict(row._mapping)
        return StoredAnswer(**{**data, "created_at": utc(data["created_at"])})

    async def add_feedback(
        self, answer_id: str, rating: str, comment: str | None, key_id: str | None = None
    ) -> Feedback:
        await self.get(answer_id)
        created = now()
        row = {"answer_id": answer_id, "rating": rating, "comment": comment, "created_at": created, "key_id": key_id}
        async with Transaction(self._engine) as conn:
            res = await conn.execute(feedback.insert().values(**row))
        key = res.inserted_primary_key
        assert key is not None  # a single-row insert always reports its key
        return Feedback(key[0], answer_id, rating, comment, created)

    async def feedback_for(self, answer_ids: list[str]) -> dict[str, list[Feedback]]:
        out: dict[str, list[Feedback]] = {}
        if not answer_ids:
            return out
        async with Transaction(self._engine) as conn:
            for i in range(0, len(answer_ids), _BATCH):
                rows = await conn.execute(
                    feedback.select()
                    .where(feedback.c.answer_id.in_(answer_ids[i : i + _BATCH]))
                    .order_by(feedback.c.id)
                )
                for r in rows:
                    item = Feedback(r.id, r.answer_id, r.rating, r.comment, utc(r.created_at))
                    out.setdefault(item.answer_id, []).append(item)
        return out

    async def report_rows(self, query: ReportQuery) -> list[ReportRow]:
        """Answers with their score (if any), newest first: the raw material of the reports.

        Every filter, the collection too, is applied in SQL before the limit: the newest `limit` answers of the
        selection, however many other answers there are."""
        source = answers.outerjoin(scores, scores.c.answer_id == answers.c.id)
        if query.collection is not None:
            source = source.join(
                answer_collections,
                (answer_collections.c.answer_id == answers.c.id)
                & (answer_collections.c.collection == query.collection),
            )
        columns = [answers.c[f.name] for f in dataclasses.fields(ReportRow) if f.name != "score"]
        select = sa.select(*columns, *(c.label(f"s_{c.name}") for c in scores.c)).select_from(source)
        select = select.where(answers.c.replay_of.is_(None))  # an analyst's replay is not traffic
        select = report_filters(select, query, answers.c.created_at)
        select = select.order_by(answers.c.created_at.desc(), answers.c.id).limit(query.limit)
        async with Transaction(self._engine) as conn:
            rows = [r._mapping for r in await conn.execute(select)]
        return [
            ReportRow(
                **{c.name: r[c.name] for c in columns if c.name != "created_at"},
                created_at=utc(r["created_at"]),
                score=None if r["s_answer_id"] is None else score_state(r, prefix="s_"),
            )
            for r in rows
        ]

    async def conversation_owner(self, conversation_id: str) -> tuple[str | None, list[str]] | None:
        """The key that holds a conversation and every collection its answers drew on; None if it has none."""
        async with Transaction(self._engine) as conn:
            found = await conn.execute(sa.select(answers.c.key_id).where(answers.c.conversation_id == conversation_id))
            keys: list[str | None] = list(found.scalars().all())
            if not keys:
                return None
            used = await conn.execute(
                sa.select(answer_collections.c.collection)
                .distinct()
                .join(answers, answers.c.id == answer_collections.c.answer_id)
                .where(answers.c.conversation_id == conversation_id)
            )
            return keys[0], sorted(used.scalars().all())

    async def history(self, conversation_id: str, limit: int = 20) -> list[Turn]:
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(
                turns.select()
                .where(turns.c.conversation_id == conversation_id)
                .order_by(turns.c.turn.desc())
                .limit(limit)
            )
            found = [Turn(**{**r._mapping, "created_at": utc(r.created_at)}) for r in rows]
        return found[::-1]


_TURN_TAKEN = "another message of this conversation was answered at the same time; retry"


async def _append_turns(
    conn: AsyncConnection, conversation_id: str, entries: list[tuple[str, str, str | None]]
) -> None:
    """(role, content, answer id) after the conversation's last turn; IntegrityError when another took the turn."""
    last = (
        await conn.execute(sa.select(sa.func.max(turns.c.turn)).where(turns.c.conversation_id == conversation_id))
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

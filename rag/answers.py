"""Answers with their whole lineage, and chat conversations. Same database as the catalog."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from evals.scores import METRICS, Scores
from rag.catalog import _Transaction, _utc, metadata, now
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


scores = sa.Table(
    "answer_scores",
    metadata,
    sa.Column("answer_id", sa.String(36), primary_key=True),
    # pending: a score_answer job is owed; done: scored (metrics may still be null, with their reasons).
    sa.Column("status", sa.String(16), nullable=False, index=True),
    # Bumped by every request: a job only marks the score done if no newer request came in while it ran.
    sa.Column("requests", sa.Integer, nullable=False, default=1),
    sa.Column("reference", sa.Text, nullable=True),
    sa.Column("scorer", sa.String(64), nullable=True),
    sa.Column("scorer_version", sa.String(64), nullable=True),
    sa.Column("faithfulness", sa.Float, nullable=True),
    sa.Column("context_precision", sa.Float, nullable=True),
    sa.Column("context_recall", sa.Float, nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
)

feedback = sa.Table(
    "answer_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("answer_id", sa.String(36), nullable=False, index=True),
    sa.Column("rating", sa.String(8), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

SCORE_STATUS_PENDING = "pending"
SCORE_STATUS_DONE = "done"


class AnswerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, record: dict[str, Any], *, score: bool = False) -> str:
        """With `score`, the owed score is recorded in the same transaction: no answer is left unscored."""
        answer_id = record.get("id") or str(uuid.uuid4())
        async with _Transaction(self._engine) as conn:
            await conn.execute(answers.insert().values(**{**record, "id": answer_id, "created_at": now()}))
            if score:
                await conn.execute(
                    scores.insert().values(
                        answer_id=answer_id, status=SCORE_STATUS_PENDING, requests=1, requested_at=now()
                    )
                )
        return answer_id

    async def get(self, answer_id: str) -> dict[str, Any]:
        async with _Transaction(self._engine) as conn:
            row = (await conn.execute(answers.select().where(answers.c.id == answer_id))).first()
        if row is None:
            raise NotFound(f"answer {answer_id!r} does not exist")
        data = dict(row._mapping)
        data["created_at"] = _utc(data["created_at"])
        return data

    async def _request_score(self, answer_id: str, reference: str | None, set_reference: bool) -> None:
        values: dict[str, Any] = {"status": SCORE_STATUS_PENDING, "requested_at": now(), "error": None}
        if set_reference:
            values["reference"] = reference
        async with _Transaction(self._engine) as conn:
            done = await conn.execute(
                scores.update().where(scores.c.answer_id == answer_id).values(**values, requests=scores.c.requests + 1)
            )
            if done.rowcount == 0:
                await conn.execute(scores.insert().values(answer_id=answer_id, requests=1, **values))

    async def request_score(self, answer_id: str, reference: str | None = None, *, set_reference: bool = False) -> None:
        """Mark a score as owed (the worker's startup re-enqueues every owed score); keeps an attached reference."""
        try:
            await self._request_score(answer_id, reference, set_reference)
        except IntegrityError:  # a concurrent request inserted the row first: ours is an update now
            await self._request_score(answer_id, reference, set_reference)

    async def save_scores(self, answer_id: str, result: Scores, requests: int) -> None:
        """`requests`: the counter the job read before scoring; a newer request keeps the score pending."""
        row = {
            "status": sa.case((scores.c.requests == requests, SCORE_STATUS_DONE), else_=scores.c.status),
            "scorer": result.scorer,
            "scorer_version": result.scorer_version,
            **{m: result.value(m) for m in METRICS},
            "result": result.model_dump(mode="json"),
            "error": None,
            "scored_at": now(),
        }
        async with _Transaction(self._engine) as conn:
            await conn.execute(scores.update().where(scores.c.answer_id == answer_id).values(**row))

    async def score_failed(self, answer_id: str, error: str) -> None:
        """Close an owed score with the error; a score that is already done keeps its result."""
        async with _Transaction(self._engine) as conn:
            await conn.execute(
                scores.update()
                .where(scores.c.answer_id == answer_id, scores.c.status == SCORE_STATUS_PENDING)
                # The previous result is stale now: it must not count in reports beside this error.
                .values(status=SCORE_STATUS_DONE, error=error, scored_at=now(), result=None, **dict.fromkeys(METRICS))
            )

    async def score_row(self, answer_id: str) -> dict[str, Any] | None:
        async with _Transaction(self._engine) as conn:
            row = (await conn.execute(scores.select().where(scores.c.answer_id == answer_id))).first()
        if row is None:
            return None
        data = dict(row._mapping)
        data["requested_at"], data["scored_at"] = _utc(data["requested_at"]), _utc(data["scored_at"])
        return data

    async def pending_scores(self, limit: int | None = None) -> list[str]:
        """Answers whose score is owed, oldest request first."""
        query = (
            sa.select(scores.c.answer_id)
            .where(scores.c.status == SCORE_STATUS_PENDING)
            .order_by(scores.c.requested_at)
            .limit(limit)
        )
        async with _Transaction(self._engine) as conn:
            return [r[0] for r in await conn.execute(query)]

    async def add_feedback(self, answer_id: str, rating: str, comment: str | None) -> dict[str, Any]:
        await self.get(answer_id)
        row = {"answer_id": answer_id, "rating": rating, "comment": comment, "created_at": now()}
        async with _Transaction(self._engine) as conn:
            res = await conn.execute(feedback.insert().values(**row))
        return {"id": res.inserted_primary_key[0], **row}

    async def feedback_for(self, answer_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        if not answer_ids:
            return out
        async with _Transaction(self._engine) as conn:
            for i in range(0, len(answer_ids), 500):
                rows = await conn.execute(
                    feedback.select().where(feedback.c.answer_id.in_(answer_ids[i : i + 500])).order_by(feedback.c.id)
                )
                for r in rows:
                    item = dict(r._mapping)
                    item["created_at"] = _utc(item["created_at"])
                    out.setdefault(item["answer_id"], []).append(item)
        return out

    async def scored_answers(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        prompt_version: str | None = None,
        generator: str | None = None,
        limit: int = 100_000,
    ) -> list[dict[str, Any]]:
        """Answers with their score row (if any), newest first: the raw material of the reports."""
        # Not the contexts (whole chunk texts): a report over many answers needs only what it shows.
        columns = [c for c in answers.c if c.name not in ("contexts", "usage", "timings_ms", "filters")]
        score_columns = [c.label(f"s_{c.name}") for c in scores.c if c.name not in ("answer_id", "reference")]
        query = sa.select(*columns, *score_columns).select_from(
            answers.outerjoin(scores, scores.c.answer_id == answers.c.id)
        )
        if since is not None:
            query = query.where(answers.c.created_at >= since)
        if until is not None:
            query = query.where(answers.c.created_at < until)
        if prompt_version:
            query = query.where(answers.c.prompt_version == prompt_version)
        if generator:
            query = query.where(answers.c.generator == generator)
        query = query.order_by(answers.c.created_at.desc()).limit(limit)
        async with _Transaction(self._engine) as conn:
            rows = [dict(r._mapping) for r in await conn.execute(query)]
        for row in rows:
            row["created_at"] = _utc(row["created_at"])
        return rows

    async def history(self, conversation_id: str, limit: int = 20) -> list[dict[str, Any]]:
        async with _Transaction(self._engine) as conn:
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
        async with _Transaction(self._engine) as conn:
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

"""What the operations page and the drift indicators read from the metadata database (issue 11): answers, their
scores and feedback, jobs, the audit log's requests, question embeddings and alerts. Same database as the catalog.

Rows are read with the few columns needed (JSON fields picked in SQL, never an answer's contexts) and grouped by
day in Python, which reads the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.records import SCORE_STATUS_PENDING
from rag.storage.engine import Transaction, as_utc, now, utc
from rag.storage.schema import (
    answer_collections,
    answers,
    audit_log,
    documents,
    feedback,
    jobs,
    model_usage,
    ops_alerts,
    question_vectors,
    scores,
    versions,
)

_BATCH = 500  # ids per IN (...): well below every driver's bound-parameter limit


@dataclasses.dataclass(frozen=True)
class Scope:
    """Which answers: from `since` (inclusive) to `until` (exclusive), of one collection or of all, never one that
    drew on a collection outside `grants` (None: every collection)."""

    since: datetime
    until: datetime
    collection: str | None = None
    grants: frozenset[str] | None = None


@dataclasses.dataclass(frozen=True)
class AnswerFacts:
    id: str
    created_at: datetime
    abstained: bool
    cached: bool
    total_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    top_score: float | None
    faithfulness: float | None
    question: str
    model: str | None = None  # what the price table is keyed by


@dataclasses.dataclass(frozen=True)
class Alert:
    id: int
    day: str
    collection: str
    indicator: str
    value: float
    threshold: float
    above: bool
    raised_at: datetime
    delivered_at: datetime | None
    delivery_error: str | None


class OpsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def _scoped(
        self, select: sa.Select, scope: Scope, at: sa.ColumnElement[datetime] = answers.c.created_at
    ) -> sa.Select:
        """The scope's rows of `select` (over answers): `at` is the date the window applies to, the answer's own by
        default."""
        if scope.collection is not None:
            select = select.join(
                answer_collections,
                (answer_collections.c.answer_id == answers.c.id)
                & (answer_collections.c.collection == scope.collection),
            )
        if scope.grants is not None:
            # Every collection the answer drew on must be granted; an alias, so the join above is not correlated.
            links = answer_collections.alias("granted_links")
            forbidden = (
                sa.select(links.c.answer_id)
                .where(links.c.answer_id == answers.c.id, links.c.collection.not_in(sorted(scope.grants)))
                .correlate(answers)
            )
            select = select.where(~sa.exists(forbidden))
        # An analyst's replay is not traffic.
        return select.where(answers.c.replay_of.is_(None), at >= scope.since, at < scope.until)

    async def answer_facts(self, scope: Scope, limit: int) -> list[AnswerFacts]:
        """The scope's answers, newest first, at most `limit`."""
        select = sa.select(
            answers.c.id,
            answers.c.created_at,
            answers.c.abstained,
            answers.c.cached_from,
            answers.c.timings_ms["total"].as_float().label("total_ms"),
            answers.c.usage["prompt_tokens"].as_integer().label("prompt_tokens"),
            answers.c.usage["completion_tokens"].as_integer().label("completion_tokens"),
            # The top-ranked context's dense (cosine) score: how near the collection the question landed.
            answers.c.contexts[(0, "scores", "dense_score")].as_float().label("top_score"),
            scores.c.faithfulness,
            answers.c.standalone_question,
            answers.c.model,
        ).select_from(answers.outerjoin(scores, scores.c.answer_id == answers.c.id))
        select = self._scoped(select, scope).order_by(answers.c.created_at.desc(), answers.c.id).limit(limit)
        async with Transaction(self._engine) as conn:
            rows = (await conn.execute(select)).all()
        return [
            AnswerFacts(
                r.id,
                utc(r.created_at),
                bool(r.abstained),
                r.cached_from is not None,
                r.total_ms,
                int(r.prompt_tokens or 0),
                int(r.completion_tokens or 0),
                r.top_score,
                r.faithfulness,
                r.standalone_question,
                r.model,
            )
            for r in rows
        ]

    async def model_usage_by_day(self, scope: Scope) -> dict[str, dict[tuple[str, str], tuple[int, int]]]:
        """{day: {(role, model): (prompt, completion)}}: what models spent for the scope's answers beside generating
        them (a judge scoring them, a chat rewrite), by the day it was spent."""
        u = model_usage.c
        select = sa.select(u.created_at, u.role, u.model, u.prompt_tokens, u.completion_tokens).select_from(
            model_usage.join(answers, answers.c.id == u.answer_id)
        )
        async with Transaction(self._engine) as conn:
            # By when the tokens were spent: a rescore of an old answer spends today.
            rows = (await conn.execute(self._scoped(select, scope, u.created_at))).all()
        found: dict[str, dict[tuple[str, str], tuple[int, int]]] = {}
        for r in rows:
            day = found.setdefault(utc(r.created_at).date().isoformat(), {})
            before = day.get((r.role, r.model), (0, 0))
            day[(r.role, r.model)] = (before[0] + r.prompt_tokens, before[1] + r.completion_tokens)
        return found

    async def feedback_by_day(self, scope: Scope) -> dict[str, tuple[int, int]]:
        """{day: (up, down)}: the ratings of the scope's answers, by the day the rated answer was made."""
        select = sa.select(answers.c.created_at, feedback.c.rating).select_from(
            feedback.join(answers, answers.c.id == feedback.c.answer_id)
        )
        out: dict[str, tuple[int, int]] = {}
        async with Transaction(self._engine) as conn:
            for r in await conn.execute(self._scoped(select, scope)):
                day = utc(r.created_at).date().isoformat()
                up, down = out.get(day, (0, 0))
                out[day] = (up + 1, down) if r.rating == "up" else (up, down + 1)
        return out

    async def requests_by_day(self, scope: Scope) -> dict[str, tuple[int, int, int]]:
        """{day: (requests, 4xx, 5xx)} from the audit log, which records every request the API served."""
        day = sa.func.substr(audit_log.c.at, 1, 10).label("day")
        client = sa.func.sum(sa.case((audit_log.c.status.between(400, 499), 1), else_=0)).label("client")
        server = sa.func.sum(sa.case((audit_log.c.status >= 500, 1), else_=0)).label("server")
        select = sa.select(day, sa.func.count().label("n"), client, server).where(
            audit_log.c.at >= scope.since.isoformat(), audit_log.c.at < scope.until.isoformat()
        )
        if scope.collection is not None:
            select = select.where(audit_log.c.collection == scope.collection)
        elif scope.grants is not None:
            select = select.where(audit_log.c.collection.in_(sorted(scope.grants)))
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(select.group_by(day))
            return {r.day: (int(r.n), int(r.client or 0), int(r.server or 0)) for r in rows}

    async def ingestion_by_day(self, scope: Scope) -> dict[str, dict[str, int]]:
        """{day: {succeeded, failed, chunks}}: ingestion jobs finished and chunks indexed per day."""
        finished = sa.select(jobs.c.finished_at.label("at"), jobs.c.status).where(
            jobs.c.finished_at >= scope.since, jobs.c.finished_at < scope.until
        )
        indexed = (
            sa.select(versions.c.indexed_at.label("at"), versions.c.chunk_count)
            .select_from(versions.join(documents, documents.c.id == versions.c.document_id))
            .where(versions.c.indexed_at >= scope.since, versions.c.indexed_at < scope.until)
        )
        if scope.collection is not None:
            finished = finished.where(jobs.c.collection == scope.collection)
            indexed = indexed.where(documents.c.collection == scope.collection)
        elif scope.grants is not None:
            finished = finished.where(jobs.c.collection.in_(sorted(scope.grants)))
            indexed = indexed.where(documents.c.collection.in_(sorted(scope.grants)))
        out: dict[str, dict[str, int]] = {}

        def bucket(at: datetime) -> dict[str, int]:
            return out.setdefault(utc(at).date().isoformat(), {"succeeded": 0, "failed": 0, "chunks": 0})

        async with Transaction(self._engine) as conn:
            for r in await conn.execute(finished):
                if r.status in ("succeeded", "failed"):
                    bucket(r.at)[r.status] += 1
            for r in await conn.execute(indexed):
                bucket(r.at)["chunks"] += int(r.chunk_count or 0)
        return out

    async def jobs_waiting(self, scope: Scope) -> int:
        """Ingestion jobs queued or running now (of the collection, or of the granted ones)."""
        select = sa.select(sa.func.count()).where(jobs.c.status.in_(("queued", "running")))
        if scope.collection is not None:
            select = select.where(jobs.c.collection == scope.collection)
        elif scope.grants is not None:
            select = select.where(jobs.c.collection.in_(sorted(scope.grants)))
        async with Transaction(self._engine) as conn:
            return int(await conn.scalar(select) or 0)

    async def scores_owed(self) -> int:
        async with Transaction(self._engine) as conn:
            return int(
                await conn.scalar(sa.select(sa.func.count()).where(scores.c.status == SCORE_STATUS_PENDING)) or 0
            )

    # ----- question embeddings ---------------------------------------------------------------------------------
    async def vectors(self, answer_ids: list[str], model_id: str) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        async with Transaction(self._engine) as conn:
            for i in range(0, len(answer_ids), _BATCH):
                rows = await conn.execute(
                    sa.select(question_vectors.c.answer_id, question_vectors.c.vector).where(
                        question_vectors.c.answer_id.in_(answer_ids[i : i + _BATCH]),
                        question_vectors.c.model_id == model_id,
                    )
                )
                for r in rows:
                    out[r.answer_id] = np.frombuffer(r.vector, dtype="<f4").astype(float).tolist()
        return out

    async def put_vectors(self, found: dict[str, list[float]], model_id: str) -> None:
        """Keep question embeddings; one made by another model is replaced (the model decides the vector)."""
        if not found:
            return
        rows = [
            {"answer_id": k, "model_id": model_id, "vector": np.asarray(v, dtype="<f4").tobytes()}
            for k, v in found.items()
        ]
        try:
            async with Transaction(self._engine) as conn:
                ids = list(found)
                for i in range(0, len(ids), _BATCH):
                    await conn.execute(
                        question_vectors.delete().where(question_vectors.c.answer_id.in_(ids[i : i + _BATCH]))
                    )
                await conn.execute(question_vectors.insert(), rows)
        except sa.exc.IntegrityError:
            pass  # another request stored the same questions' vectors meanwhile: the same vectors

    # ----- alerts ----------------------------------------------------------------------------------------------
    async def raise_alert(
        self, day: str, collection: str, indicator: str, value: float, threshold: float
    ) -> int | None:
        """Record an alert; its id, or None when this day, collection and indicator already have one."""
        key = (
            (ops_alerts.c.day == day) & (ops_alerts.c.collection == collection) & (ops_alerts.c.indicator == indicator)
        )
        async with Transaction(self._engine) as conn:
            if await conn.scalar(sa.select(ops_alerts.c.id).where(key)) is not None:
                return None
            row = {
                "day": day,
                "collection": collection,
                "indicator": indicator,
                "value": value,
                "threshold": threshold,
                "above": value > threshold,
                "raised_at": now(),
            }
            try:
                res = await conn.execute(ops_alerts.insert().values(**row))
            except sa.exc.IntegrityError:
                return None  # another evaluation raised it meanwhile
        inserted = res.inserted_primary_key
        return None if inserted is None else int(inserted[0])

    async def delivered(self, alert_id: int, error: str | None) -> None:
        values = {"delivered_at": None if error else now(), "delivery_error": error}
        async with Transaction(self._engine) as conn:
            await conn.execute(ops_alerts.update().where(ops_alerts.c.id == alert_id).values(**values))

    async def alerts(self, since_day: str, collections: list[str] | None) -> list[Alert]:
        """Alerts from `since_day` on, of these collections (None: all), newest first."""
        select = sa.select(ops_alerts).where(ops_alerts.c.day >= since_day)
        if collections is not None:
            select = select.where(ops_alerts.c.collection.in_(collections))
        select = select.order_by(ops_alerts.c.day.desc(), ops_alerts.c.id.desc()).limit(1000)
        async with Transaction(self._engine) as conn:
            rows = (await conn.execute(select)).all()
        return [
            Alert(**{**r._mapping, "raised_at": utc(r.raised_at), "delivered_at": as_utc(r.delivered_at)}) for r in rows
        ]

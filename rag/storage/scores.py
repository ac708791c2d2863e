"""Answer scores: owed (pending) until a scoring job stores its result; a newer request keeps them owed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kernel.records import SCORE_STATUS_DONE, SCORE_STATUS_PENDING, ScoreResult, ScoreState
from kernel.usage import ModelTokens
from rag.storage.engine import Transaction, as_utc, now, utc
from rag.storage.schema import METRIC_COLUMNS, scores
from rag.storage.usage import record_model_usage


class ScoreStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def request(self, answer_id: str, reference: str | None = None, *, set_reference: bool = False) -> None:
        """Mark a score as owed (the worker's startup re-enqueues every owed score); keeps an attached reference."""
        try:
            await self._request(answer_id, reference, set_reference)
        except IntegrityError:  # a concurrent request inserted the row first: ours is an update now
            await self._request(answer_id, reference, set_reference)

    async def _request(self, answer_id: str, reference: str | None, set_reference: bool) -> None:
        values: dict[str, Any] = {"status": SCORE_STATUS_PENDING, "requested_at": now(), "error": None}
        if set_reference:
            values["reference"] = reference
        async with Transaction(self._engine) as conn:
            done = await conn.execute(
                scores.update().where(scores.c.answer_id == answer_id).values(**values, requests=scores.c.requests + 1)
            )
            if done.rowcount == 0:
                await conn.execute(scores.insert().values(answer_id=answer_id, requests=1, **values))

    async def save(self, answer_id: str, result: ScoreResult, requests: int) -> None:
        """`requests`: the counter the job read before scoring; a newer request keeps the score pending."""
        row = {
            "status": sa.case((scores.c.requests == requests, SCORE_STATUS_DONE), else_=scores.c.status),
            "scorer": result.scorer,
            "scorer_version": result.scorer_version,
            **{m: result.values.get(m) for m in METRIC_COLUMNS},
            "result": result.detail,
            "error": None,
            "scored_at": now(),
        }
        async with Transaction(self._engine) as conn:
            await conn.execute(scores.update().where(scores.c.answer_id == answer_id).values(**row))
            await record_model_usage(conn, answer_id, "judge", result.judge)

    async def judge_spent(self, answer_id: str, tokens: ModelTokens | None) -> None:
        async with Transaction(self._engine) as conn:
            await record_model_usage(conn, answer_id, "judge", tokens)

    async def failed(self, answer_id: str, error: str) -> None:
        """Close an owed score with the error; a score that is already done keeps its result."""
        async with Transaction(self._engine) as conn:
            await conn.execute(
                scores.update()
                .where(scores.c.answer_id == answer_id, scores.c.status == SCORE_STATUS_PENDING)
                # The previous result is stale now: it must not count in reports beside this error.
                .values(
                    status=SCORE_STATUS_DONE,
                    error=error,
                    scored_at=now(),
                    result=None,
                    **dict.fromkeys(METRIC_COLUMNS),
                )
            )

    async def state(self, answer_id: str) -> ScoreState | None:
        async with Transaction(self._engine) as conn:
            row = (await conn.execute(scores.select().where(scores.c.answer_id == answer_id))).first()
        return None if row is None else score_state(row._mapping)

    async def claim(self, claimant: str, first: str | None, limit: int, lease: timedelta) -> list[str]:
        """Owed scores no other batch holds, `first` first and then the oldest requests: at most `limit`, each held
        by `claimant` until the lease ends (`renew` extends it, `release` ends it).

        The UPDATE itself checks that a score is still free, so of two claimers racing for it exactly one gets it
        (PostgreSQL re-checks the condition once the other's row lock is gone; SQLite runs one writer at a time).
        """
        ts = now()
        free = (scores.c.status == SCORE_STATUS_PENDING) & (
            scores.c.claimed_until.is_(None) | (scores.c.claimed_until < ts)
        )
        async with Transaction(self._engine) as conn:
            head: list[str] = []
            if first is not None:
                head = list(
                    (
                        await conn.execute(sa.select(scores.c.answer_id).where(free, scores.c.answer_id == first))
                    ).scalars()
                )
            oldest = await conn.execute(
                sa.select(scores.c.answer_id).where(free).order_by(scores.c.requested_at).limit(limit)
            )
            candidates = list(dict.fromkeys([*head, *oldest.scalars()]))[:limit]
        if not candidates:
            return []
        # A transaction of its own: on SQLite a read transaction that then writes can fail when another wrote.
        async with Transaction(self._engine) as conn:
            won = await conn.execute(
                scores.update()
                .where(scores.c.answer_id.in_(candidates), free)
                .values(claimed_by=claimant, claimed_until=ts + lease)
                .returning(scores.c.answer_id)
            )
            mine = set(won.scalars())
        return [c for c in candidates if c in mine]

    async def renew(self, claimant: str, answer_ids: Sequence[str], lease: timedelta) -> None:
        async with Transaction(self._engine) as conn:
            await conn.execute(
                scores.update()
                .where(scores.c.answer_id.in_(list(answer_ids)), scores.c.claimed_by == claimant)
                .values(claimed_until=now() + lease)
            )

    async def release(self, claimant: str, answer_ids: Sequence[str]) -> None:
        async with Transaction(self._engine) as conn:
            await conn.execute(
                scores.update()
                .where(scores.c.answer_id.in_(list(answer_ids)), scores.c.claimed_by == claimant)
                .values(claimed_by=None, claimed_until=None)
            )

    async def pending(self, limit: int | None = None) -> list[str]:
        """Answers whose score is owed, oldest request first."""
        query = (
            sa.select(scores.c.answer_id)
            .where(scores.c.status == SCORE_STATUS_PENDING)
            .order_by(scores.c.requested_at)
            .limit(limit)
        )
        async with Transaction(self._engine) as conn:
            return [r[0] for r in await conn.execute(query)]


async def insert_owed(conn: AsyncConnection, answer_id: str) -> None:
    """An owed score, inside the caller's transaction (the one that saves the answer)."""
    await conn.execute(
        scores.insert().values(answer_id=answer_id, status=SCORE_STATUS_PENDING, requests=1, requested_at=now())
    )


def score_state(row: RowMapping, prefix: str = "") -> ScoreState:
    """A score row (its columns named with `prefix`, as in a join) as a record."""
    return ScoreState(
        answer_id=row[f"{prefix}answer_id"],
        status=row[f"{prefix}status"],
        requests=row[f"{prefix}requests"],
        reference=row[f"{prefix}reference"],
        scorer=row[f"{prefix}scorer"],
        scorer_version=row[f"{prefix}scorer_version"],
        faithfulness=row[f"{prefix}faithfulness"],
        context_precision=row[f"{prefix}context_precision"],
        context_recall=row[f"{prefix}context_recall"],
        result=row[f"{prefix}result"],
        error=row[f"{prefix}error"],
        requested_at=utc(row[f"{prefix}requested_at"]),
        scored_at=as_utc(row[f"{prefix}scored_at"]),
        claimed_by=row[f"{prefix}claimed_by"],
        claimed_until=as_utc(row[f"{prefix}claimed_until"]),
    )

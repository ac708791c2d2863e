"""Token usage and budgets: what answers spent (from the usage stored with each answer), the budgets admins set.

Same database as the answers. Tokens are read from each answer's `usage` JSON in SQL (`prompt_tokens`,
`completion_tokens`), so the answers made before budgets existed count too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.budgets import Budget, Spent, check_period, check_scope
from kernel.errors import NotFound
from kernel.records import ReportQuery
from rag.storage.engine import Transaction, now, utc
from rag.storage.schema import answer_collections, answers, budgets


def _tokens(name: str) -> sa.ColumnElement[int]:
    return sa.func.coalesce(answers.c.usage[name].as_integer(), 0)


PROMPT = _tokens("prompt_tokens")
COMPLETION = _tokens("completion_tokens")


@dataclass(frozen=True)
class UsageRow:
    """One answer's tokens, once per collection it drew on."""

    answer_id: str
    created_at: datetime
    key_id: str | None
    collection: str
    prompt_version: str
    model: str
    prompt_tokens: int
    completion_tokens: int


class UsageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # ----- budgets -----------------------------------------------------------------------------------------------
    async def put_budget(self, budget: Budget, key_id: str | None) -> Budget:
        row = {"tokens": budget.tokens, "cost": budget.cost, "updated_at": now(), "key_id": key_id}
        where = _budget_is(budget.scope, budget.target, budget.period)
        async with Transaction(self._engine) as conn:
            changed = await conn.execute(budgets.update().where(where).values(**row))
            if changed.rowcount == 0:
                await conn.execute(
                    budgets.insert().values(scope=budget.scope, target=budget.target, period=budget.period, **row)
                )
        return budget

    async def delete_budget(self, scope: str, target: str, period: str) -> None:
        async with Transaction(self._engine) as conn:
            gone = await conn.execute(budgets.delete().where(_budget_is(scope, target, period)))
        if gone.rowcount == 0:
            raise NotFound(f"there is no budget {scope}/{target}/{period}")

    async def budgets(self) -> list[Budget]:
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(budgets.select().order_by(budgets.c.scope, budgets.c.target, budgets.c.period))
            return [_budget(r._mapping) for r in rows]

    async def budgets_for(self, key_id: str | None, collections: Sequence[str]) -> list[Budget]:
        """The budgets a question of this key over these collections falls under: the key's, then each collection's."""
        which = (budgets.c.scope == "collection") & budgets.c.target.in_(list(collections))
        if key_id is not None:
            which = which | ((budgets.c.scope == "key") & (budgets.c.target == key_id))
        async with Transaction(self._engine) as conn:
            rows = await conn.execute(budgets.select().where(which))
            found = [_budget(r._mapping) for r in rows]
        return sorted(found, key=lambda b: (b.scope != "key", b.target, b.period))

    # ----- spending ----------------------------------------------------------------------------------------------
    async def spent(self, scope: str, target: str, since: datetime) -> Spent:
        """Tokens the answers of a key, or over a collection, used since `since`, per model."""
        used = sa.case((sa.or_(PROMPT > 0, COMPLETION > 0), 1), else_=0)
        select = sa.select(answers.c.model, sa.func.sum(PROMPT), sa.func.sum(COMPLETION), sa.func.sum(used)).where(
            answers.c.created_at >= since
        )
        if scope == "key":
            select = select.where(answers.c.key_id == target)
        else:
            select = select.join(
                answer_collections,
                (answer_collections.c.answer_id == answers.c.id) & (answer_collections.c.collection == target),
            )
        select = select.group_by(answers.c.model)
        async with Transaction(self._engine) as conn:
            rows = (await conn.execute(select)).all()
        return Spent({r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows})

    async def usage_rows(self, query: ReportQuery) -> list[UsageRow]:
        """Each answer once per collection it drew on, newest first, the report's filters applied in SQL (the
        caller's grants too: one forbidden collection hides the answer, as in the reports)."""
        select = sa.select(
            answers.c.id,
            answers.c.created_at,
            answers.c.key_id,
            answer_collections.c.collection,
            answers.c.prompt_version,
            answers.c.model,
            PROMPT.label("prompt_tokens"),
            COMPLETION.label("completion_tokens"),
        ).join(answer_collections, answer_collections.c.answer_id == answers.c.id)
        if query.collection is not None:
            select = select.where(answer_collections.c.collection == query.collection)
        if query.grants is not None:
            # An alias of its own: the outer query joins answer_collections too, and must not be correlated with it.
            other = answer_collections.alias("other_collections")
            forbidden = sa.select(other.c.answer_id).where(
                other.c.answer_id == answers.c.id, other.c.collection.not_in(sorted(query.grants))
            )
            select = select.where(~sa.exists(forbidden))
        if query.since is not None:
            select = select.where(answers.c.created_at >= query.since)
        if query.until is not None:
            select = select.where(answers.c.created_at < query.until)
        if query.prompt_version:
            select = select.where(answers.c.prompt_version == query.prompt_version)
        if query.generator:
            select = select.where(answers.c.generator == query.generator)
        select = select.order_by(answers.c.created_at.desc(), answers.c.id).limit(query.limit)
        async with Transaction(self._engine) as conn:
            rows = (await conn.execute(select)).all()
        return [UsageRow(r[0], utc(r[1]), r[2], r[3], r[4], r[5], int(r[6] or 0), int(r[7] or 0)) for r in rows]


def _budget_is(scope: str, target: str, period: str) -> sa.ColumnElement[bool]:
    return (budgets.c.scope == scope) & (budgets.c.target == target) & (budgets.c.period == period)


def _budget(row: Any) -> Budget:
    return Budget(check_scope(row["scope"]), row["target"], check_period(row["period"]), row["tokens"], row["cost"])

"""Token usage and budgets: what answers spent (from the usage stored with each answer, and what models spent for
them beside generating them), the budgets admins set.

Same database as the answers. Tokens are read from each answer's `usage` JSON in SQL (`prompt_tokens`,
`completion_tokens`), so the answers made before budgets existed count too. The rest are rows of `model_usage` (a
judge scoring an answer, an LLM rewriting a chat follow-up), dated when they were spent and charged to the answer's
key and collections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kernel.budgets import Budget, Spent, check_period, check_scope
from kernel.errors import NotFound
from kernel.records import ReportQuery
from kernel.usage import ModelRole, ModelTokens
from rag.storage.engine import Transaction, now, utc
from rag.storage.report_filters import report_filters
from rag.storage.schema import answer_collections, answers, budgets, model_usage


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
    # "generator": the answer's own tokens; otherwise what they were spent on for it (a `model_usage` row's role),
    # dated when they were spent, and that row's id.
    role: Literal["generator"] | ModelRole = "generator"
    usage_id: int | None = None


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
        """Tokens the answers of a key, or over a collection, used since `since`, per model; what models spent for
        them beside generating them (judge, rewrite) counts too, with no answers of its own."""
        used = sa.case((sa.or_(PROMPT > 0, COMPLETION > 0), 1), else_=0)
        own = sa.select(answers.c.model, sa.func.sum(PROMPT), sa.func.sum(COMPLETION), sa.func.sum(used)).where(
            answers.c.created_at >= since
        )
        j = model_usage.c
        beside = sa.select(
            j.model, sa.func.sum(j.prompt_tokens), sa.func.sum(j.completion_tokens), sa.literal(0)
        ).select_from(model_usage.join(answers, answers.c.id == j.answer_id))
        beside = beside.where(j.created_at >= since)
        by_model: dict[str, tuple[int, int, int]] = {}
        async with Transaction(self._engine) as conn:
            for select, model in ((own, answers.c.model), (beside, j.model)):
                rows = await conn.execute(_charged_to(select, scope, target).group_by(model))
                for m, p, c, n in rows.all():
                    before = by_model.get(m, (0, 0, 0))
                    by_model[m] = (before[0] + int(p or 0), before[1] + int(c or 0), before[2] + int(n or 0))
        return Spent(by_model)

    async def usage_rows(self, query: ReportQuery) -> list[UsageRow]:
        """Each answer once per collection it drew on, and each `model_usage` row of it (a judge's scoring, a
        rewrite) once per collection too, newest first, the report's filters applied in SQL (the caller's grants too:
        one forbidden collection hides the answer, as in the reports). At most `query.limit` rows."""
        a, j, linked = answers.c, model_usage.c, answer_collections.c
        own = sa.select(
            a.id,
            a.created_at,
            a.key_id,
            linked.collection,
            a.prompt_version,
            a.model,
            PROMPT,
            COMPLETION,
            sa.literal("generator"),
            sa.null(),
        ).join(answer_collections, linked.answer_id == a.id)
        other = sa.select(
            a.id,
            j.created_at,
            a.key_id,
            linked.collection,
            a.prompt_version,
            j.model,
            j.prompt_tokens,
            j.completion_tokens,
            j.role,
            j.id,
        ).select_from(model_usage.join(answers, a.id == j.answer_id).join(answer_collections, linked.answer_id == a.id))
        found: list[UsageRow] = []
        async with Transaction(self._engine) as conn:
            for select, at in ((own, a.created_at), (other, j.created_at)):
                if query.collection is not None:
                    select = select.where(linked.collection == query.collection)
                select = report_filters(select, query, at).order_by(at.desc(), a.id).limit(query.limit)
                for r in (await conn.execute(select)).all():
                    found.append(
                        UsageRow(r[0], utc(r[1]), r[2], r[3], r[4], r[5], int(r[6] or 0), int(r[7] or 0), r[8], r[9])
                    )
        found.sort(key=lambda r: (-r.created_at.timestamp(), r.answer_id, r.role))
        return found[: query.limit]


async def record_model_usage(conn: AsyncConnection, answer_id: str, role: ModelRole, spent: ModelTokens | None) -> None:
    """A `model_usage` row, in the caller's transaction (a score is saved with its judge's tokens, an answer with its
    rewrite's); nothing when no tokens were spent."""
    if spent is None or spent.prompt_tokens + spent.completion_tokens == 0:
        return
    row = {"prompt_tokens": spent.prompt_tokens, "completion_tokens": spent.completion_tokens, "created_at": now()}
    await conn.execute(model_usage.insert().values(answer_id=answer_id, role=role, model=spent.model, **row))


def _charged_to(select: sa.Select[Any], scope: str, target: str) -> sa.Select[Any]:
    """Only the rows of answers a key asked, or of answers that drew on a collection."""
    if scope == "key":
        return select.where(answers.c.key_id == target)
    return select.join(
        answer_collections,
        (answer_collections.c.answer_id == answers.c.id) & (answer_collections.c.collection == target),
    )


def _budget_is(scope: str, target: str, period: str) -> sa.ColumnElement[bool]:
    return (budgets.c.scope == scope) & (budgets.c.target == target) & (budgets.c.period == period)


def _budget(row: Any) -> Budget:
    return Budget(check_scope(row["scope"]), row["target"], check_period(row["period"]), row["tokens"], row["cost"])

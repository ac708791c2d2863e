"""Cost (issue 11): token usage and its cost per key, collection, prompt version, model and day; budgets for admins.

`GET /v1/usage` reads the answers the groundedness report reads (same filters, same access: an analyst or admin
sees the answers whose every collection it is granted), replays included: they used tokens too. Tokens are as
each answer stored them; cost comes from the price table (RAG_COST__PRICES).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kernel.budgets import Budget, check_period, check_scope, period_end, period_start
from kernel.cost_settings import CostSettings
from kernel.errors import NotFound
from kernel.records import ReportQuery
from kernel.usage import MODEL_ROLES
from rag.api.audit import note
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.params import ReportFilters, time_range
from rag.security import Admin, Reviewer, visible
from rag.services import Services
from rag.storage.engine import now
from rag.storage.usage import UsageRow, UsageStore

router = APIRouter(tags=["cost"], route_class=CheckedRoute, responses=errors(*COMMON))
Svc = Annotated[Services, Depends(get_services)]
Segment = Annotated[str, Path(min_length=1, max_length=64)]


@dataclass
class BudgetPath:
    """`/v1/budgets/{scope}/{target}/{period}`, checked by the route: its message says what a scope or period is."""

    scope: Segment
    target: Segment
    period: Segment

    def budget(self, tokens: int | None = None, cost: float | None = None) -> Budget:
        return Budget(check_scope(self.scope), self.target, check_period(self.period), tokens, cost)


Where = Annotated[BudgetPath, Depends()]


class UsageParams(ReportFilters):
    """The groundedness report's filters (GET /v1/reports/groundedness)."""


def _cost(prices: CostSettings, model: str, prompt: int, completion: int) -> float | None:
    cost = prices.cost(model, prompt, completion)
    return None if cost is None else round(cost, 6)


ROLES = ("generator", *MODEL_ROLES)
FIGURES = ("prompt_tokens", "completion_tokens", "cost")


def summarise(rows: list[UsageRow], prices: CostSettings) -> dict[str, Any]:
    """Rows per (day, key, collection, prompt version, model, role) and totals that count each answer, and each
    spending beside it, once (an answer over two collections is in a row of each). `role` "generator" rows are the
    answers' own tokens; "judge" rows what a judge model spent scoring them (ragas), "rewrite" rows what an LLM spent
    turning chat follow-ups into standalone questions, dated when spent, their `answers` the number of scorings or
    rewrites."""
    groups: dict[tuple[str, str | None, str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    once: dict[tuple[str, str, int | None], UsageRow] = {}
    for r in rows:
        g = groups[(r.created_at.date().isoformat(), r.key_id, r.collection, r.prompt_version, r.model, r.role)]
        g[0] += 1
        g[1] += r.prompt_tokens
        g[2] += r.completion_tokens
        once[(r.role, r.answer_id, r.usage_id)] = r
    out = [
        {
            "day": day,
            "key_id": key_id,
            "collection": collection,
            "prompt_version": version,
            "model": model,
            "role": role,
            "answers": n,
            "prompt_tokens": p,
            "completion_tokens": c,
            "cost": _cost(prices, model, p, c),
        }
        for (day, key_id, collection, version, model, role), (n, p, c) in sorted(
            groups.items(), key=lambda i: str(i[0])
        )
    ]
    totals = {role: _totals([r for r in once.values() if r.role == role], prices) for role in ROLES}
    unpriced = {m for t in totals.values() for m in t.pop("unpriced")}
    every = {n: sum(t[n] for t in totals.values()) for n in FIGURES}
    return {
        "rows": out,
        "totals": {
            "answers": totals["generator"]["count"],
            **every,
            "cost": round(every["cost"], 6),
            # The parts of the totals spent beside the answers (0 without a judge, or without chat rewrites).
            **{role: {n: totals[role][n] for n in FIGURES} for role in ROLES[1:]},
        },
        # Models that used tokens but have no price: their tokens are in the figures, their cost is not.
        "unpriced_models": sorted(unpriced),
    }


def _totals(rows: list[UsageRow], prices: CostSettings) -> dict[str, Any]:
    by_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        by_model[r.model][0] += r.prompt_tokens
        by_model[r.model][1] += r.completion_tokens
    costs = {m: prices.cost(m, p, c) for m, (p, c) in by_model.items()}
    return {
        "count": len(rows),
        "prompt_tokens": sum(p for p, _ in by_model.values()),
        "completion_tokens": sum(c for _, c in by_model.values()),
        "cost": round(sum(c for c in costs.values() if c is not None), 6),
        "unpriced": [m for m, c in costs.items() if c is None],
    }


@router.get("/v1/usage", responses=errors(403, 404))
async def usage(svc: Svc, caller: Reviewer, params: Annotated[UsageParams, Query()]) -> dict[str, Any]:
    """Tokens and cost of answers per day (UTC), key, collection, prompt version and model; with a judge model
    (ragas), the tokens it spent scoring them are rows of their own (`role` "judge") and part of the totals."""
    p = params
    start, end = time_range(p.since, p.until, inclusive_until=True)
    if p.collection is not None:
        await svc.catalog.collections.filterable_fields([visible(caller, p.collection)])  # 404 for an unknown one
    limit = svc.settings.scoring.report_max_answers
    query = ReportQuery(start, end, p.collection, p.prompt_version, p.generator, limit=limit, grants=caller.grants())
    rows = await UsageStore(svc.catalog.engine).usage_rows(query)
    return {
        "filters": p.model_dump(),
        "currency": svc.settings.cost.currency,
        # Only the newest RAG_SCORING__REPORT_MAX_ANSWERS rows (answer or scoring/rewrite, per collection) are read:
        # narrow the dates.
        "truncated": len(rows) == limit,
        **summarise(rows, svc.settings.cost),
    }


# ----- budgets ---------------------------------------------------------------------------------------------------
class BudgetIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"tokens": 200000}]})

    tokens: int | None = Field(default=None, ge=0, description="Tokens (prompt + completion) the period may use.")
    cost: float | None = Field(default=None, ge=0, description="Cost (price table's currency) the period may use.")

    @model_validator(mode="after")
    def _some_limit(self) -> BudgetIn:
        if self.tokens is None and self.cost is None:
            raise ValueError('give a limit: "tokens", "cost" or both (a budget without one limits nothing)')
        return self


async def _status(svc: Services, store: UsageStore, budget: Budget) -> dict[str, Any]:
    at = now()
    spent = await store.spent(budget.scope, budget.target, period_start(budget.period, at))
    return {
        "id": budget.id,
        "scope": budget.scope,
        "target": budget.target,
        "period": budget.period,
        "tokens": budget.tokens,
        "cost": budget.cost,
        "used_tokens": spent.tokens,
        "used_cost": round(spent.cost(svc.settings.cost), 6),
        "currency": svc.settings.cost.currency,
        "resets_at": period_end(budget.period, at).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@router.get("/v1/budgets", responses=errors(403))
async def list_budgets(svc: Svc, _caller: Admin) -> list[dict[str, Any]]:
    """Every budget with what its current period used and when it resets."""
    store = UsageStore(svc.catalog.engine)
    return [await _status(svc, store, b) for b in await store.budgets()]


async def _target_exists(svc: Services, scope: str, target: str) -> None:
    if scope == "collection":
        await svc.catalog.collections.filterable_fields([target])  # 404 names it
    elif not any(k.id == target for k in await svc.keys.list_all()):
        raise NotFound(f"key {target!r} does not exist (GET /v1/keys lists the key ids)")


@router.put("/v1/budgets/{scope}/{target}/{period}", responses=errors(403, 404))
async def put_budget(where: Where, body: BudgetIn, svc: Svc, caller: Admin, request: Request) -> dict[str, Any]:
    """Set (or replace) the daily or monthly budget of a key (`key/<key id>/day`) or a collection
    (`collection/<name>/month`), in tokens, cost or both. Answers of the period already spent count."""
    budget = where.budget(body.tokens, body.cost)
    _audit(request, budget, f"set tokens={body.tokens} cost={body.cost}")
    await _target_exists(svc, budget.scope, budget.target)
    store = UsageStore(svc.catalog.engine)
    await store.put_budget(budget, caller.key_id)
    return await _status(svc, store, budget)


@router.delete("/v1/budgets/{scope}/{target}/{period}", status_code=204, responses=errors(403, 404))
async def delete_budget(where: Where, svc: Svc, _caller: Admin, request: Request) -> None:
    budget = where.budget()
    _audit(request, budget, "deleted")
    await UsageStore(svc.catalog.engine).delete_budget(budget.scope, budget.target, budget.period)


def _audit(request: Request, budget: Budget, change: str) -> None:
    """The audit entry says which budget changed and to what (the log keeps no request bodies)."""
    collection = budget.target if budget.scope == "collection" else None
    note(request, collection=collection, detail=f"budget {budget.id} {change}")

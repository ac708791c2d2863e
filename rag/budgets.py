"""Budgets before an LLM is called: the key's and each collection's (kernel/budgets.py says how a budget is
judged). An answer over budget is refused with 429 (the budget named, Retry-After until it resets) or, where every
collection of the question says so (policy `over_budget: extractive`), made by the extractive generator instead and
marked `fallback: budget`. Either way it is counted in `rag_budget_refusals_total` by the budget's scope.

Extractive answers use no tokens: they are never refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kernel.budgets import Verdict, judge, period_start
from kernel.errors import TooManyRequests
from rag.generation.base import Generator
from rag.services import Services
from rag.storage.engine import now
from rag.storage.usage import UsageStore

FALLBACK = "budget"


class OverBudget(TooManyRequests):
    """429 naming the budget and when it resets (body `detail`, header Retry-After)."""

    def __init__(self, verdict: Verdict, currency: str) -> None:
        super().__init__(verdict.message(currency))
        self.detail = verdict.detail(currency)
        wait = math.ceil((verdict.resets_at - now()).total_seconds())
        self.headers = {"Retry-After": str(max(1, wait))}


@dataclass(frozen=True)
class Fallback:
    budget: str  # the budget id, e.g. collection/handbook/day

    @property
    def stored(self) -> str:
        return f"{FALLBACK}:{self.budget}"


async def over_budget(svc: Services, key_id: str | None, collections: list[str]) -> Verdict | None:
    """The first budget of the key or the collections the next LLM answer would pass; None while all fit."""
    store = UsageStore(svc.catalog.engine)
    found = await store.budgets_for(key_id, collections)
    at = now()
    for budget in found:
        spent = await store.spent(budget.scope, budget.target, period_start(budget.period, at))
        verdict = judge(budget, spent, svc.settings.cost, at)
        if verdict is not None:
            return verdict
    return None


async def within_budget(
    svc: Services, gen: Generator, key_id: str | None, collections: list[str]
) -> tuple[Generator, Fallback | None]:
    """The generator to answer with: `gen`, or the extractive one as the budget fallback; OverBudget otherwise."""
    if gen.name == "extractive":
        return gen, None
    verdict = await over_budget(svc, key_id, collections)
    if verdict is None:
        return gen, None
    svc.telemetry.metrics.budget_refused(verdict.budget.scope)
    policies = await svc.catalog.collections.policies(sorted(set(collections)))
    if policies and all(p.over_budget == "extractive" for p in policies.values()):
        return svc.generators["extractive"], Fallback(verdict.budget.id)
    raise OverBudget(verdict, svc.settings.cost.currency)

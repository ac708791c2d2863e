"""Budgets (issue 11, Cost): how many tokens, or how much money, a key or a collection may spend in a day or a
month. Pure rules, no storage: `rag.budgets` reads what was spent and applies these before an LLM is called.

A request is turned away when the answer it asks for would take the period past the limit: the tokens (or cost)
spent so far in the period plus what the next answer is expected to use, the mean of the period's answers that
used any, as their endpoint reported them. The first answer of a period is expected to use nothing, so it is
refused only by a limit of 0. Two requests that arrive at once are both checked against what was spent before
either: a budget may be passed by what answers already underway use.

Periods are calendar days and months in UTC; a budget resets at the start of the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from kernel.cost_settings import CostSettings
from kernel.errors import InvalidInput

Scope = Literal["key", "collection"]
Period = Literal["day", "month"]
SCOPES: tuple[Scope, ...] = ("key", "collection")
PERIODS: tuple[Period, ...] = ("day", "month")
_ADJECTIVE = {"day": "daily", "month": "monthly"}


def check_scope(scope: str) -> Scope:
    for known in SCOPES:
        if scope == known:
            return known
    raise InvalidInput(f"unknown budget scope {scope!r}; a budget is for a 'key' (its id) or a 'collection'")


def check_period(period: str) -> Period:
    for known in PERIODS:
        if period == known:
            return known
    raise InvalidInput(f"unknown budget period {period!r}; use 'day' or 'month' (calendar periods in UTC)")


@dataclass(frozen=True)
class Budget:
    scope: Scope
    target: str  # the key id or the collection name
    period: Period
    tokens: int | None = None  # the limit in tokens (prompt + completion), if any
    cost: float | None = None  # the limit in the price table's currency, if any

    @property
    def id(self) -> str:
        """As in the admin API's path: `collection/handbook/day`."""
        return f"{self.scope}/{self.target}/{self.period}"

    def describe(self) -> str:
        return f"the {_ADJECTIVE[self.period]} budget of {self.scope} {self.target!r}"


@dataclass
class Spent:
    """What a scope used in a period, per model: prompt tokens, completion tokens, answers that used any."""

    by_model: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(p + c for p, c, _ in self.by_model.values())

    @property
    def answers(self) -> int:
        return sum(n for _, _, n in self.by_model.values())

    def cost(self, prices: CostSettings) -> float:
        """Priced models only: a model without a price counts nothing (see CostSettings.prices)."""
        return sum(prices.cost(m, p, c) or 0.0 for m, (p, c, _) in self.by_model.items())


def period_start(period: Period, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    day = datetime(at.year, at.month, at.day, tzinfo=UTC)
    return day if period == "day" else day.replace(day=1)


def period_end(period: Period, at: datetime) -> datetime:
    """When the period holding `at` ends and the budget resets."""
    start = period_start(period, at)
    if period == "day":
        return start + timedelta(days=1)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


@dataclass(frozen=True)
class Verdict:
    """A budget the next answer would pass."""

    budget: Budget
    unit: Literal["tokens", "cost"]
    limit: float
    used: float
    expected: float
    resets_at: datetime

    def message(self, currency: str) -> str:
        def amount(x: float) -> str:
            return f"{int(x)} tokens" if self.unit == "tokens" else f"{x:.4f} {currency}"

        return (
            f"over budget: {self.budget.describe()} ({self.budget.id}, {amount(self.limit)}) would be passed: "
            f"{amount(self.used)} used so far and the next answer is expected to use {amount(self.expected)}; "
            f"it resets at {self.resets_at.strftime('%Y-%m-%dT%H:%M:%SZ')}. Ask an admin to raise it "
            f"(PUT /v1/budgets/{self.budget.id}), or ask with generator 'extractive', which uses no tokens"
        )

    def detail(self, currency: str) -> dict[str, object]:
        return {
            "budget": self.budget.id,
            "scope": self.budget.scope,
            "target": self.budget.target,
            "period": self.budget.period,
            "unit": self.unit if self.unit == "tokens" else currency,
            "limit": self.limit,
            "used": round(self.used, 6),
            "expected": round(self.expected, 6),
            "resets_at": self.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def judge(budget: Budget, spent: Spent, prices: CostSettings, at: datetime) -> Verdict | None:
    """The verdict on the next answer in `budget`'s scope, given what the period spent; None while it fits."""
    resets = period_end(budget.period, at)
    n = spent.answers
    checks: list[tuple[Literal["tokens", "cost"], float | None, float]] = [
        ("tokens", budget.tokens, float(spent.tokens)),
        ("cost", budget.cost, spent.cost(prices)),
    ]
    for unit, limit, used in checks:
        if limit is None:
            continue
        expected = used / n if n else 0.0
        # Rounded: three answers of 0.13 make 0.39000000000000007, which must not pass a limit of 0.39.
        if round(used, 9) >= limit or round(used + expected, 9) > limit:
            return Verdict(budget, unit, float(limit), used, expected, resets)
    return None

"""The budget rules (kernel/budgets.py): periods, and the verdict on the next answer at the limit's edges."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kernel.budgets import Budget, Spent, check_period, check_scope, judge, period_end, period_start
from kernel.cost_settings import CostSettings, ModelPrice
from kernel.errors import InvalidInput

AT = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
PRICES = CostSettings(prices={"m": ModelPrice(input=1.0, output=2.0)})  # 100 in + 30 out cost 0.16


def spent(answers: int, model: str = "m") -> Spent:
    return Spent({model: (100 * answers, 30 * answers, answers)})


def test_periods_are_calendar_days_and_months_in_utc() -> None:
    assert period_start("day", AT) == datetime(2026, 12, 31, tzinfo=UTC)
    assert period_end("day", AT) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_start("month", AT) == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_end("month", AT) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end("month", datetime(2026, 2, 10, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(("limit", "answers_allowed"), [(0, 0), (129, 1), (130, 1), (259, 1), (260, 2), (400, 3)])
def test_the_answer_refused_is_the_one_that_would_pass_the_token_limit(limit: int, answers_allowed: int) -> None:
    budget = Budget("collection", "kb", "day", tokens=limit)
    allowed = 0
    while judge(budget, spent(allowed), PRICES, AT) is None:
        allowed += 1
    # The first answer of a period is expected to use nothing: only a limit of 0 refuses it.
    assert allowed == answers_allowed


def test_a_cost_limit_at_a_sum_of_answers_is_not_passed_by_float_rounding() -> None:
    budget = Budget("key", "k1", "month", cost=0.48)  # 3 x 0.16 is 0.48000000000000004 in floats
    assert judge(budget, spent(2), PRICES, AT) is None
    verdict = judge(budget, spent(3), PRICES, AT)
    assert verdict is not None and verdict.unit == "cost" and verdict.resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert verdict.detail("EUR")["unit"] == "EUR" and "key/k1/month" in verdict.message("EUR")


def test_an_unpriced_model_counts_nothing_against_a_cost_budget_but_its_tokens_count() -> None:
    assert judge(Budget("key", "k", "day", cost=0.01), spent(5, model="free"), PRICES, AT) is None
    assert judge(Budget("key", "k", "day", tokens=100), spent(5, model="free"), PRICES, AT) is not None
    assert PRICES.cost("free", 1, 1) is None and PRICES.cost("free", 0, 0) == 0.0
    every = CostSettings(prices={"*": ModelPrice(input=1.0, output=1.0)})
    assert every.cost("anything", 1000, 1000) == 2.0


@pytest.mark.parametrize(("check", "bad", "says"), [(check_scope, "team", "'key'"), (check_period, "week", "'day'")])
def test_an_unknown_scope_or_period_says_what_is_known(check: Callable[[str], str], bad: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        check(bad)

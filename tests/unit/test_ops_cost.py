"""The operations summary's daily cost: the answers' tokens priced by the same table as `GET /v1/usage`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kernel.cost_settings import CostSettings, ModelPrice
from rag.ops_summary import _answers_day
from rag.storage.ops import AnswerFacts


def fact(model: str | None, prompt: int, completion: int) -> AnswerFacts:
    return AnswerFacts(
        "a", datetime(2026, 12, 3, tzinfo=UTC), False, False, 10.0, prompt, completion, 0.5, None, "q", model
    )


DAY = [fact("gpt-small", 1000, 500), fact("gpt-small", 2000, 0), fact("unpriced", 700, 300), fact("extractive:x", 0, 0)]


def test_a_day_costs_its_priced_tokens() -> None:
    prices = CostSettings(prices={"gpt-small": ModelPrice(input=0.5, output=2.0)})
    day = _answers_day(DAY, {}, prices)
    # 3,000 prompt tokens at 0.5 and 500 completion tokens at 2.0 per 1,000; the unpriced model counts nothing.
    assert day["cost"] == pytest.approx(1.5 + 1.0)
    assert (day["prompt_tokens"], day["completion_tokens"]) == (3700, 800)


def test_the_catch_all_price_covers_every_model() -> None:
    prices = CostSettings(prices={"*": ModelPrice(input=1.0, output=1.0)})
    assert _answers_day(DAY, {}, prices)["cost"] == pytest.approx(4.5)


def test_without_a_price_table_the_cost_is_unknown_not_zero() -> None:
    assert _answers_day(DAY, {}, CostSettings())["cost"] is None
    assert _answers_day([], {}, CostSettings(prices={"*": ModelPrice(input=1.0, output=1.0)}))["cost"] == 0.0


def test_a_judges_and_a_rewrites_tokens_are_part_of_the_days_tokens_and_cost() -> None:
    prices = CostSettings(
        prices={"gpt-small": ModelPrice(input=0.5, output=2.0), "judge": ModelPrice(input=1.0, output=1.0)}
    )
    spent = {("judge", "judge"): (1000, 1000), ("judge", "unpriced-judge"): (5, 5), ("rewrite", "gpt-small"): (200, 10)}
    day = _answers_day(DAY, spent, prices)
    assert day["cost"] == pytest.approx(1.5 + 1.0 + 2.0 + 0.1 + 0.02)
    assert (day["judge_prompt_tokens"], day["judge_completion_tokens"]) == (1005, 1005)
    assert (day["rewrite_prompt_tokens"], day["rewrite_completion_tokens"]) == (200, 10)
    assert (day["prompt_tokens"], day["completion_tokens"]) == (3700 + 1205, 800 + 1015)

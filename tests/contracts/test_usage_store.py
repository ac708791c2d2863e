"""Token sums and budgets behave the same on SQLite (embedded) and PostgreSQL (production): tokens are read from
each answer's usage JSON in SQL, which the two databases spell differently."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from kernel.budgets import Budget
from kernel.errors import NotFound
from kernel.records import ReportQuery, ScoreResult
from kernel.usage import ModelTokens
from rag.storage.answers import AnswerStore
from rag.storage.engine import now
from rag.storage.ops import OpsStore, Scope
from rag.storage.scores import ScoreStore
from rag.storage.usage import UsageStore
from tests.contracts.test_catalog import catalog  # noqa: F401  (the fixture, on both databases)
from tests.support.answers import new_answer


async def test_spent_and_usage_rows_sum_the_stored_usage(catalog):  # noqa: F811
    answers, usage = AnswerStore(catalog.engine), UsageStore(catalog.engine)
    start = now()

    async def save(key: str | None, collections: tuple[str, ...], model: str, tokens: dict) -> str:
        record = dataclasses.replace(new_answer("q", collections=collections), key_id=key, model=model, usage=tokens)
        return await answers.save(record)

    used = {"prompt_tokens": 100, "completion_tokens": 30}
    await save("k1", ("a",), "m1", used)
    await save("k1", ("a", "b"), "m1", used)
    await save("k1", ("b",), "m2", {**used, "estimated": True})
    await save("k2", ("a",), "m1", {})  # no tokens (an older answer, or an extractive one)

    key = await usage.spent("key", "k1", start)
    assert key.by_model == {"m1": (200, 60, 2), "m2": (100, 30, 1)} and key.tokens == 390 and key.answers == 3
    a = await usage.spent("collection", "a", start)
    assert a.by_model == {"m1": (200, 60, 2)}  # k2's answer used nothing: not among the answers that used tokens
    assert (await usage.spent("collection", "a", start + timedelta(days=1))).by_model == {}

    rows = await usage.usage_rows(ReportQuery())
    assert len(rows) == 5 and sum(r.prompt_tokens for r in rows if r.collection == "b") == 200
    # Granted "a" only: the answer that also drew on "b" is hidden, as in the reports.
    only_a = await usage.usage_rows(ReportQuery(grants=frozenset({"a"})))
    assert sorted((r.key_id, r.collection, r.prompt_tokens) for r in only_a) == [("k1", "a", 100), ("k2", "a", 0)]
    assert len(await usage.usage_rows(ReportQuery(collection="a", grants=frozenset({"a"})))) == 2


async def test_budgets_are_set_replaced_listed_and_deleted(catalog):  # noqa: F811
    store = UsageStore(catalog.engine)
    await store.put_budget(Budget("collection", "a", "day", tokens=10), key_id=None)
    await store.put_budget(Budget("collection", "a", "day", cost=1.5), key_id="admin1")  # replaces it whole
    await store.put_budget(Budget("key", "k1", "month", tokens=5), key_id=None)
    await store.put_budget(Budget("collection", "z", "month", tokens=5), key_id=None)
    assert await store.budgets_for("k1", ["a"]) == [
        Budget("key", "k1", "month", tokens=5),
        Budget("collection", "a", "day", cost=1.5),
    ]
    assert await store.budgets_for(None, ["a"]) == [Budget("collection", "a", "day", cost=1.5)]
    assert len(await store.budgets()) == 3
    await store.delete_budget("collection", "a", "day")
    with pytest.raises(NotFound, match="no budget collection/a/day"):
        await store.delete_budget("collection", "a", "day")


async def test_a_report_filtered_by_collection_hides_answers_that_drew_on_a_collection_not_granted(catalog):  # noqa: F811
    # Before the grants' subquery had an alias of its own, this query failed (auto-correlation left it no FROM).
    answers = AnswerStore(catalog.engine)
    both = await answers.save(new_answer("q", collections=("a", "b")))
    alone = await answers.save(new_answer("q", collections=("a",)))
    rows = await answers.report_rows(ReportQuery(collection="a", grants=frozenset({"a"})))
    assert [r.id for r in rows] == [alone]
    assert {r.id for r in await answers.report_rows(ReportQuery(collection="a"))} == {both, alone}


async def test_a_judges_tokens_count_for_the_answers_key_and_collections_once_per_scoring(catalog):  # noqa: F811
    answers, usage, ledger = AnswerStore(catalog.engine), UsageStore(catalog.engine), ScoreStore(catalog.engine)
    start = now()
    record = dataclasses.replace(
        new_answer("q", collections=("a", "b")), key_id="k1", model="m1", usage={"prompt_tokens": 100}
    )
    answer_id = await answers.save(record)
    await ledger.request(answer_id)
    scored_from = now()  # the scorings come after the answer
    judged = ScoreResult("ragas", "ragas-x-judge", {}, {}, ModelTokens("judge", 40, 7))
    await ledger.save(answer_id, judged, requests=1)
    await ledger.save(answer_id, judged, requests=1)  # a rescore spends again
    await ledger.save(answer_id, ScoreResult("ragas", "v", {}, {}, ModelTokens("judge", 0, 0)), requests=1)  # no row

    assert (await usage.spent("key", "k1", start)).by_model == {"m1": (100, 0, 1), "judge": (80, 14, 0)}
    assert (await usage.spent("collection", "b", start)).by_model == {"m1": (100, 0, 1), "judge": (80, 14, 0)}
    assert (await usage.spent("key", "k2", start)).by_model == {}

    rows = await usage.usage_rows(ReportQuery())
    judge_rows = [r for r in rows if r.role == "judge"]
    assert len(rows) == 6 and len(judge_rows) == 4  # two scorings, each once per collection
    assert {(r.answer_id, r.key_id, r.model, r.prompt_tokens, r.completion_tokens) for r in judge_rows} == {
        (answer_id, "k1", "judge", 40, 7)
    }
    assert await usage.usage_rows(ReportQuery(grants=frozenset({"a"}))) == []  # "b" is not granted: all hidden
    newest = await usage.usage_rows(ReportQuery(limit=3))
    assert [r.role for r in newest] == ["judge"] * 3  # the scorings are newer than the answer
    assert len({r.usage_id for r in judge_rows}) == 2  # each scoring its own row, seen once per collection

    # Dated when spent: a window that starts after the answer still holds what scoring it spent.
    later = await usage.usage_rows(ReportQuery(since=scored_from))
    assert {r.role for r in later} == {"judge"} and len(later) == 4
    assert (await usage.spent("key", "k1", scored_from)).by_model == {"judge": (80, 14, 0)}
    day = scored_from.date().isoformat()
    ops = OpsStore(catalog.engine)
    assert await ops.model_usage_by_day(Scope(scored_from, scored_from + timedelta(days=1))) == {
        day: {("judge", "judge"): (80, 14)}
    }
    # Retried scorings keep what their judge spent too.
    await ledger.judge_spent(answer_id, ModelTokens("judge", 5, 1))
    await ledger.judge_spent(answer_id, None)
    assert (await usage.spent("collection", "a", scored_from)).by_model == {"judge": (85, 15, 0)}

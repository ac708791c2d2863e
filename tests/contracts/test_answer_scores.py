"""Owed scores, results and feedback behave the same on SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio

import pytest

from evals.scores import Metric, Scores
from rag.answers import AnswerStore
from tests.contracts.test_catalog import catalog  # noqa: F401  (the fixture, on both databases)


def record(question: str, generator: str = "extractive") -> dict:
    return {
        "question": question,
        "standalone_question": question,
        "collections": ["c"],
        "answer": "An answer.",
        "abstained": False,
        "citations": [],
        "contexts": [],
        "prompt_id": "grounded_answer",
        "prompt_version": "abc",
        "generator": generator,
        "model": "m",
        "usage": {},
        "timings_ms": {},
    }


def scores(faithfulness: float | None) -> Scores:
    return Scores(
        scorer="offline",
        scorer_version="1",
        faithfulness=Metric(value=faithfulness) if faithfulness is not None else Metric.null("no claim"),
        context_precision=Metric(value=1.0),
        context_recall=Metric.null("no reference"),
    )


async def test_owed_scores_and_a_newer_request_winning(catalog):  # noqa: F811
    store = AnswerStore(catalog.engine)
    first = await store.save(record("q1"), score=True)
    second = await store.save(record("q2"), score=True)
    unscored = await store.save(record("q3"))
    assert await store.pending_scores() == [first, second]
    assert await store.score_row(unscored) is None

    row = await store.score_row(first)
    assert row["status"] == "pending" and row["requests"] == 1
    # A reference arrives while the first job is scoring: that job's result must not close the request.
    await store.request_score(first, "the reference", set_reference=True)
    await store.save_scores(first, scores(0.5), requests=row["requests"])
    row = await store.score_row(first)
    assert row["status"] == "pending" and row["faithfulness"] == 0.5 and row["reference"] == "the reference"
    await store.save_scores(first, scores(1.0), requests=row["requests"])
    row = await store.score_row(first)
    assert row["status"] == "done" and row["faithfulness"] == 1.0 and row["context_recall"] is None
    assert row["result"]["context_recall"]["reason"] == "no reference"

    await store.request_score(second)  # a plain rescore keeps whatever reference there is
    await store.score_failed(second, "gave up after 3 attempts: judge unreachable")
    assert await store.pending_scores() == []
    assert (await store.score_row(second))["error"].startswith("gave up")


async def test_feedback_and_report_rows(catalog):  # noqa: F811
    store = AnswerStore(catalog.engine)
    a = await store.save(record("q1"), score=True)
    await asyncio.sleep(0.01)  # distinct timestamps for the "newest first" order below, on any clock
    b = await store.save(record("q2", generator="llm"), score=True)
    await store.save_scores(a, scores(None), requests=1)
    await store.add_feedback(a, "down", "wrong")
    await store.add_feedback(a, "up", None)
    from rag.errors import NotFound

    with pytest.raises(NotFound):
        await store.add_feedback("missing", "up", None)
    feedback = await store.feedback_for([a, b])
    assert [f["rating"] for f in feedback[a]] == ["down", "up"] and b not in feedback

    rows = await store.scored_answers()
    assert [r["id"] for r in rows] == [b, a]  # newest first
    by_id = {r["id"]: r for r in rows}
    assert by_id[a]["s_status"] == "done" and by_id[a]["s_faithfulness"] is None
    assert by_id[b]["s_status"] == "pending"
    assert [r["id"] for r in await store.scored_answers(generator="llm")] == [b]

"""Owed scores, results, feedback and report rows behave the same on SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from evals.online import score_result
from evals.scores import Metric, Scores
from kernel.errors import NotFound
from kernel.records import ReportQuery
from kernel.records import ScoreResult as StoredScores
from rag.storage.answers import AnswerStore
from rag.storage.engine import make_engine
from tests.contracts.test_catalog import catalog  # noqa: F401  (the fixture, on both databases)
from tests.support.answers import new_answer as record


def scores(faithfulness: float | None) -> StoredScores:
    return score_result(
        Scores(
            scorer="offline",
            scorer_version="1",
            faithfulness=Metric(value=faithfulness) if faithfulness is not None else Metric.null("no claim"),
            context_precision=Metric(value=1.0),
            context_recall=Metric.null("no reference"),
        )
    )


async def test_owed_scores_and_a_newer_request_winning(catalog):  # noqa: F811
    store = AnswerStore(catalog.engine)
    first = await store.save(record("q1"), score=True)
    second = await store.save(record("q2"), score=True)
    unscored = await store.save(record("q3"))
    assert await store.scores.pending() == [first, second]
    assert await store.scores.state(unscored) is None

    state = await store.scores.state(first)
    assert state.status == "pending" and state.requests == 1
    # A reference arrives while the first job is scoring: that job's result must not close the request.
    await store.scores.request(first, "the reference", set_reference=True)
    await store.scores.save(first, scores(0.5), requests=state.requests)
    state = await store.scores.state(first)
    assert state.status == "pending" and state.faithfulness == 0.5 and state.reference == "the reference"
    await store.scores.save(first, scores(1.0), requests=state.requests)
    state = await store.scores.state(first)
    assert state.status == "done" and state.faithfulness == 1.0 and state.context_recall is None
    assert state.result["context_recall"]["reason"] == "no reference"

    await store.scores.request(second)  # a plain rescore keeps whatever reference there is
    await store.scores.failed(second, "gave up after 3 attempts: judge unreachable")
    assert await store.scores.pending() == []
    assert (await store.scores.state(second)).error.startswith("gave up")


async def test_feedback_and_report_rows(catalog):  # noqa: F811
    store = AnswerStore(catalog.engine)
    a = await store.save(record("q1"), score=True)
    await asyncio.sleep(0.01)  # distinct timestamps for the "newest first" order below, on any clock
    b = await store.save(record("q2", generator="llm"), score=True)
    await store.scores.save(a, scores(None), requests=1)
    await store.add_feedback(a, "down", "wrong")
    await store.add_feedback(a, "up", None)
    with pytest.raises(NotFound):
        await store.add_feedback("missing", "up", None)
    feedback = await store.feedback_for([a, b])
    assert [f.rating for f in feedback[a]] == ["down", "up"] and b not in feedback

    rows = await store.report_rows(ReportQuery())
    assert [r.id for r in rows] == [b, a]  # newest first
    by_id = {r.id: r for r in rows}
    assert by_id[a].score.status == "done" and by_id[a].score.faithfulness is None
    assert by_id[b].score.status == "pending"
    assert [r.id for r in await store.report_rows(ReportQuery(generator="llm"))] == [b]


async def test_a_report_of_one_collection_is_not_crowded_out_by_others(catalog):  # noqa: F811
    """The limit applies to the collection's answers: newer answers elsewhere do not push them out of the window."""
    store = AnswerStore(catalog.engine)
    mine = [await store.save(record(f"mine {i}", collections=("mine", "shared"))) for i in range(3)]
    await asyncio.sleep(0.01)
    for i in range(20):
        await store.save(record(f"other {i}", collections=("other",)))
    rows = await store.report_rows(ReportQuery(collection="mine", limit=10))
    assert sorted(r.id for r in rows) == sorted(mine)
    assert len(await store.report_rows(ReportQuery(collection="other", limit=10))) == 10
    assert [r.id for r in await store.report_rows(ReportQuery(collection="shared", limit=2))] == mine[:0:-1]
    assert await store.report_rows(ReportQuery(collection="nobody")) == []
    twice = await store.save(record("named twice", collections=("dup", "dup")))  # one link row, not a conflict
    assert [r.id for r in await store.report_rows(ReportQuery(collection="dup"))] == [twice]


async def test_two_claimers_never_get_the_same_answer(catalog):  # noqa: F811
    """Two workers (two engines, as two processes have) race for the same owed scores: each score goes to one."""
    store = AnswerStore(catalog.engine)
    other_engine = make_engine(catalog.url)
    other = AnswerStore(other_engine)
    lease = timedelta(minutes=5)
    try:
        owed = [await store.save(record(f"q{i}"), score=True) for i in range(12)]
        for _ in range(3):  # several races, each over the same oldest candidates
            claims = await asyncio.gather(
                store.scores.claim("w1", None, 5, lease),
                other.scores.claim("w2", None, 5, lease),
                other.scores.claim("w3", owed[-1], 5, lease),
            )
            taken = [a for c in claims for a in c]
            assert len(taken) == len(set(taken)), claims
            for claimant, got in zip(("w1", "w2", "w3"), claims, strict=True):
                assert {(await store.scores.state(a)).claimed_by for a in got} <= {claimant}
                await store.scores.release(claimant, got)

        first = await store.scores.claim("w1", owed[-1], 2, lease)
        assert first == [owed[-1], owed[0]]  # its own answer first, then the oldest request
        assert owed[-1] not in await other.scores.claim("w2", owed[-1], 12, lease)  # held: not taken
        assert await other.scores.claim("w3", None, 12, lease) == []  # everything is held now

        # A claim that runs out (its worker died) frees the answers; renewing keeps them.
        await store.scores.renew("w1", first, timedelta(seconds=-1))
        assert await other.scores.claim("w3", None, 12, lease) == [owed[0], owed[-1]]  # oldest request first
        await other.scores.renew("w3", first, lease)
        assert await store.scores.claim("w1", None, 12, lease) == []
        # A finished score is not owed: never claimed again, whatever its claim says.
        await other.scores.failed(first[0], "gave up")
        await other.scores.release("w3", first)
        assert await store.scores.claim("w1", None, 12, lease) == [first[1]]
    finally:
        await other_engine.dispose()

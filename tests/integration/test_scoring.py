"""Per-answer groundedness scores through the real stack: worker job, reference, rescore, evaluate, feedback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from kernel.types import Context, GeneratedAnswer
from tests.integration.test_answers import ask, kb  # noqa: F401  (the fixture)


async def wait_scored(client, answer_id: str, after: str | None = None, limit_s: float = 300.0) -> dict:
    """Poll until the answer's score is done (and newer than `after`). The limit only guards against a hang."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        data = (await client.get(f"/v1/answers/{answer_id}")).json()
        scores = data["scores"]
        if scores["status"] == "done" and (after is None or str(scores["scored_at"]) > after):
            return data
        assert loop.time() < deadline, f"answer {answer_id} was not scored: {scores}"
        await asyncio.sleep(0.1)


class MisquotingGenerator:
    """Stands in for an LLM that misquotes its source: states a year the context does not contain."""

    name = "misquoting"

    def __init__(self, text: str | None = None) -> None:
        self.text = text or (
            "The Golden Gate Bridge opened to traffic in 1952 [1]. It is a suspension bridge in San Francisco [1]."
        )

    async def generate(self, question: str, contexts: Sequence[Context], prompt: object) -> GeneratedAnswer:
        return GeneratedAnswer(text=self.text, model="misquoting-test")

    async def stream(self, question: str, contexts: Sequence[Context], prompt: object) -> AsyncIterator:
        yield await self.generate(question, contexts, prompt)


async def test_answer_gets_three_scores_and_recall_after_reference(client, kb):  # noqa: F811
    out = await ask(client, question="When did the Golden Gate Bridge open?", collections=[kb])
    assert not out["abstained"]
    data = await wait_scored(client, out["answer_id"])
    scores = data["scores"]
    assert scores["scorer"] == "offline" and scores["scorer_version"]
    assert scores["faithfulness"]["value"] == 1.0
    assert 0.0 < scores["context_precision"]["value"] <= 1.0
    assert scores["context_recall"]["value"] is None
    assert "reference" in scores["context_recall"]["reason"]
    claim = scores["claims"][0]
    assert claim["supported"] is True and "1937" in claim["support"]
    assert claim["chunk_id"] == data["contexts"][claim["context"] - 1]["chunk_id"]

    resp = await client.post(
        f"/v1/answers/{out['answer_id']}/reference", json={"reference": "The bridge opened to traffic in 1937."}
    )
    assert resp.status_code == 202, resp.text
    rescored = await wait_scored(client, out["answer_id"], after=str(scores["scored_at"]))
    assert rescored["scores"]["reference"] == "The bridge opened to traffic in 1937."
    assert rescored["scores"]["context_recall"]["value"] == 1.0
    assert rescored["scores"]["faithfulness"]["value"] == 1.0


async def test_unfaithful_answer_scores_low_with_the_claim_marked(client, services, kb):  # noqa: F811
    services.generators["misquoting"] = MisquotingGenerator()
    try:
        out = await ask(
            client, question="When did the Golden Gate Bridge open?", collections=[kb], generator="misquoting"
        )
    finally:
        del services.generators["misquoting"]
    assert not out["abstained"] and "1952" in out["answer"]
    scores = (await wait_scored(client, out["answer_id"]))["scores"]
    assert scores["faithfulness"]["value"] == 0.5
    by_claim = {c["claim"]: c for c in scores["claims"]}
    wrong = next(c for text, c in by_claim.items() if "1952" in text)
    assert wrong["supported"] is False and "1952" in wrong["reason"]
    right = next(c for text, c in by_claim.items() if "suspension" in text)
    assert right["supported"] is True


async def test_abstention_scores_are_null_with_a_reason_never_zero(client, kb):  # noqa: F811
    out = await ask(client, question="What is the airspeed velocity of an unladen swallow?", collections=[kb])
    assert out["abstained"]
    scores = (await wait_scored(client, out["answer_id"]))["scores"]
    for metric in ("faithfulness", "context_precision", "context_recall"):
        assert scores[metric]["value"] is None, scores
        assert scores[metric]["reason"], scores


async def test_rescore_scores_again(client, kb):  # noqa: F811
    out = await ask(client, question="How tall is the Eiffel Tower?", collections=[kb])
    first = (await wait_scored(client, out["answer_id"]))["scores"]
    resp = await client.post(f"/v1/answers/{out['answer_id']}/rescore")
    assert resp.status_code == 202 and resp.json()["scorer"] == "offline"
    second = (await wait_scored(client, out["answer_id"], after=str(first["scored_at"])))["scores"]
    assert second["faithfulness"] == first["faithfulness"]


async def test_evaluate_single_and_batch(client):
    context = "The Golden Gate Bridge opened to traffic in 1937. Its main span is 1,280 metres long."
    good = {"question": "When did it open?", "answer": "The bridge opened to traffic in 1937.", "contexts": [context]}
    bad = {**good, "answer": "The bridge opened to traffic in 1952."}
    one = (
        await client.post("/v1/evaluate", json={**good, "reference": "The Golden Gate Bridge opened in 1937."})
    ).json()
    assert one["faithfulness"]["value"] == 1.0 and one["context_recall"]["value"] == 1.0
    batch = await client.post("/v1/evaluate", json={"items": [good, bad]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert results[0]["faithfulness"]["value"] == 1.0 and results[1]["faithfulness"]["value"] == 0.0
    assert results[1]["claims"][0]["supported"] is False and "1952" in results[1]["claims"][0]["reason"]
    assert results[0]["context_recall"]["value"] is None  # no reference: null, and the mean ignores it
    assert batch.json()["means"]["faithfulness"] == 0.5 and batch.json()["means"]["context_recall"] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"question": "q", "answer": "a", "contexts": []}, "contexts"),
        ({"question": "q", "answer": "", "contexts": ["c"]}, "answer"),
        ({"question": "q", "answer": "a", "contexts": ["c" * 20_001]}, "contexts[0] has 20001 characters"),
        ({"question": "q", "answer": "a", "contexts": ["c"] * 51}, "the limit is 50"),
        ({"items": [{"question": "q", "answer": "a", "contexts": ["c"]}] * 51}, "split it"),
        ({"items": []}, "items"),
        ({"question": "q", "answer": "a", "contexts": [" "]}, "contexts[0] is blank"),
        ({"question": "q", "answer": "a", "contexts": [""]}, "contexts.0"),
        ({"items": [{"question": "q", "answer": "a", "contexts": ["c"], "reference": " "}]}, "items[0].reference"),
    ],
)
async def test_evaluate_rejects_bad_input(client, body, message):
    resp = await client.post("/v1/evaluate", json=body)
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["error"]
    if "items" not in body:  # a single item is told about its own fields only
        assert "items" not in resp.json()["error"]
    assert (await client.get("/healthz")).status_code == 200


async def test_feedback_and_bad_requests(client, kb):  # noqa: F811
    out = await ask(client, question="When did the Golden Gate Bridge open?", collections=[kb])
    resp = await client.post(f"/v1/answers/{out['answer_id']}/feedback", json={"rating": "down", "comment": "vague"})
    assert resp.status_code == 201, resp.text
    stored = (await client.get(f"/v1/answers/{out['answer_id']}")).json()
    assert [(f["rating"], f["comment"]) for f in stored["feedback"]] == [("down", "vague")]

    assert (await client.post(f"/v1/answers/{out['answer_id']}/feedback", json={"rating": "meh"})).status_code == 422
    for path, body in (("feedback", {"rating": "up"}), ("reference", {"reference": "x"}), ("rescore", None)):
        resp = await client.post(f"/v1/answers/nope/{path}", json=body)
        assert resp.status_code == 404 and "nope" in resp.json()["error"]
    resp = await client.post(f"/v1/answers/{out['answer_id']}/reference", json={"reference": "   "})
    assert resp.status_code == 422 and "blank" in resp.json()["error"]
    assert (await client.get("/healthz")).status_code == 200


async def test_report_aggregates_the_collections_answers(client, services, kb):  # noqa: F811
    wrong = "The Golden Gate Bridge opened to traffic in 1952 [1]. Its main span is 2,000 metres long [1]."
    services.generators["misquoting"] = MisquotingGenerator(wrong)
    try:
        questions = [
            ("When did the Golden Gate Bridge open?", None),
            ("How tall is the Eiffel Tower?", None),
            ("What is the airspeed velocity of an unladen swallow?", None),
            ("When did the Golden Gate Bridge open?", "misquoting"),
        ]
        outs = [await ask(client, question=q, collections=[kb], generator=g) for q, g in questions]
    finally:
        del services.generators["misquoting"]
    answers = [await wait_scored(client, o["answer_id"]) for o in outs]
    await client.post(f"/v1/answers/{outs[3]['answer_id']}/feedback", json={"rating": "down", "comment": "wrong year"})
    await client.post(f"/v1/answers/{outs[0]['answer_id']}/feedback", json={"rating": "up"})

    resp = await client.get("/v1/reports/groundedness", params={"collection": kb})
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["count"] == 4 and report["scored"] == 4 and report["abstained"] == 1
    assert report["abstention_rate"] == 0.25
    faith = [a["scores"]["faithfulness"]["value"] for a in answers]
    known = [v for v in faith if v is not None]
    assert len(known) == 3  # the abstention's null is not counted, and does not turn the mean into 0 or NaN
    summary = report["metrics"]["faithfulness"]
    assert summary["count"] == 3 and summary["mean"] == pytest.approx(sum(known) / 3, abs=1e-4)
    assert summary["below_threshold"] == sum(v < 0.5 for v in known)
    assert sum(b["count"] for b in summary["histogram"]) == 3
    assert sum(summary["nulls"].values()) == 1 and "abstained" in next(iter(summary["nulls"]))
    assert report["metrics"]["context_recall"]["count"] == 0 and report["metrics"]["context_recall"]["mean"] is None

    worst = report["worst_answers"][0]
    assert worst["answer_id"] == outs[3]["answer_id"] and worst["faithfulness"] == 0.0
    assert [c["claim"] for c in worst["unsupported_claims"]] == [
        "The Golden Gate Bridge opened to traffic in 1952.",
        "Its main span is 2,000 metres long.",
    ]
    assert worst["feedback"] == {"up": 0, "down": 1, "comments": ["wrong year"]}
    assert report["documents_in_low_faithfulness_answers"] == [
        {"document_id": outs[3]["citations"][0]["document_id"], "filename": "bridge", "answers": 1}
    ]
    generators = {g["generator"]: g for g in report["by_generator"]}
    assert generators["misquoting"]["count"] == 1 and generators["misquoting"]["faithfulness"] == 0.0
    assert generators["extractive"]["count"] == 3 and generators["extractive"]["abstention_rate"] == pytest.approx(
        1 / 3, abs=1e-4
    )
    assert [p["count"] for p in report["by_prompt_version"]] == [4]
    assert report["feedback"]["up"] == 1 and report["feedback"]["down"] == 1
    assert report["feedback"]["faithfulness_when_down"] == 0.0
    assert sum(day["count"] for day in report["trend"]) == 4

    csv_resp = await client.get("/v1/reports/groundedness", params={"collection": kb, "format": "csv"})
    assert csv_resp.status_code == 200 and csv_resp.headers["content-type"].startswith("text/csv")
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(csv_resp.text)))
    assert len(rows) == 4
    by_id = {r["answer_id"]: r for r in rows}
    assert by_id[outs[2]["answer_id"]]["faithfulness"] == ""  # null stays empty, never 0
    assert by_id[outs[3]["answer_id"]]["feedback_down"] == "1"

    from datetime import UTC, datetime, timedelta, timezone

    east = timezone(timedelta(hours=5))  # the same instants written with an offset select the same answers
    before = (datetime.now(UTC) - timedelta(minutes=30)).astimezone(east).isoformat()
    after = (datetime.now(UTC) + timedelta(minutes=30)).astimezone(east).isoformat()
    for since, count in ((before, 4), (after, 0)):
        resp = await client.get("/v1/reports/groundedness", params={"collection": kb, "since": since})
        assert resp.json()["count"] == count, (since, resp.json()["count"])
    assert report["truncated"] is False
    tomorrow = await client.get("/v1/reports/groundedness", params={"collection": kb, "since": "2999-01-01"})
    assert tomorrow.json()["count"] == 0 and tomorrow.json()["metrics"]["faithfulness"]["mean"] is None
    only = await client.get("/v1/reports/groundedness", params={"collection": kb, "generator": "misquoting"})
    assert only.json()["count"] == 1


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"since": "yesterday"}, 422, "not a date"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, 422, "before until"),
        ({"collection": "no-such-collection"}, 404, "no-such-collection"),
        ({"format": "xml"}, 422, "format"),
        ({"worst": 0}, 422, "worst"),
    ],
)
async def test_report_rejects_bad_filters(client, params, status, message):
    resp = await client.get("/v1/reports/groundedness", params=params)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]


BRIDGE, TOWER, SOURDOUGH = (
    "When did the Golden Gate Bridge open?",
    "How tall is the Eiffel Tower?",
    "What leavens sourdough?",
)


async def owed_without_jobs(client, services, kb: str, *questions: str) -> list[str]:  # noqa: F811
    """Answers whose scores are owed but have no job: only a batch taken by another job can score them."""
    services.settings.scoring.enabled = False
    try:
        ids = [(await ask(client, question=q, collections=[kb]))["answer_id"] for q in questions]
    finally:
        services.settings.scoring.enabled = True
    statuses = [(await client.get(f"/v1/answers/{i}")).json()["scores"]["status"] for i in ids]
    assert statuses == ["not_scored"] * len(ids)
    for i in ids:
        await services.answers.scores.request(i)
    return ids


async def test_one_job_scores_the_owed_answers_in_one_batch(client, services, kb):  # noqa: F811

    ids = await owed_without_jobs(client, services, kb, BRIDGE, TOWER, SOURDOUGH)
    assert await services.scoring.score_owed(ids[-1]) >= 3
    scored_at = []
    for i in ids:
        scores = (await client.get(f"/v1/answers/{i}")).json()["scores"]
        assert scores["status"] == "done" and scores["faithfulness"]["value"] == 1.0, scores
        scored_at.append(scores["scored_at"])
    await services.scoring.score_owed(ids[0])  # nothing is owed for these any more: not scored again
    again = [(await client.get(f"/v1/answers/{i}")).json()["scores"]["scored_at"] for i in ids]
    assert again == scored_at


class PoisonedScorer:
    """The real offline scorer, except that it breaks on one question: a batch must not fail with it."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self.real, self.name, self.version = real, real.name, real.version

    async def score(self, item):  # type: ignore[no-untyped-def]
        return (await self.score_many([item]))[0]

    async def score_many(self, items):  # type: ignore[no-untyped-def]
        if any("sourdough" in i.question for i in items):
            raise ValueError("poisoned")
        return await self.real.score_many(items)


async def test_a_poison_answer_fails_alone_not_its_batch(client, services, kb):  # noqa: F811

    ids = await owed_without_jobs(client, services, kb, BRIDGE, SOURDOUGH, TOWER)
    real, services.scoring.scorer = services.scoring.scorer, PoisonedScorer(services.scoring.scorer)
    try:
        assert await services.scoring.score_owed(ids[0]) >= 3
    finally:
        services.scoring.scorer = real
    results = [(await client.get(f"/v1/answers/{i}")).json()["scores"] for i in ids]
    assert [r["status"] for r in results] == ["done"] * 3
    assert results[0]["faithfulness"]["value"] == 1.0 and results[2]["faithfulness"]["value"] == 1.0
    assert "poisoned" in results[1]["error"] and "faithfulness" not in results[1]


async def test_an_answer_held_by_a_dead_worker_is_scored_once_its_claim_runs_out(client, services, kb):  # noqa: F811
    from datetime import timedelta

    [answer_id] = await owed_without_jobs(client, services, kb, BRIDGE)
    # Another worker's batch claimed it, then died: nothing renews the claim.
    assert await services.answers.scores.claim("dead-worker", answer_id, 1, timedelta(seconds=2)) == [answer_id]
    # Held: this job leaves it, and comes back when the claim ends.
    assert await services.scoring.score_owed(answer_id) == 0
    state = await services.answers.scores.state(answer_id)
    assert (state.status, state.claimed_by) == ("pending", "dead-worker")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while (scores := (await client.get(f"/v1/answers/{answer_id}")).json()["scores"])["status"] != "done":
        assert loop.time() < deadline, scores
        await asyncio.sleep(0.2)
    assert scores["faithfulness"]["value"] == 1.0 and scores["error"] is None
    assert (await services.answers.scores.state(answer_id)).claimed_by is None

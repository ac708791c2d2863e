"""Settings choose the scorer: an answer scored offline is rescored by ragas once a judge LLM is configured."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_answers import RECORDS
from tests.judge_server import JudgeServer
from tests.support.metrics import samples, value
from tests.support.polling import poll, wait_scored
from tests.support.service import create_collection, import_records, start_service


async def test_rescore_after_a_judge_is_configured(tmp_path: Path) -> None:
    # One data directory, two services in turn: the same data, first without a judge, then with one.
    async with start_service(tmp_path) as svc:
        client = svc.client
        await import_records(client, await create_collection(client, "kb"), RECORDS)
        out = await client.post("/v1/query", json={"question": "How tall is the Eiffel Tower?", "collections": ["kb"]})
        answer_id = out.json()["answer_id"]
        offline = (await wait_scored(client, answer_id, scorer="offline"))["scores"]
        assert offline["faithfulness"]["value"] == 1.0

    with JudgeServer() as judge:
        scoring = {"judge_base_url": judge.base_url, "judge_model": "rule"}
        async with start_service(tmp_path, {"scoring": scoring}) as svc:
            client = svc.client
            resp = await client.post(f"/v1/answers/{answer_id}/rescore")
            assert resp.status_code == 202 and resp.json()["scorer"] == "ragas"
            judged = (await wait_scored(client, answer_id, scorer="ragas"))["scores"]
            assert judged["scorer_version"].startswith("ragas-") and judged["scorer_version"].endswith("-rule")
            assert judged["faithfulness"]["value"] == 1.0, json.dumps(judged)
            assert judged["context_recall"]["value"] is None and "reference" in judged["context_recall"]["reason"]
            assert judged["claims"] and all(c["supported"] for c in judged["claims"])
            assert judge.requests, "the judge was never asked"
            await _assert_judge_tokens_counted(client, judge, answer_id, judged["scored_at"])
            direct = await client.post(
                "/v1/evaluate",
                json={"question": "How tall?", "answer": "It is 500 metres tall.", "contexts": [RECORDS[1]["text"]]},
            )
            assert direct.json()["scorer"] == "ragas" and direct.json()["faithfulness"]["value"] == 0.0


async def test_an_unreachable_judge_is_retried_then_recorded_as_null(own_service) -> None:
    with JudgeServer(mode="error") as judge:
        scoring = {"judge_base_url": judge.base_url, "judge_model": "rule", "max_tries": 2}
        svc = await own_service({"scoring": scoring})
        client = svc.client
        await import_records(client, await create_collection(client, "kb"), RECORDS)

        async def ask(question: str) -> str:
            resp = await client.post("/v1/query", json={"question": question, "collections": ["kb"]})
            return resp.json()["answer_id"]

        async def asked() -> int:
            return len(judge.requests)

        # The judge is down for the first attempt, then back: the job's retry scores the answer. Requests go one
        # at a time, so once a third has arrived the first two (the SDK's try and retry) both had their 500.
        recovered = await ask("How tall is the Eiffel Tower?")
        await poll(asked, lambda n: n >= 3, what="the judge to be asked three times", every_s=0.05)
        judge.mode = "ok"
        scores = (await wait_scored(client, recovered, scorer="ragas"))["scores"]
        assert scores["faithfulness"]["value"] == 1.0 and scores["error"] is None, scores
        assert judge.kinds().count("statements") >= 3  # two refused, then the retry's

        # Down for good: the last try stores nulls that say why, and that a retry may help.
        judge.mode = "error"
        down = await ask("When did the Golden Gate Bridge open?")
        scores = (await wait_scored(client, down, scorer="ragas"))["scores"]
        for metric in ("faithfulness", "context_precision"):
            assert scores[metric]["value"] is None and scores[metric]["retryable"] is True, scores
            assert "HTTP 500" in scores[metric]["reason"], scores


async def _assert_judge_tokens_counted(client, judge: JudgeServer, answer_id: str, scored_at: str) -> None:
    """What the judge spent is in /v1/usage (a row of its own), in the collection's budget and in /metrics; a rescore
    spends again."""
    prompt, completion = judge.tokens()
    assert prompt > 0 and completion > 0
    usage = (await client.get("/v1/usage", params={"collection": "kb"})).json()
    judged = [r for r in usage["rows"] if r["role"] == "judge"]
    assert [(r["model"], r["answers"], r["prompt_tokens"], r["completion_tokens"]) for r in judged] == [
        ("rule", 1, prompt, completion)
    ]
    assert usage["totals"]["judge"]["prompt_tokens"] == prompt
    assert usage["totals"]["prompt_tokens"] == prompt  # the extractive answer itself used none
    assert usage["totals"]["answers"] == 1  # a scoring is not an answer

    resp = await client.put("/v1/budgets/collection/kb/day", json={"tokens": 10 * (prompt + completion)})
    assert resp.status_code == 200 and resp.json()["used_tokens"] == prompt + completion, resp.text
    today = (await client.get("/v1/ops/summary", params={"days": 1})).json()["days"][-1]
    assert (today["judge_prompt_tokens"], today["judge_completion_tokens"]) == (prompt, completion), today
    assert today["prompt_tokens"] == prompt
    metrics = (await client.get("/metrics")).text
    assert value(samples(metrics), "rag_tokens_total", model="rule", direction="in") == prompt

    judge.requests.clear()
    assert (await client.post(f"/v1/answers/{answer_id}/rescore")).status_code == 202
    await wait_scored(client, answer_id, scorer="ragas", after=str(scored_at))
    more = judge.tokens()
    assert sum(more) > 0
    budgets = (await client.get("/v1/budgets")).json()
    assert [b["used_tokens"] for b in budgets] == [prompt + completion + sum(more)]
    judged = [r for r in (await client.get("/v1/usage")).json()["rows"] if r["role"] == "judge"]
    assert [r["answers"] for r in judged] == [2]  # two scorings of one answer, the same day


async def test_what_a_judge_spent_on_an_attempt_that_is_retried_is_counted(own_service) -> None:
    # Precision fails on the first attempt (the SDK's try and retry both get 500), after statements and verdicts were
    # judged: the job retries the whole scoring, and both attempts' tokens are the cost.
    with JudgeServer(mode="error", fail_kinds=frozenset({"precision"})) as judge:
        scoring = {"judge_base_url": judge.base_url, "judge_model": "rule", "max_tries": 2}
        svc = await own_service({"scoring": scoring})
        client = svc.client
        await import_records(client, await create_collection(client, "kb"), RECORDS)
        resp = await client.post("/v1/query", json={"question": "How tall is the Eiffel Tower?", "collections": ["kb"]})
        answer_id = resp.json()["answer_id"]

        async def refused() -> int:
            return sum(r.kind == "precision" and r.status == 500 for r in judge.requests)

        await poll(refused, lambda n: n >= 2, what="the judge to refuse precision twice", every_s=0.05)
        judge.mode = "ok"
        scores = (await wait_scored(client, answer_id, scorer="ragas"))["scores"]
        assert scores["context_precision"]["value"] is not None, scores
        assert judge.kinds().count("statements") == 2  # judged twice: the failed attempt and the retry

        prompt, completion = judge.tokens()
        usage = (await client.get("/v1/usage")).json()
        assert usage["totals"]["judge"]["prompt_tokens"] == prompt
        assert usage["totals"]["judge"]["completion_tokens"] == completion

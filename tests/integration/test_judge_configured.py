"""Settings choose the scorer: an answer scored offline is rescored by ragas once a judge LLM is configured."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from kernel.settings import load_settings
from rag.api.app import create_app
from tests.conftest import wait_job
from tests.integration.test_answers import RECORDS
from tests.judge_server import JudgeServer


async def _scored(client: httpx.AsyncClient, answer_id: str, scorer: str) -> dict:
    for _ in range(3000):  # a hang guard, not a speed claim
        scores = (await client.get(f"/v1/answers/{answer_id}")).json()["scores"]
        if scores["status"] == "done" and scores.get("scorer") == scorer:
            return scores
        await asyncio.sleep(0.1)
    raise AssertionError(f"answer {answer_id} was not scored by {scorer}: {scores}")


async def _service(data_dir: Path, **settings: Any) -> tuple[LifespanManager, httpx.AsyncClient]:
    app = create_app(load_settings(data_dir=data_dir, **settings))
    manager = LifespanManager(app, startup_timeout=300, shutdown_timeout=60)
    await manager.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://rag.test", timeout=120)
    return manager, client


async def test_rescore_after_a_judge_is_configured(tmp_path: Path) -> None:
    manager, client = await _service(tmp_path)
    try:
        await client.post("/v1/collections", json={"name": "kb"})
        body = "\n".join(json.dumps(r) for r in RECORDS).encode()
        job = (await client.post("/v1/collections/kb/documents/import", content=body)).json()
        assert (await wait_job(client, job["job_id"]))["status"] == "succeeded"
        out = await client.post("/v1/query", json={"question": "How tall is the Eiffel Tower?", "collections": ["kb"]})
        answer_id = out.json()["answer_id"]
        offline = await _scored(client, answer_id, "offline")
        assert offline["faithfulness"]["value"] == 1.0
    finally:
        await client.aclose()
        await manager.__aexit__(None, None, None)

    with JudgeServer() as judge:
        manager, client = await _service(tmp_path, scoring={"judge_base_url": judge.base_url, "judge_model": "rule"})
        try:
            resp = await client.post(f"/v1/answers/{answer_id}/rescore")
            assert resp.status_code == 202 and resp.json()["scorer"] == "ragas"
            judged = await _scored(client, answer_id, "ragas")
            assert judged["scorer_version"].startswith("ragas-") and judged["scorer_version"].endswith("-rule")
            assert judged["faithfulness"]["value"] == 1.0, json.dumps(judged)
            assert judged["context_recall"]["value"] is None and "reference" in judged["context_recall"]["reason"]
            assert judged["claims"] and all(c["supported"] for c in judged["claims"])
            assert judge.requests, "the judge was never asked"
            direct = await client.post(
                "/v1/evaluate",
                json={"question": "How tall?", "answer": "It is 500 metres tall.", "contexts": [RECORDS[1]["text"]]},
            )
            assert direct.json()["scorer"] == "ragas" and direct.json()["faithfulness"]["value"] == 0.0
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)


async def test_an_unreachable_judge_is_retried_then_recorded_as_null(tmp_path: Path) -> None:
    with JudgeServer(mode="error") as judge:
        scoring = {"judge_base_url": judge.base_url, "judge_model": "rule", "max_tries": 2}
        manager, client = await _service(tmp_path, scoring=scoring)
        try:
            await client.post("/v1/collections", json={"name": "kb"})
            body = "\n".join(json.dumps(r) for r in RECORDS).encode()
            job = (await client.post("/v1/collections/kb/documents/import", content=body)).json()
            assert (await wait_job(client, job["job_id"]))["status"] == "succeeded"

            async def ask(question: str) -> str:
                resp = await client.post("/v1/query", json={"question": question, "collections": ["kb"]})
                return resp.json()["answer_id"]

            # The judge is down for the first attempt, then back: the job's retry scores the answer. Requests go one
            # at a time, so once a third has arrived the first two (the SDK's try and retry) both had their 500.
            recovered = await ask("How tall is the Eiffel Tower?")
            for _ in range(3000):  # a hang guard, not a speed claim
                if len(judge.requests) >= 3:
                    break
                await asyncio.sleep(0.05)
            judge.mode = "ok"
            scores = await _scored(client, recovered, "ragas")
            assert scores["faithfulness"]["value"] == 1.0 and scores["error"] is None, scores
            assert judge.kinds().count("statements") >= 3  # two refused, then the retry's

            # Down for good: the last try stores nulls that say why, and that a retry may help.
            judge.mode = "error"
            down = await ask("When did the Golden Gate Bridge open?")
            scores = await _scored(client, down, "ragas")
            for metric in ("faithfulness", "context_precision"):
                assert scores[metric]["value"] is None and scores[metric]["retryable"] is True, scores
                assert "HTTP 500" in scores[metric]["reason"], scores
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)

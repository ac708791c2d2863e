"""Owed scores survive the worker: a service killed while its score jobs wait scores them after a restart."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import SHARED
from tests.integration.test_answers import RECORDS
from tests.support.polling import wait_job_sync, wait_scored_sync
from tests.support.service import ServiceProcess, import_records_sync

QUESTIONS = ["When did the Golden Gate Bridge open?", "How tall is the Eiffel Tower?", "What leavens sourdough?"]


@pytest.mark.slow
def test_owed_scores_are_scored_after_a_kill_and_restart(tmp_path: Path) -> None:
    # One job at a time: a long import holds the worker, so the score jobs are still queued when the kill comes.
    svc = ServiceProcess(tmp_path / "data", env={"RAG_INGESTION__WORKER_CONCURRENCY": "1"})
    svc.start()
    try:
        import_records_sync(svc.url, "kb", RECORDS)

        with (SHARED / "scifact" / "corpus.jsonl").open() as fh:
            rows = [json.loads(next(fh)) for _ in range(250)]
        big = "\n".join(json.dumps({"id": r["_id"], "title": r["title"], "text": r["text"]}) for r in rows)
        httpx.post(svc.url + "/v1/collections", json={"name": "big"}).raise_for_status()
        blocker = httpx.post(svc.url + "/v1/collections/big/documents/import", content=big, timeout=60).json()
        wait_job_sync(svc.url, blocker["job_id"], ("running", "succeeded", "failed"))

        answer_ids = []
        for q in QUESTIONS:
            resp = httpx.post(svc.url + "/v1/query", json={"question": q, "collections": ["kb"]}, timeout=120)
            assert resp.status_code == 200, resp.text
            answer_ids.append(resp.json()["answer_id"])
        statuses = [httpx.get(f"{svc.url}/v1/answers/{a}").json()["scores"]["status"] for a in answer_ids]
        running = httpx.get(f"{svc.url}/v1/jobs/{blocker['job_id']}").json()["status"]
        assert running == "running" and statuses == ["pending"] * 3, (running, statuses)
        svc.kill()  # the embedded Valkey, and the queued score jobs in it, die with the service

        svc.start()
        for answer_id in answer_ids:
            data = wait_scored_sync(svc.url, answer_id)
            assert data["scores"]["scorer"] == "offline" and data["scores"]["error"] is None, data["scores"]
            # Each question is answered from its record (test_scoring scores these very answers 1.0).
            assert not data["abstained"] and data["scores"]["faithfulness"]["value"] == 1.0, data
    finally:
        svc.stop()

"""What arq records about our jobs, and when it retries them, through the real worker of the test service.

A job that failed used to return normally after recording the failure in the catalog, so arq's own result said
success: anything reading arq (its result records, a dashboard, a health check) saw a healthy queue. And the score
job retried after a hard-coded 2**attempt seconds, whatever RAG_SCORING__RETRY_BASE_SECONDS said.
"""

from __future__ import annotations

import asyncio

import pytest
from arq import Retry
from arq.constants import in_progress_key_prefix, result_key_prefix
from arq.jobs import Job, JobResult

from kernel.errors import TransientError
from kernel.settings import load_settings
from rag.worker import JobFailed, score_answer
from tests.conftest import DOCS
from tests.support.polling import wait_job


async def arq_result(services, job_id: str, limit_s: float = 120.0) -> JobResult:
    """arq's own record of a finished job. The catalog is updated before the job returns, so wait for it. The
    limit only guards against a hang."""
    job = Job(job_id, services.queue.pool, _queue_name=services.settings.redis.queue_name)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while (info := await job.result_info()) is None:
        assert loop.time() < deadline, f"arq holds no result for job {job_id}"
        await asyncio.sleep(0.05)
    return info


async def wait_queue_idle(services, limit_s: float = 300.0) -> None:
    """Until no job is queued or running (arq keeps a job in its queue until it ends). The limit only guards
    against a hang."""
    pool, name = services.queue.pool, services.settings.redis.queue_name
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while await pool.zcard(name) or await pool.keys(f"{in_progress_key_prefix}*"):
        assert loop.time() < deadline, "the queue never became idle"
        await asyncio.sleep(0.05)


async def upload(client, collection: str, name: str, data: bytes) -> str:
    resp = await client.post(f"/v1/collections/{collection}/documents", files={"files": (name, data)})
    assert resp.status_code == 202, resp.text
    return resp.json()[0]["job_id"]


async def test_an_ingest_job_that_fails_is_a_failure_in_arq_too(client, services, collection):
    # A real password-protected PDF: the parser refuses it, which the catalog records as the job's error.
    job_id = await upload(client, collection, "password.pdf", (DOCS / "password.pdf").read_bytes())
    job = await wait_job(client, job_id)
    assert job["status"] == "failed" and "password-protected" in job["error"], job
    info = await arq_result(services, job_id)  # the queue's job id is the catalog's
    assert info.success is False, info
    assert isinstance(info.result, JobFailed) and job_id in str(info.result)


async def test_an_ingest_job_that_succeeds_is_a_success_in_arq(client, services, collection):
    job_id = await upload(client, collection, "bridge.txt", b"The Golden Gate Bridge opened to traffic in 1937.")
    assert (await wait_job(client, job_id))["status"] == "succeeded"
    info = await arq_result(services, job_id)
    assert (info.success, info.result) == (True, "done")


class BrokenScorer:
    """A scorer with a bug (not a judge that is down): the score job records the error and must not retry."""

    name, version = "broken", "0"

    async def score(self, item):
        return (await self.score_many([item]))[0]

    async def score_many(self, items):
        raise ValueError("broken scorer (injected by the test)")


async def test_a_score_job_that_fails_is_a_failure_in_arq_too(client, services, collection, monkeypatch):
    # No other job that could take this answer into its batch: the failure then belongs to its own job.
    await wait_queue_idle(services)
    monkeypatch.setattr(services.scoring, "scorer", BrokenScorer())
    monkeypatch.setattr(services.scoring.settings, "batch_size", 1)
    resp = await client.post("/v1/query", json={"question": "When did the bridge open?", "collections": [collection]})
    assert resp.status_code == 200, resp.text
    answer_id = resp.json()["answer_id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    # The score job's id is made when it is enqueued ("score:<answer>:<random>"); find it by arq's result key.
    while not (keys := await services.queue.pool.keys(f"{result_key_prefix}score:{answer_id}:*")):
        assert loop.time() < deadline, "the score job did not finish"
        await asyncio.sleep(0.05)
    [key] = keys
    info = await arq_result(services, key.decode().removeprefix(result_key_prefix))
    assert info.success is False and isinstance(info.result, JobFailed), info
    scores = (await client.get(f"/v1/answers/{answer_id}")).json()["scores"]
    assert "broken scorer" in scores["error"], scores


class UnreachableJudge:
    """A judge that cannot be reached: the score job retries it after a backoff."""

    name, version = "unreachable", "0"

    async def score(self, item):
        return (await self.score_many([item]))[0]

    async def score_many(self, items):
        raise TransientError("connection refused (injected by the test)")


async def test_a_score_job_retries_after_the_configured_backoff(client, services, collection, monkeypatch):
    # An owed score without a queued job, and no other job that could take it into its batch (a score job whose
    # own answer is not owed takes the oldest owed ones; a failed score job, as above, leaves one such job behind):
    # only the job run below takes it.
    await wait_queue_idle(services)
    monkeypatch.setattr(services.settings.scoring, "enabled", False)
    resp = await client.post("/v1/query", json={"question": "How tall is it?", "collections": [collection]})
    assert resp.status_code == 200, resp.text
    answer_id = resp.json()["answer_id"]
    await services.answers.scores.request(answer_id)

    # The setting as an operator gives it, read the way the service reads it at start.
    monkeypatch.setenv("RAG_SCORING__RETRY_BASE_SECONDS", "7.5")
    monkeypatch.setattr(services.settings, "scoring", load_settings(data_dir=services.settings.data_dir).scoring)
    monkeypatch.setattr(services.scoring, "scorer", UnreachableJudge())
    assert services.settings.scoring.max_tries == 3
    for attempt, defer_seconds in ((1, 7.5), (2, 15.0)):  # the base, then doubled
        with pytest.raises(Retry) as retry:
            await score_answer({"services": services, "job_try": attempt}, answer_id)
        assert retry.value.defer_score == defer_seconds * 1000, attempt  # arq keeps the delay in milliseconds
    with pytest.raises(JobFailed, match="gave up after 3 attempts"):
        await score_answer({"services": services, "job_try": 3}, answer_id)
    scores = (await client.get(f"/v1/answers/{answer_id}")).json()["scores"]
    assert "gave up after 3 attempts" in scores["error"] and "connection refused" in scores["error"], scores

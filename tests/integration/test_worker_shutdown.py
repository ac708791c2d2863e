"""A stopping worker finishes its job or leaves it on the queue: SIGTERM to a standalone worker process.

One job, two worker processes, beside an API that runs no worker of its own (split mode) on the machine's
PostgreSQL and Redis:
1. the first worker, with a 1-second grace period, is stopped midway through embedding: it exits cleanly and the
   interrupted job is back on arq's queue, not lost and not failed;
2. a second worker picks it up; stopped midway too, but with a long grace period, it finishes the job before it
   exits. The document count and chunk count are those of one clean run.

The workers run `rag.worker.run_standalone`, what `rag worker` runs once it has checked its settings: `rag worker`
itself refuses to start without a Qdrant server URL, and none can run here. Each worker therefore indexes into a
Qdrant Edge store of its own, and shares the API's stored originals (its blob folder is a link to the API's).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from kernel.settings import load_settings
from rag.api.app import create_app
from rag.heartbeat import live_workers
from tests.conftest import SHARED
from tests.support.databases import fresh_database
from tests.support.polling import poll, wait_job
from tests.support.service import BASE_URL, RunningService

REDIS_URL = "redis://127.0.0.1:6379/14"
DOCS = 200


@asynccontextmanager
async def _api(data_dir: Path, database_url: str, queue_name: str) -> AsyncIterator[RunningService]:
    settings = load_settings(
        data_dir=data_dir,
        database={"url": database_url},
        qdrant={"url": None},
        redis={"url": REDIS_URL, "queue_name": queue_name},
    )
    app = create_app(settings, embedded_worker=False)
    async with LifespanManager(app, startup_timeout=300, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=120) as client:
            yield RunningService(client, app.state.services, app)


class WorkerProcess:
    def __init__(self, data_dir: Path, api_data_dir: Path, env: dict[str, str]) -> None:
        data_dir.mkdir(parents=True)
        (data_dir / "blobs").symlink_to(api_data_dir / "blobs", target_is_directory=True)
        self.log_path = data_dir / "worker.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        code = (
            "import asyncio, logging\n"
            "from kernel.privacy import enforce_offline\n"
            "from kernel.settings import load_settings\n"
            "from rag.worker import run_standalone\n"
            "logging.basicConfig(level=logging.INFO)\n"
            "enforce_offline()\n"
            "asyncio.run(run_standalone(load_settings()))\n"
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code],
                env={**inherited, **env, "RAG_DATA_DIR": str(data_dir)},
                stdout=log,
                stderr=log,
                cwd=Path(__file__).resolve().parents[2],
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> int:
        """SIGTERM, then the exit code once it has exited on its own."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(600)  # a guard against a hang, not a timing requirement
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the worker did not exit after SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def _midway(attempt: int) -> Callable[[dict], bool]:
    def check(job: dict) -> bool:
        assert job["status"] not in ("succeeded", "failed"), f"finished before it could be stopped: {job}"
        return job["attempts"] == attempt and job["stage"] == "embedding" and 0 < job["done"] < job["total"]

    return check


@pytest.mark.slow
async def test_sigterm_requeues_then_finishes_the_job(tmp_path: Path) -> None:
    queue_name = f"rag:test:shutdown:{uuid.uuid4().hex[:12]}"
    api_dir = tmp_path / "api"
    async with fresh_database("postgresql", tmp_path) as database_url, _api(api_dir, database_url, queue_name) as api:
        client, pool = api.client, api.services.queue.pool
        with (SHARED / "scifact" / "corpus.jsonl").open() as fh:
            rows = [json.loads(next(fh)) for _ in range(DOCS)]
        body = "\n".join(json.dumps({"id": r["_id"], "title": r["title"], "text": r["text"]}) for r in rows)
        assert (await client.post("/v1/collections", json={"name": "shutdown"})).status_code == 201
        resp = await client.post("/v1/collections/shutdown/documents/import", content=body)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]

        env = {
            "RAG_REDIS__URL": REDIS_URL,
            "RAG_REDIS__QUEUE_NAME": queue_name,
            "RAG_DATABASE__URL": database_url,
            "RAG_LOG_LEVEL": "info",
        }
        job_url = f"/v1/jobs/{job_id}"

        async def job() -> dict:
            return dict((await client.get(job_url)).json())

        # 1. A short grace period: the job is interrupted and goes back on the queue.
        lease = {"RAG_INGESTION__HEARTBEAT_SECONDS": "1", "RAG_INGESTION__JOB_LEASE_SECONDS": "10"}
        first = WorkerProcess(
            tmp_path / "worker-1", api_dir, {**env, **lease, "RAG_INGESTION__SHUTDOWN_GRACE_SECONDS": "1"}
        )
        try:
            await poll(job, _midway(1), what="the first worker to be midway through the job", every_s=0.05)
            # The worker holds the job's claim to its lease, not to arq's job timeout (hours): had it been
            # killed outright, the job would be free for another worker within 10 s.
            await poll(
                lambda: pool.pttl(f"arq:in-progress:{job_id}"),
                lambda ms: 0 < ms <= 10_000,
                what="the job's claim to be a lease",
            )
            assert first.stop() == 0, first.log()
        finally:
            first.kill()
        assert "cancelled, will be run again" in first.log(), first.log()
        assert await pool.zscore(queue_name, job_id) is not None, "the interrupted job is no longer queued"
        assert not await pool.exists(f"arq:in-progress:{job_id}")
        assert await live_workers(pool, queue_name) == 0  # it took its heartbeat with it
        interrupted = await job()
        assert interrupted["status"] == "running" and interrupted["attempts"] == 1, interrupted

        # 2. A long grace period: stopped midway, it finishes the job first.
        second = WorkerProcess(tmp_path / "worker-2", api_dir, {**env, "RAG_INGESTION__SHUTDOWN_GRACE_SECONDS": "600"})
        try:
            await poll(job, _midway(2), what="the second worker to be midway through the job", every_s=0.05)
            assert second.stop() == 0, second.log()
        finally:
            second.kill()
        done = await wait_job(client, job_id)
        assert done["status"] == "succeeded" and done["attempts"] == 2, done
        assert done["done"] == done["total"]
        assert await pool.zscore(queue_name, job_id) is None
        info = (await client.get("/v1/collections/shutdown")).json()
        assert info["document_count"] == DOCS, info

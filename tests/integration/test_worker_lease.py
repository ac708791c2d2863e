"""The lease on a running job (rag.worker_lease): short, renewed while the worker lives, gone when the job ends.

Against a real Redis server with two workers on one queue. That a job whose worker is killed runs again on another
worker is shown with real processes in test_split_mode.py; here, that a live worker keeps its job however long it
runs: the other worker never takes it meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import func

from rag.queue import redis_settings
from rag.worker_lease import LeasedWorker
from tests.support.polling import poll

REDIS_URL = os.environ.get("RAG_TEST_SPLIT_REDIS_URL", "redis://127.0.0.1:6379/12")
LEASE_S = 3


def _reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _reachable(), reason="needs Redis on 127.0.0.1:6379")


@pytest.fixture
async def pool() -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(REDIS_URL))
    yield redis
    await redis.aclose()


async def test_a_live_worker_keeps_its_job_past_the_lease(pool: ArqRedis) -> None:
    queue = f"rag:lease:{uuid.uuid4().hex[:12]}"
    runs: list[tuple[str, int]] = []
    release = asyncio.Event()

    def make(name: str) -> LeasedWorker:
        async def long_job(ctx: dict[str, Any]) -> str:
            runs.append((name, ctx["job_try"]))
            await release.wait()
            return name

        return LeasedWorker(
            functions=[func(long_job, name="long_job")],
            queue_name=queue,
            redis_pool=pool,
            handle_signals=False,
            poll_delay=0.1,
            job_timeout=3600,
            lease_seconds=LEASE_S,
        )

    first, second = make("first"), make("second")
    key = in_progress_key_prefix + "lease-job"
    tasks = [asyncio.create_task(first.async_run())]
    try:
        await pool.enqueue_job("long_job", _job_id="lease-job", _queue_name=queue)
        await poll(lambda: _value(runs), lambda r: len(r) == 1, what="the first worker to start the job")
        ttl_ms = await pool.pttl(key)
        assert 0 < ttl_ms <= LEASE_S * 1000  # the lease, not arq's job timeout + 10 s
        tasks.append(asyncio.create_task(second.async_run()))
        # Three leases go by: the lease is renewed each time, so the idle second worker never takes the job.
        renewed = 0
        for _ in range(3):
            await asyncio.sleep(LEASE_S)
            assert await pool.exists(key), "the running job's lease lapsed"
            renewed += await first.renew_leases()
        assert renewed == 3
        assert runs == [("first", 1)]
        release.set()
        await poll(lambda: pool.exists(key), lambda n: n == 0, what="the finished job's lease to be gone")
        assert await first.renew_leases() == 0  # nothing left to renew, nothing revived
        assert runs == [("first", 1)]
    finally:
        release.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.delete(key, "arq:job:lease-job", "arq:result:lease-job", "arq:retry:lease-job", queue)


async def _value(runs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return list(runs)

"""Worker heartbeats and job leases on a real Redis server (the machine's, a database of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from rag.heartbeat import Heartbeat, heartbeat_prefix, live_workers

REDIS_URL = "redis://127.0.0.1:6379/14"
SIX_HOURS_MS = 6 * 3600 * 1000


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_beat_marks_the_worker_live_for_three_beats(redis: Redis) -> None:
    queue = f"rag:test:hb:{uuid.uuid4().hex[:12]}"
    beat = Heartbeat(redis, queue, interval=2.0)
    assert await live_workers(redis, queue) == 0
    await beat.start()
    try:
        assert await live_workers(redis, queue) == 1
        assert beat.key.startswith(heartbeat_prefix(queue))
        assert 0 < await redis.pttl(beat.key) <= 6000
        # Another queue's workers are not counted.
        assert await live_workers(redis, queue + "-other") == 0
    finally:
        await beat.stop()
    assert await live_workers(redis, queue) == 0  # a clean stop removes the key at once


async def test_a_beat_shortens_the_running_jobs_claims_to_the_lease(redis: Redis) -> None:
    """arq claims a running job for the job timeout (hours); the beat brings the claim down to the lease, so a
    dead worker's job is free again within the lease. A job that has finished is not claimed again."""
    queue = f"rag:test:hb:{uuid.uuid4().hex[:12]}"
    running, finished = f"job-{uuid.uuid4().hex[:8]}", f"job-{uuid.uuid4().hex[:8]}"
    await redis.set(in_progress_key_prefix + running, b"1", px=SIX_HOURS_MS)
    beat = Heartbeat(redis, queue, interval=1.0, running=lambda: [running, finished], lease=5.0)
    try:
        await beat.beat()
        assert 0 < await redis.pttl(in_progress_key_prefix + running) <= 5000
        assert not await redis.exists(in_progress_key_prefix + finished)
    finally:
        await redis.delete(in_progress_key_prefix + running, beat.key)

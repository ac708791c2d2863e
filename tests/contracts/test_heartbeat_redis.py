"""Worker heartbeats on a real Redis server (the machine's, a database of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
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

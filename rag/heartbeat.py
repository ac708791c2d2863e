"""Worker heartbeats: every worker process, standalone (`rag worker`) or embedded (`rag serve`), keeps a key with a
time-to-live in the queue's Redis and renews it on a timer of its own, so `/readyz` can tell whether anything will
run the jobs the API enqueues.

arq's own health-check key is not used for this: arq renews it from its polling loop, which waits while every job
slot is busy, so a worker in the middle of long jobs would look dead. It is also one key per queue, not per worker.

The lease on each running job (a dead worker's job runs again soon) is the worker's own: rag/worker_lease.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# A worker counts as live while its key is younger than this many beats: one missed beat is not a death.
BEATS_TO_LIVE = 3


def heartbeat_prefix(queue_name: str) -> str:
    return f"{queue_name}:worker:"


class Heartbeat:
    """Renews `<queue>:worker:<id>` every `interval` seconds, with a time-to-live of three intervals."""

    def __init__(self, redis: Redis, queue_name: str, interval: float) -> None:
        self._redis = redis
        self._interval = interval
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.key = heartbeat_prefix(queue_name) + self.worker_id
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        ttl_ms = int(self._interval * BEATS_TO_LIVE * 1000)
        await self._redis.set(self.key, str(int(time.time())), px=ttl_ms)

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except (RedisError, OSError) as exc:
                # The queue is down: readiness says so through its own check; keep trying.
                log.warning("worker heartbeat failed: %s", exc)
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        """Writes the first beat now (so the worker is visible at once), then keeps beating in a task."""
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.worker_id}")

    def stop_soon(self) -> None:
        """Stops beating; the key expires on its own. Safe from a done-callback (no await)."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Stops beating and removes the key, so readiness sees a stopped worker at once."""
        self.stop_soon()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self.key)


async def live_workers(redis: Redis, queue_name: str) -> int:
    """How many workers on this queue have beaten within their time-to-live."""
    count = 0
    async for _ in redis.scan_iter(match=heartbeat_prefix(queue_name) + "*", count=100):
        count += 1
    return count

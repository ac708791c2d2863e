"""Worker heartbeats: every worker process, standalone (`rag worker`) or embedded (`rag serve`), keeps a key with a
time-to-live in the queue's Redis and renews it on a timer of its own, so `/readyz` can tell whether anything will
run the jobs the API enqueues.

arq's own health-check key is not used for this: arq renews it from its polling loop, which waits while every job
slot is busy, so a worker in the middle of long jobs would look dead. It is also one key per queue, not per worker.

The same beat renews a lease on each job the worker is running. arq marks a running job with an in-progress key
that lives as long as the job timeout (hours); while it exists no other worker takes the job, so the job of a
worker that was killed outright (SIGKILL, out of memory) would wait that long. Renewed here with a short
time-to-live instead, the key of a dead worker's job expires within the lease, and arq hands the job, still on its
queue, to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# A worker counts as live while its key is younger than this many beats: one missed beat is not a death.
BEATS_TO_LIVE = 3


def heartbeat_prefix(queue_name: str) -> str:
    return f"{queue_name}:worker:"


class Heartbeat:
    """Renews `<queue>:worker:<id>` every `interval` seconds, with a time-to-live of three intervals, and the
    in-progress keys of the jobs `running()` names with a time-to-live of `lease` seconds."""

    def __init__(
        self,
        redis: Redis,
        queue_name: str,
        interval: float,
        running: Callable[[], Iterable[str]] = tuple,
        lease: float = 60.0,
    ) -> None:
        self._redis = redis
        self._interval = interval
        self._running = running
        self._lease_ms = int(lease * 1000)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.key = heartbeat_prefix(queue_name) + self.worker_id
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        ttl_ms = int(self._interval * BEATS_TO_LIVE * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key, str(int(time.time())), px=ttl_ms)
            for job_id in list(self._running()):
                # PEXPIRE never creates a key: a job that has just finished (its key deleted) stays finished.
                pipe.pexpire(in_progress_key_prefix + job_id, self._lease_ms)
            await pipe.execute()

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

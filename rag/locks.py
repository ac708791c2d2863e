"""The write guard of `kernel.ports.WriteGuard`: a lock per collection on the queue's Redis server.

Every API and worker process already shares that server, and a lock there outlives no process for long: one
whose holder died expires after `HOLD_SECONDS`. A job holds it for one check and one upsert of an embedding
group, a delete for removing the chunks and the catalog rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from kernel.errors import TransientError

# Longer than any one upsert or delete takes; a holder that dies frees the collection after this.
HOLD_SECONDS = 120.0
# How long a delete or a job waits for the collection before it is told to retry.
WAIT_SECONDS = 120.0
_PREFIX = "rag:write:"


class CollectionLocks:
    def __init__(self, redis: Redis, hold_seconds: float = HOLD_SECONDS, wait_seconds: float = WAIT_SECONDS) -> None:
        self._redis = redis
        self._hold, self._wait = hold_seconds, wait_seconds

    @contextlib.asynccontextmanager
    async def hold(self, collection: str) -> AsyncIterator[None]:
        lock = self._redis.lock(_PREFIX + collection, timeout=self._hold, blocking_timeout=self._wait)
        try:
            acquired = await lock.acquire()
        except (RedisError, OSError) as exc:
            raise TransientError(
                f"the job queue is unavailable, so collection {collection!r} cannot be locked: {exc}"
            ) from exc
        if not acquired:
            raise TransientError(f"collection {collection!r} is busy with another write or delete; try again")
        try:
            yield
        finally:
            # Expired (a very slow holder) or the server went away: either way it is no longer ours.
            with contextlib.suppress(LockError, RedisError, OSError):
                await lock.release()

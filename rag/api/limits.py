"""What one caller may ask of the API: a request rate per key (per client address in single-user mode), counted
by the `limits` library, and a cap on /v1/evaluate calls at once, since each runs the encoder synchronously.

The rate is counted in this process by default. With `RAG_LIMITS__STORAGE=redis` it is counted in the Redis/Valkey
server the job queue already uses (the configured one or the embedded Valkey), so API processes share one count.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool

from kernel.errors import TooManyRequests
from kernel.ops_settings import LimitsSettings

# How long a caller turned away by the evaluation cap is told to wait: a turn frees when a running evaluation
# ends, which no one can predict; a short wait keeps a polite client from hammering.
EVALUATE_RETRY_SECONDS = 5


class RateLimited(TooManyRequests):
    """429 with the seconds to wait, sent as the Retry-After header."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(f"{message}; retry in {retry_after} s")
        self.headers = {"Retry-After": str(retry_after)}


def limits_storage_uri(redis_url: str) -> str:
    """The queue's URL in the notation of `limits` (`async+redis://`, `async+rediss://`, `async+redis+unix://`)."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class RequestLimits:
    """One per app: the rate counter and the evaluation cap."""

    def __init__(self, settings: LimitsSettings, redis_url: str | None = None) -> None:
        self.settings = settings
        self.items: list[RateLimitItem] = parse_many(settings.rate) if settings.rate else []
        self.storage: Storage
        self._pool: ConnectionPool | None = None
        if settings.storage == "redis" and redis_url:
            # redis-py, the client the queue already uses (limits defaults to coredis), with a pool of ours so that
            # close() can end its connections.
            self._pool = ConnectionPool.from_url(redis_url)
            options: dict[str, Any] = {"connection_pool": self._pool}  # passed on to redis-py's client
            uri = limits_storage_uri(redis_url)
            self.storage = RedisStorage(uri, implementation="redispy", key_prefix="rag", **options)
        else:
            self.storage = MemoryStorage()
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.evaluations = anyio.CapacityLimiter(settings.evaluate_concurrency)

    async def hit(self, caller: str) -> None:
        """Count one request of `caller` ("key:ID" or "addr:HOST"); RateLimited when it is over any rate."""
        for item in self.items:
            if not await self.limiter.hit(item, caller):
                stats = await self.limiter.get_window_stats(item, caller)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                raise RateLimited(
                    f"rate limit exceeded: at most {item.amount} requests per {_per(item)} for each key "
                    "(RAG_LIMITS__RATE)",
                    wait,
                )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()

    @contextlib.asynccontextmanager
    async def evaluation(self) -> AsyncIterator[None]:
        """A turn to run an evaluation: at once, within `evaluate_wait_seconds`, or RateLimited."""
        wait = self.settings.evaluate_wait_seconds
        try:
            if wait > 0:
                with anyio.fail_after(wait):
                    await self.evaluations.acquire()
            else:
                self.evaluations.acquire_nowait()
        except (anyio.WouldBlock, TimeoutError):
            raise RateLimited(
                f"{self.settings.evaluate_concurrency} evaluation(s) are already running, the most at once "
                "(RAG_LIMITS__EVALUATE_CONCURRENCY)",
                EVALUATE_RETRY_SECONDS,
            ) from None
        try:
            yield
        finally:
            self.evaluations.release()


def _per(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"


def caller_id(request: Request, key_id: str | None) -> str:
    """Whom a request counts against: its key, or in single-user mode (no key) the client's address."""
    if key_id:
        return f"key:{key_id}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


def request_limits(request: Request) -> RequestLimits | None:
    return getattr(request.app.state, "limits", None)

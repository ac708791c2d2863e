"""The job queue: arq on a Redis-compatible server. Job ids are ours, so enqueueing twice does no double work."""

from __future__ import annotations

import uuid

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from redis.exceptions import RedisError

from kernel.errors import TransientError
from rag.observability.tracing import job_carrier

INGEST_FUNCTION = "ingest_job"
SCORE_FUNCTION = "score_answer"


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 5
    return settings


class JobQueue:
    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self._pool = pool
        self.queue_name = queue_name

    @classmethod
    async def connect(cls, url: str, queue_name: str) -> JobQueue:
        try:
            pool = await create_pool(redis_settings(url), default_queue_name=queue_name)
        except (RedisError, OSError) as exc:
            raise TransientError(f"the job queue at {url} is unavailable: {exc}") from exc
        return cls(pool, queue_name)

    @property
    def pool(self) -> ArqRedis:
        return self._pool

    async def enqueue_ingest(self, job_id: str) -> bool:
        """False when arq already holds a job with this id (queued, running or just finished)."""
        try:
            job = await self._pool.enqueue_job(
                INGEST_FUNCTION, job_id, meta=job_carrier(), _job_id=job_id, _queue_name=self.queue_name
            )
        except (RedisError, OSError) as exc:
            raise TransientError(f"the job queue is unavailable: {exc}") from exc
        return job is not None

    async def enqueue_score(self, answer_id: str, defer_seconds: float | None = None) -> None:
        # A fresh id each time: a rescore must run even while arq still remembers the last job for this answer.
        job_id = f"score:{answer_id}:{uuid.uuid4().hex[:8]}"
        try:
            await self._pool.enqueue_job(
                SCORE_FUNCTION,
                answer_id,
                # The request that asked for the score: the job's log lines and span refer to it.
                meta=job_carrier(),
                _job_id=job_id,
                _queue_name=self.queue_name,
                _defer_by=defer_seconds,
            )
        except (RedisError, OSError) as exc:
            raise TransientError(f"the job queue is unavailable: {exc}") from exc

    async def ping(self) -> None:
        try:
            await self._pool.ping()
        except (RedisError, OSError) as exc:
            raise TransientError(f"the job queue is unavailable: {exc}") from exc

    async def close(self) -> None:
        await self._pool.aclose()

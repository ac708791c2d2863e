"""The arq worker: standalone (`rag worker`) or inside the API process (embedded mode)."""

from __future__ import annotations

import logging
from typing import Any

from arq.worker import Worker, func

from evals.online import recover_scores, score_answer
from ingestion.jobs import ingest_job, recover_jobs
from rag.queue import INGEST_FUNCTION, SCORE_FUNCTION, redis_settings
from rag.services import Services, build_services
from rag.settings import Settings

log = logging.getLogger(__name__)


def make_worker(svc: Services, *, handle_signals: bool) -> Worker:
    """A worker that runs jobs with these services; arq's own retry count is ours plus one so ours decides."""
    ing = svc.settings.ingestion

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["services"] = svc
        recovered = await recover_jobs(svc)
        if recovered:
            log.info("re-enqueued %d unfinished jobs", recovered)
        owed = await recover_scores(svc)
        if owed:
            log.info("re-enqueued %d owed answer scores", owed)

    return Worker(
        functions=[
            func(ingest_job, name=INGEST_FUNCTION, max_tries=ing.max_tries + 1),
            func(score_answer, name=SCORE_FUNCTION, max_tries=svc.settings.scoring.max_tries + 1),
        ],
        queue_name=svc.settings.redis.queue_name,
        redis_pool=svc.queue.pool,
        redis_settings=redis_settings(svc.redis_url),
        on_startup=on_startup,
        max_jobs=ing.worker_concurrency,
        job_timeout=ing.job_timeout_seconds,
        keep_result=3600,
        poll_delay=0.2,
        handle_signals=handle_signals,
    )


async def run_standalone(settings: Settings) -> None:
    svc = await build_services(settings)
    worker = make_worker(svc, handle_signals=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()
        await svc.close()

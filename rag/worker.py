"""The arq worker: standalone (`rag worker`) or inside the API process (embedded mode).

The job functions turn domain outcomes into job states: a transient failure retries with backoff, anything else
is recorded on the job and raised, so that arq's own record says the job failed too.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry
from arq.worker import Worker, func

from kernel.errors import TransientError
from kernel.settings import Settings
from kernel.types import JobStatus
from rag.queue import INGEST_FUNCTION, SCORE_FUNCTION, redis_settings
from rag.services import Services, build_services
from rag.worker_lease import LeasedWorker

log = logging.getLogger(__name__)

INGEST_RETRY_CAP_SECONDS = 300.0
SCORE_RETRY_CAP_SECONDS = 60.0


class JobFailed(Exception):
    """Raised after the failure is recorded in the catalog: arq then records the job as failed, not done."""


def backoff_seconds(base: float, attempt: int, cap: float) -> float:
    """Delay before the retry that follows `attempt`: `base`, doubling each attempt, at most `cap`."""
    return min(cap, base * 2 ** max(0, attempt - 1))


async def ingest_job(ctx: dict[str, Any], job_id: str) -> str:
    svc: Services = ctx["services"]
    jobs = svc.catalog.jobs
    attempt = int(ctx.get("job_try", 1))
    cfg = svc.settings.ingestion
    try:
        status = await svc.indexer.run(job_id)
    except TransientError as exc:
        if attempt >= cfg.max_tries:
            await jobs.finished(job_id, JobStatus.failed, f"gave up after {attempt} attempts: {exc}")
            raise JobFailed(f"job {job_id} gave up after {attempt} attempts: {exc}") from exc
        delay = backoff_seconds(cfg.retry_base_seconds, attempt, INGEST_RETRY_CAP_SECONDS)
        log.warning("job %s attempt %d hit a transient failure, retrying in %.1fs: %s", job_id, attempt, delay, exc)
        try:
            await jobs.note_error(job_id, f"attempt {attempt} failed, retrying in {delay:.0f}s: {exc}")
        except TransientError:
            pass  # the catalog itself is what is down; the retry will tell
        raise Retry(defer=delay) from exc
    except Exception as exc:
        # A bug, not the document's fault: fail visibly rather than retry the same crash.
        log.exception("job %s failed unexpectedly", job_id)
        await jobs.finished(job_id, JobStatus.failed, f"internal error while ingesting ({type(exc).__name__}: {exc})")
        raise JobFailed(f"job {job_id} failed: {type(exc).__name__}") from exc
    if status == JobStatus.failed:
        raise JobFailed(f"job {job_id} failed; its error is on the job")
    if status == JobStatus.cancelled:
        return "cancelled"
    return "done" if status is not None else "gone"


async def score_answer(ctx: dict[str, Any], answer_id: str) -> str:
    """A judge or database that is down is retried; anything else is recorded, never lost silently."""
    svc: Services = ctx["services"]
    cfg = svc.settings.scoring
    attempt = int(ctx.get("job_try", 1))
    try:
        await svc.scoring.score_owed(answer_id, last_try=attempt >= cfg.max_tries)
    except TransientError as exc:
        if attempt >= cfg.max_tries:
            await svc.answers.scores.failed(answer_id, f"gave up after {attempt} attempts: {exc}")
            raise JobFailed(f"scoring answer {answer_id} gave up after {attempt} attempts: {exc}") from exc
        raise Retry(defer=backoff_seconds(cfg.retry_base_seconds, attempt, SCORE_RETRY_CAP_SECONDS)) from exc
    except Exception as exc:
        log.exception("scoring answer %s failed", answer_id)
        await svc.answers.scores.failed(answer_id, f"internal error while scoring ({type(exc).__name__}: {exc})")
        raise JobFailed(f"scoring answer {answer_id} failed: {type(exc).__name__}") from exc
    return "done"


async def recover_jobs(svc: Services) -> int:
    """Enqueue every job the catalog has not seen finish: after a crash, nothing uploaded is lost."""
    count = 0
    for job_id in await svc.catalog.jobs.unfinished():
        if await svc.queue.enqueue_ingest(job_id):
            count += 1
    return count


def make_worker(svc: Services, *, handle_signals: bool) -> Worker:
    """A worker that runs jobs with these services; arq's own retry count is ours plus one so ours decides."""
    ing = svc.settings.ingestion

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["services"] = svc
        recovered = await recover_jobs(svc)
        if recovered:
            log.info("re-enqueued %d unfinished jobs", recovered)
        owed = await svc.scoring.recover()
        if owed:
            log.info("re-enqueued %d owed answer scores", owed)

    return LeasedWorker(
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
        lease_seconds=ing.job_lease_seconds,
    )


async def run_standalone(settings: Settings) -> None:
    svc = await build_services(settings)
    worker = make_worker(svc, handle_signals=True)
    try:
        await worker.async_run()
    finally:
        await worker.close()
        await svc.close()

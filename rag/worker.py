"""The arq worker: standalone (`rag worker`) or inside the API process (embedded mode).

The job functions turn domain outcomes into job states: a transient failure retries with backoff, anything else
is recorded on the job and raised, so that arq's own record says the job failed too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from arq import Retry
from arq.cron import cron
from arq.worker import Worker, func

from kernel.errors import TransientError
from kernel.settings import Settings
from kernel.types import JobStatus
from rag.drift import evaluate_alerts
from rag.heartbeat import Heartbeat
from rag.observability.jobs import job_scope
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


async def ingest_job(ctx: dict[str, Any], job_id: str, meta: Mapping[str, str] | None = None) -> str:
    """`meta`: the trace context and request id of the request that enqueued the job (absent after a recovery)."""
    svc: Services = ctx["services"]
    started, outcome = time.perf_counter(), "interrupted"
    with job_scope(svc.telemetry, "ingest_job", meta, {"rag.job_id": job_id}):
        try:
            result = await _ingest(ctx, svc, job_id)
            outcome = {"done": "succeeded"}.get(result, result)
            return result
        except Retry:
            outcome = "retry"
            raise
        except Exception:
            outcome = "failed"
            raise
        finally:
            seconds = time.perf_counter() - started
            svc.telemetry.metrics.ingest_job(outcome, seconds)
            extra = {"job_id": job_id, "outcome": outcome, "seconds": round(seconds, 3)}
            log.info("ingest job %s: %s", job_id, outcome, extra=extra)


async def _ingest(ctx: dict[str, Any], svc: Services, job_id: str) -> str:
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
    if status == JobStatus.succeeded and svc.optimizer is not None and svc.optimizer.active:
        svc.optimizer.note((await jobs.get(job_id)).total)  # a build, if due, runs in the background
    return "done" if status is not None else "gone"


async def score_answer(ctx: dict[str, Any], answer_id: str, meta: Mapping[str, str] | None = None) -> str:
    """A judge or database that is down is retried; anything else is recorded, never lost silently."""
    svc: Services = ctx["services"]
    outcome = "interrupted"
    if meta is None:  # enqueued at a start-up recovery: the answer row still names its request
        meta = await _answer_meta(svc, answer_id)
    with job_scope(svc.telemetry, "score_job", meta, {"rag.answer_id": answer_id}):
        try:
            outcome = await _score(ctx, svc, answer_id)
            return outcome
        except Retry:
            outcome = "retry"
            raise
        except Exception:
            outcome = "failed"
            raise
        finally:
            svc.telemetry.metrics.score_job(outcome)
            extra = {"answer_id": answer_id, "outcome": outcome}
            log.info("score job for answer %s: %s", answer_id, outcome, extra=extra)


async def _answer_meta(svc: Services, answer_id: str) -> dict[str, str] | None:
    try:
        answer = await svc.answers.get(answer_id)
    except Exception:
        return None  # the job itself reports what is wrong with the answer
    return {"request_id": answer.request_id} if answer.request_id else None


async def _score(ctx: dict[str, Any], svc: Services, answer_id: str) -> str:
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


async def drift_alerts(ctx: dict[str, Any]) -> int:
    """Hourly: judge yesterday's and today's drift indicators; new alerts are recorded, counted and sent once."""
    raised = await evaluate_alerts(ctx["services"])
    if raised:
        log.warning("%d drift alerts raised", len(raised), extra={"alerts": [a["id"] for a in raised]})
    return len(raised)


def make_worker(svc: Services, *, handle_signals: bool) -> Worker:
    """A worker that runs jobs with these services; arq's own retry count is ours plus one so ours decides.

    `handle_signals` (a standalone `rag worker`): on SIGTERM or SIGINT it takes no new job, gives running jobs
    `shutdown_grace_seconds` to finish, then interrupts the rest; arq puts an interrupted job back on the queue
    (its retry rule for a cancelled job), where another worker picks it up at once.
    """
    ing = svc.settings.ingestion

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["services"] = svc
        heartbeat = Heartbeat(
            svc.queue.pool,
            svc.settings.redis.queue_name,
            ing.heartbeat_seconds,
        )
        await heartbeat.start()
        ctx["heartbeat"] = heartbeat
        # on_startup runs in arq's main task, which ends when the worker stops in either mode (the embedded one is
        # cancelled with its app, without arq's close()): the heartbeat stops with it.
        main = asyncio.current_task()
        if main is not None:
            main.add_done_callback(lambda _task: heartbeat.stop_soon())
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
        # Every worker process has the cron; arq runs each hour's run once (its job id is the hour).
        cron_jobs=[cron(drift_alerts, minute={7}, run_at_startup=False)] if svc.settings.drift.enabled else None,
        max_jobs=ing.worker_concurrency,
        job_timeout=ing.job_timeout_seconds,
        keep_result=3600,
        poll_delay=0.2,
        handle_signals=handle_signals,
        job_completion_wait=ing.shutdown_grace_seconds if handle_signals else 0,
        on_shutdown=on_shutdown,
        lease_seconds=ing.job_lease_seconds,
    )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    heartbeat: Heartbeat | None = ctx.get("heartbeat")
    if heartbeat is not None:
        await heartbeat.stop()


async def run_standalone(settings: Settings) -> None:
    svc = await build_services(settings)
    worker = make_worker(svc, handle_signals=True)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        # arq's signal handler cancels its main task once the grace period is over: a requested stop, not a crash.
        log.info("worker stopped by signal")
    finally:
        await worker.close()
        await svc.close()

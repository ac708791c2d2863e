"""arq job functions: thin wrappers that turn pipeline outcomes into job states and retries."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry

from ingestion.index import run_job
from rag.errors import TransientError
from rag.services import Services
from rag.types import JobStatus

log = logging.getLogger(__name__)


def backoff_seconds(base: float, attempt: int, cap: float = 300.0) -> float:
    return min(cap, base * 2 ** max(0, attempt - 1))


async def ingest_job(ctx: dict[str, Any], job_id: str) -> str:
    svc: Services = ctx["services"]
    attempt = int(ctx.get("job_try", 1))
    try:
        await run_job(svc, job_id)
    except TransientError as exc:
        max_tries = svc.settings.ingestion.max_tries
        if attempt >= max_tries:
            await svc.catalog.jobs.finished(job_id, JobStatus.failed, f"gave up after {attempt} attempts: {exc}")
            return "failed"
        delay = backoff_seconds(svc.settings.ingestion.retry_base_seconds, attempt)
        log.warning("job %s attempt %d hit a transient failure, retrying in %.1fs: %s", job_id, attempt, delay, exc)
        try:
            await svc.catalog.jobs.note_error(job_id, f"attempt {attempt} failed, retrying in {delay:.0f}s: {exc}")
        except TransientError:
            pass  # the catalog itself is what is down; the retry will tell
        raise Retry(defer=delay) from exc
    except Exception as exc:
        # A bug, not the document's fault: fail visibly rather than retry the same crash.
        log.exception("job %s failed unexpectedly", job_id)
        await svc.catalog.jobs.finished(
            job_id, JobStatus.failed, f"internal error while ingesting ({type(exc).__name__}: {exc})"
        )
        return "failed"
    return "done"


async def recover_jobs(svc: Services) -> int:
    """Enqueue every job the catalog has not seen finish: after a crash, nothing uploaded is lost."""
    count = 0
    for job_id in await svc.catalog.jobs.unfinished():
        if await svc.queue.enqueue_ingest(job_id):
            count += 1
    return count

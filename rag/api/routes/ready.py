"""Readiness, `GET /readyz`: whether this process can serve traffic now. `/healthz` stays the liveness probe.

Open like `/healthz` (probes carry no key) and as tight-lipped: each check says ok or what kind of failure, never
a URL, host or exception text (those go to the log), and nothing names a collection, document or key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rag.heartbeat import live_workers
from rag.services import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["ops"])

# A probe that hangs (a server that accepts and never answers) counts as down well before a probe's own timeout.
CHECK_TIMEOUT_SECONDS = 3.0
CHECKS = ("queue", "database", "vector_store", "worker")


class Readiness(BaseModel):
    status: Literal["ready", "not ready", "starting"]
    checks: dict[str, str] = Field(
        default_factory=dict, description="Per dependency (queue, database, vector_store, worker): ok or the failure."
    )
    failing: list[str] = Field(default_factory=list, description="The dependencies that are not ok.")


async def _check(name: str, probe: Callable[[], Awaitable[str]]) -> str:
    try:
        return await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("readiness: %s did not answer within %.0fs", name, CHECK_TIMEOUT_SECONDS)
        return "timed out"
    except Exception as exc:
        log.warning("readiness: %s unavailable: %s", name, exc)
        return "unavailable"


def _probes(svc: Services, worker_task: asyncio.Task[object] | None) -> dict[str, Callable[[], Awaitable[str]]]:
    async def ok(probe: Callable[[], Awaitable[None]]) -> str:
        await probe()
        return "ok"

    async def worker() -> str:
        if worker_task is not None and worker_task.done():
            return "stopped"  # the embedded worker of this process
        live = await live_workers(svc.queue.pool, svc.settings.redis.queue_name)
        return "ok" if live else "no live worker"

    return {
        "queue": lambda: ok(svc.queue.ping),
        "database": lambda: ok(svc.catalog.ping),
        "vector_store": lambda: ok(svc.store.ping),
        "worker": worker,
    }


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Starting, or a dependency named in `failing` is down."}},
)
async def readyz(request: Request) -> JSONResponse:
    """Ready when the queue (Redis ping), the database (SELECT 1), the vector store and at least one worker (a
    heartbeat in Redis younger than three beats) all answer; 503 names whichever does not."""
    svc: Services | None = request.app.state.services
    if svc is None:
        body = Readiness(status="starting", checks={}, failing=[])
        return JSONResponse(body.model_dump(), status_code=503)
    probes = _probes(svc, request.app.state.worker_task)
    results = await asyncio.gather(*(_check(name, probes[name]) for name in CHECKS))
    checks = dict(zip(CHECKS, results, strict=True))
    failing = [name for name, result in checks.items() if result != "ok"]
    body = Readiness(status="not ready" if failing else "ready", checks=checks, failing=failing)
    return JSONResponse(body.model_dump(), status_code=503 if failing else 200)

"""`GET /metrics`: the Prometheus exposition, for analysts and admins (a scraper uses such a key), open in
single-user mode like every route."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from kernel.errors import NotFound
from kernel.records import SCORE_STATUS_PENDING
from rag.api.deps import get_services
from rag.api.errors import errors
from rag.security import Reviewer
from rag.services import Services
from rag.storage.schema import scores

log = logging.getLogger(__name__)
router = APIRouter(tags=["ops"], responses=errors(401, 403, 404))
Svc = Annotated[Services, Depends(get_services)]

_EXPOSITION: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text exposition."}
}


@router.get("/metrics", response_class=Response, responses=_EXPOSITION)
async def metrics(svc: Svc, _caller: Reviewer) -> Response:
    telemetry = svc.telemetry
    if not telemetry.metrics.enabled:
        raise NotFound("metrics are switched off (RAG_OBSERVABILITY__METRICS=false)")
    await refresh_backlog(svc)
    body, content_type = await asyncio.to_thread(telemetry.metrics.render)
    return Response(body, media_type=content_type)


async def refresh_backlog(svc: Services) -> None:
    """Queue depth and owed scores, read now: gauges of the state of the shared queue and database."""
    try:
        queued = int(await svc.queue.pool.zcard(svc.queue.queue_name))
        async with svc.catalog.engine.connect() as conn:
            pending = sa.select(sa.func.count()).where(scores.c.status == SCORE_STATUS_PENDING)
            owed = int(await conn.scalar(pending) or 0)
    except Exception as exc:
        # A scrape still reports everything else; the gauges keep their last reading.
        log.warning("could not read the queue depth and owed scores: %s", exc)
        return
    svc.telemetry.metrics.backlog(queued, owed)

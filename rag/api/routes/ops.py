"""Operations (issue 11): the summary and drift indicators behind the `/ops` page, its alerts, and the page itself.

For analysts and admins (the `review` right), over the collections they are granted; the page signs a browser in
like `/reports` does.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from kernel.access import Permission, Principal
from kernel.errors import InvalidInput
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.params import CollectionName
from rag.drift import day_start, drift, evaluate_alerts, thresholds_view
from rag.ops_summary import summary
from rag.security import Reviewer, allowed, page_viewer, visible
from rag.services import Services
from rag.storage.ops import OpsStore, Scope

router = APIRouter(tags=["ops"], route_class=CheckedRoute, responses=errors(*COMMON))
Svc = Annotated[Services, Depends(get_services)]
MAX_DAYS = 90


class OpsParams(BaseModel):
    collection: CollectionName | None = Field(default=None, description="One collection; none: every granted one.")
    days: int = Field(default=14, ge=1, le=MAX_DAYS, description="How many days, up to and including `until`.")
    until: str | None = Field(
        default=None,
        pattern=r"^(|\d{4}-\d{2}-\d{2})$",
        description="The last day (a date, UTC); default today.",
    )


def _last_day(params: OpsParams) -> date:
    """The last day asked for; InvalidInput for a date that is not one, or a window off the calendar."""
    if not params.until:
        return datetime.now(UTC).date()
    try:
        day = date.fromisoformat(params.until)
    except ValueError:
        raise InvalidInput(f"until={params.until!r} is not a date such as 2026-11-27") from None
    if day == date.max or day - date.min < timedelta(days=params.days + MAX_DAYS):
        raise InvalidInput(f"until={params.until!r} is out of range")
    return day


async def _collections(svc: Services, caller: Principal, collection: str | None) -> list[str]:
    if collection is not None:
        await svc.catalog.collections.get(visible(caller, collection))  # 404 for an unknown one
        return [collection]
    return sorted(c.name for c in await svc.catalog.collections.list_all() if caller.sees(c.name))


@router.get("/v1/ops/summary", responses=errors(403, 404))
async def ops_summary(svc: Svc, caller: Reviewer, params: Annotated[OpsParams, Query()]) -> dict[str, Any]:
    """Per day: requests and errors, answer latency percentiles (ms), abstention and cache-hit rates, tokens (and
    cost, once recorded), mean faithfulness, ingestion jobs and chunks; now: queue depth, jobs waiting, scores owed."""
    last = _last_day(params)
    first = last - timedelta(days=params.days - 1)
    if params.collection is not None:
        await _collections(svc, caller, params.collection)
    scope = Scope(day_start(first), day_start(last + timedelta(days=1)), params.collection, caller.grants())
    body = await summary(svc, scope, first, params.days)
    return {"filters": {"collection": params.collection, "days": params.days, "until": last.isoformat()}, **body}


@router.get("/v1/ops/drift", responses=errors(403, 404))
async def ops_drift(svc: Svc, caller: Reviewer, params: Annotated[OpsParams, Query()]) -> dict[str, Any]:
    """Daily drift indicators per collection: query drift (cosine distance of the day's mean question embedding
    from the collection's mean chunk embedding and from the previous period's questions), best retrieval score and
    its drop, abstention rate, mean faithfulness, share of positive feedback; with the alerts they raise."""
    last = _last_day(params)
    names = await _collections(svc, caller, params.collection)
    out = []
    for name in names:
        out.append({"collection": name, "days": await drift(svc, name, last, params.days, caller.grants())})
    since = (last - timedelta(days=params.days - 1)).isoformat()
    alerts = await OpsStore(svc.catalog.engine).alerts(since, names)
    return {
        "filters": {"collection": params.collection, "days": params.days, "until": last.isoformat()},
        "thresholds": thresholds_view(svc),
        "collections": out,
        "alerts": [dataclasses.asdict(a) for a in alerts if a.day <= last.isoformat()],
        "webhook": svc.settings.drift.webhook_url is not None,
    }


@router.post("/v1/ops/alerts/evaluate", responses=errors(403))
async def evaluate(svc: Svc, _caller: Reviewer) -> dict[str, Any]:
    """Judge yesterday and today against the thresholds now (the worker does it every hour): new alerts are
    recorded, counted in /metrics and POSTed to the webhook; an alert already raised is not raised again."""
    raised = await evaluate_alerts(svc)
    return {"raised": [a for a in raised if _caller.sees(a["collection"])]}


@router.get("/ops", response_class=HTMLResponse, include_in_schema=False)
async def ops_page(caller: Annotated[Principal | None, Depends(page_viewer)]) -> Response:
    if caller is None:
        return RedirectResponse("/login?next=/ops", status_code=303)
    allowed(caller, Permission.review)
    page = resources.files("rag.api").joinpath("static/ops.html").read_text(encoding="utf-8")
    return HTMLResponse(page)

"""The audit log, for admins: filtered, as JSON or as JSON lines / CSV for export."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kernel.records import AuditEntry, AuditQuery
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.params import TIME_DESCRIPTION, TIME_PATTERN, CollectionName, time_range
from rag.security import Admin
from rag.services import Services

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=CheckedRoute, responses=errors(*COMMON, 403))
Svc = Annotated[Services, Depends(get_services)]


class AuditParams(BaseModel):
    # The pattern is for the schema; the server's own parser says what is wrong with a bad value.
    since: str | None = Field(
        default=None, description=f"Inclusive. {TIME_DESCRIPTION}", json_schema_extra={"pattern": TIME_PATTERN}
    )
    until: str | None = Field(
        default=None, description=f"Exclusive. {TIME_DESCRIPTION}", json_schema_extra={"pattern": TIME_PATTERN}
    )
    key_id: str | None = Field(default=None, max_length=128)
    action: str | None = Field(default=None, max_length=128, description="A route name, e.g. query.")
    collection: CollectionName | None = None
    outcome: Literal["ok", "refused", "invalid", "error"] | None = None
    after_seq: int = Field(default=0, ge=0, le=2**62, description="Entries after this sequence number (paging).")
    limit: int = Field(default=1000, ge=1, le=10_000)
    format: Literal["json", "jsonl", "csv"] = "json"


def _rows(entries: list[AuditEntry]) -> list[dict[str, object]]:
    return [dataclasses.asdict(e) for e in entries]


_TEXT = {"schema": {"type": "string"}}
_EXPORTS: dict[int | str, dict[str, Any]] = {200: {"content": {"application/x-ndjson": _TEXT, "text/csv": _TEXT}}}


@router.get("", response_model=None, responses=_EXPORTS)
async def read_audit(svc: Svc, _admin: Admin, params: Annotated[AuditParams, Query()]) -> Response | dict[str, object]:
    # Entries store UTC ISO timestamps with microseconds: a bound in the same shape compares correctly as text
    # (a bare "garbage" used to compare as text too, and silently matched nothing).
    start, end = time_range(params.since, params.until, inclusive_until=False)
    bounds = {k: v.isoformat(timespec="microseconds") if v else None for k, v in (("since", start), ("until", end))}
    query = AuditQuery(**{**params.model_dump(exclude={"format"}), **bounds})
    rows = _rows(await svc.audit.query(query))
    if params.format == "jsonl":
        body = "".join(json.dumps(r) + "\n" for r in rows)
        return Response(body, media_type="application/x-ndjson")
    if params.format == "csv":
        out = io.StringIO()
        fields = [f.name for f in dataclasses.fields(AuditEntry)]
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )
    return {"entries": rows, "next_after_seq": rows[-1]["seq"] if rows else params.after_seq}


@router.get("/guardrails")
async def guardrail_counts(svc: Svc, _admin: Admin) -> dict[str, object]:
    """Guardrail events since the service started, by kind (each one is also an audit entry with its request)."""
    return svc.guard.snapshot()

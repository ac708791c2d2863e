"""The audit log, for admins: filtered, as JSON or as JSON lines / CSV for export."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kernel.records import AuditEntry, AuditQuery
from rag.api.deps import get_services
from rag.security import Admin
from rag.services import Services

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Svc = Annotated[Services, Depends(get_services)]


class AuditParams(BaseModel):
    since: str | None = Field(default=None, description="ISO 8601 (inclusive), e.g. 2026-12-01 or 2026-12-01T10:00Z")
    until: str | None = Field(default=None, description="ISO 8601 (exclusive)")
    key_id: str | None = None
    action: str | None = None
    collection: str | None = None
    outcome: Literal["ok", "refused", "invalid", "error"] | None = None
    after_seq: int = Field(default=0, ge=0, le=2**62, description="Entries after this sequence number (paging).")
    limit: int = Field(default=1000, ge=1, le=10_000)
    format: Literal["json", "jsonl", "csv"] = "json"


def _rows(entries: list[AuditEntry]) -> list[dict[str, object]]:
    return [dataclasses.asdict(e) for e in entries]


@router.get("", response_model=None)
async def read_audit(svc: Svc, _admin: Admin, params: Annotated[AuditParams, Query()]) -> Response | dict[str, object]:
    query = AuditQuery(**params.model_dump(exclude={"format"}))
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

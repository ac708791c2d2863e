"""POST /v1/answers/{id}/replay: an analyst answers a stored question again and compares (see rag/replay.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from kernel.errors import NotFound
from rag.api.audit import note
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.params import Id
from rag.redaction import needs_redaction, redact_record
from rag.replay import replay
from rag.security import Reviewer
from rag.services import Services

router = APIRouter(tags=["groundedness"], route_class=CheckedRoute, responses=errors(*COMMON))
Svc = Annotated[Services, Depends(get_services)]


class ReplayIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    versions: Literal["original", "current"] = Field(
        default="original",
        description="original: the document versions the answer rested on, while they are kept (else the current "
        "ones, and the response says so); current: retrieve again against the current versions.",
    )


@router.post("/v1/answers/{answer_id}/replay", responses=errors(403, 404, 409))
async def replay_answer(
    answer_id: Id, svc: Svc, caller: Reviewer, request: Request, body: ReplayIn | None = None
) -> dict[str, Any]:
    """Answer the stored question again with the same prompt (its current version; the response says if it
    changed), generator, filters and collections; returns both answers with their scores and what changed. The
    replay is stored (`replay_of`) and scored now; reports leave replays out. Analysts and admins; an answer of a
    collection the key may not see is a 404."""
    original = await svc.answers.get(answer_id)
    if not caller.sees_all(original.collections):
        raise NotFound(f"answer {answer_id!r} does not exist")
    note(request, collection=original.collections[0] if len(original.collections) == 1 else None, answer_id=answer_id)
    out = await replay(svc, caller, original, (body or ReplayIn()).versions)
    note(request, detail=f"replayed as answer {out['replay']['id']} ({out['evidence']})")
    if await needs_redaction(svc.catalog.collections, original.collections):
        out["original"] = await redact_record(svc.redactor, out["original"])
        out["replay"] = await redact_record(svc.redactor, out["replay"])
    return out

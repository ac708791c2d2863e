"""The prompt templates the service can answer with: id, version (content hash), description and variables."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.prompts.registry import list_prompts
from rag.security import Caller
from rag.services import Services

router = APIRouter(tags=["prompts"], route_class=CheckedRoute, responses=errors(*COMMON))
Svc = Annotated[Services, Depends(get_services)]


class PromptOut(BaseModel):
    id: str
    version: str = Field(description="Content hash of the template: any edit is a new version (answers record it).")
    description: str
    variables: list[str] = Field(description="The placeholders the service fills in.")
    source: str = Field(description="shipped (rag/prompts/templates) or directory (RAG_PROMPTS__DIRECTORY).")
    roles: list[str] = Field(
        description="What this configuration uses it for: answer, guarded, or 'variant:<collection>' (a candidate)."
    )


@router.get("/v1/prompts", response_model=list[PromptOut])
async def prompts(svc: Svc, _caller: Caller) -> list[PromptOut]:
    """Every template, with the ones the configuration uses marked. Any key may list them: an answer shows its
    prompt's id and version to whoever asked, and no template text or collection data is listed here."""
    settings = svc.settings
    found = await asyncio.to_thread(list_prompts, extra=settings.prompts.directory)
    roles: dict[str, list[str]] = {}
    roles.setdefault(settings.answer.prompt, []).append("answer")
    roles.setdefault(settings.answer.guarded_prompt, []).append("guarded")
    for collection, variant in sorted(settings.variants.collections.items()):
        if variant.prompt:
            roles.setdefault(variant.prompt, []).append(f"variant:{collection}")
    return [
        PromptOut(
            id=p.id,
            version=p.version,
            description=p.description,
            variables=p.variables,
            source=p.source,
            roles=roles.get(p.id, []),
        )
        for p in found
    ]

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends

from kernel.types import ChunkSelector, ChunkState, DocumentDetail, JobInfo
from rag.api.deps import get_services
from rag.services import Services

router = APIRouter(tags=["documents"])
Svc = Annotated[Services, Depends(get_services)]


@router.get("/v1/documents/{document_id}", response_model=DocumentDetail)
async def get_document(document_id: str, svc: Svc) -> DocumentDetail:
    return DocumentDetail.model_validate(await svc.catalog.documents.get(document_id), from_attributes=True)


@router.delete("/v1/documents/{document_id}", status_code=204)
async def delete_document(document_id: str, svc: Svc) -> None:
    await svc.catalog.documents.get(document_id)
    await svc.store.delete(ChunkSelector(document_id=document_id))
    for digest in await svc.catalog.documents.delete(document_id):
        await asyncio.to_thread(svc.blobs.delete, digest)


@router.post("/v1/documents/{document_id}/rollback", response_model=DocumentDetail)
async def rollback_document(document_id: str, svc: Svc) -> DocumentDetail:
    current, target = await svc.catalog.versions.rollback_target(document_id)
    await svc.store.set_state(ChunkSelector(document_id=document_id, version=target), ChunkState.active)
    await svc.catalog.versions.switch_active(document_id, current, target)
    await svc.indexer.retire_old_versions(document_id)
    return DocumentDetail.model_validate(await svc.catalog.documents.get(document_id), from_attributes=True)


@router.get("/v1/jobs/{job_id}", response_model=JobInfo)
async def get_job(job_id: str, svc: Svc) -> JobInfo:
    return JobInfo.model_validate(await svc.catalog.jobs.get(job_id), from_attributes=True)

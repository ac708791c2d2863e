from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends

from kernel.access import Principal
from kernel.errors import NotFound
from kernel.records import DocumentWithVersions
from kernel.types import ChunkSelector, ChunkState, DocumentDetail, JobInfo
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.params import Id
from rag.security import Browser, Manager
from rag.services import Services

router = APIRouter(tags=["documents"], route_class=CheckedRoute, responses=errors(*COMMON, 403, 404))
Svc = Annotated[Services, Depends(get_services)]


async def _document(svc: Services, caller: Principal, document_id: str) -> DocumentWithVersions:
    """The document, if its collection is visible to the caller; the same 404 as a missing one otherwise."""
    doc = await svc.catalog.documents.get(document_id)
    if not caller.sees(doc.collection):
        raise NotFound(f"document {document_id!r} does not exist")
    return doc


@router.get("/v1/documents/{document_id}", response_model=DocumentDetail)
async def get_document(document_id: Id, svc: Svc, caller: Browser) -> DocumentDetail:
    return DocumentDetail.model_validate(await _document(svc, caller, document_id), from_attributes=True)


@router.delete("/v1/documents/{document_id}", status_code=204)
async def delete_document(document_id: Id, svc: Svc, caller: Manager) -> None:
    doc = await _document(svc, caller, document_id)
    # Under the collection's write guard: a job indexing this document cannot write between the two deletes, and
    # finds its version gone at its next check; a job left with no document is cancelled in the same transaction.
    async with svc.locks.hold(doc.collection):
        await svc.store.delete(ChunkSelector(document_id=document_id))
        unused = await svc.catalog.documents.delete(document_id)
    for digest in unused:
        await asyncio.to_thread(svc.blobs.delete, digest)


@router.post("/v1/documents/{document_id}/rollback", response_model=DocumentDetail, responses=errors(409))
async def rollback_document(document_id: Id, svc: Svc, caller: Manager) -> DocumentDetail:
    await _document(svc, caller, document_id)
    current, target = await svc.catalog.versions.rollback_target(document_id)
    await svc.store.set_state(ChunkSelector(document_id=document_id, version=target), ChunkState.active)
    await svc.catalog.versions.switch_active(document_id, current, target)
    await svc.indexer.retire_old_versions(document_id)
    return DocumentDetail.model_validate(await svc.catalog.documents.get(document_id), from_attributes=True)


@router.get("/v1/jobs/{job_id}", response_model=JobInfo)
async def get_job(job_id: Id, svc: Svc, caller: Browser) -> JobInfo:
    job = await svc.catalog.jobs.get(job_id)
    if not caller.sees(job.collection):
        raise NotFound(f"job {job_id!r} does not exist")
    return JobInfo.model_validate(job, from_attributes=True)

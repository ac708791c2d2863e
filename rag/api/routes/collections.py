from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from kernel.errors import Forbidden
from kernel.records import NewCollection
from kernel.types import (
    ChunkSelector,
    CollectionCreate,
    CollectionInfo,
    DocumentSummary,
)
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.params import CollectionInPath
from rag.security import Browser, Caller, Manager, visible
from rag.services import Services

router = APIRouter(prefix="/v1/collections", tags=["collections"], route_class=CheckedRoute, responses=errors(*COMMON))
Svc = Annotated[Services, Depends(get_services)]


@router.post("", status_code=201, response_model=CollectionInfo, responses=errors(403, 409))
async def create_collection(body: CollectionCreate, svc: Svc, caller: Manager) -> CollectionInfo:
    if not caller.sees(body.name):
        raise Forbidden(f"this key is not granted collection {body.name!r}; an admin can grant it")
    for field, type_ in body.filterable.items():
        await svc.store.ensure_field_index(f"metadata.{field}", type_)
    new = NewCollection(body.name, body.description, body.metadata, dict(body.filterable), body.policy.model_dump())
    return CollectionInfo.model_validate(await svc.catalog.collections.create(new), from_attributes=True)


@router.get("", response_model=list[CollectionInfo])
async def list_collections(svc: Svc, caller: Caller) -> list[CollectionInfo]:
    found = [c for c in await svc.catalog.collections.list_all() if caller.sees(c.name)]
    return [CollectionInfo.model_validate(c, from_attributes=True) for c in found]


@router.get("/{name}", response_model=CollectionInfo, responses=errors(404))
async def get_collection(name: CollectionInPath, svc: Svc, caller: Caller) -> CollectionInfo:
    visible(caller, name)
    return CollectionInfo.model_validate(await svc.catalog.collections.get(name), from_attributes=True)


@router.delete("/{name}", status_code=204, responses=errors(403, 404))
async def delete_collection(name: CollectionInPath, svc: Svc, caller: Manager) -> None:
    await svc.catalog.collections.get(visible(caller, name))
    # Under the write guard: a running job of this collection cannot write between the two deletes, and finds its
    # versions gone at its next check (its job row goes with the collection), so it stops and writes nothing more.
    async with svc.locks.hold(name):
        blobs = await svc.catalog.collections.blobs(name)
        # Vectors first: if the store fails, the catalog still knows the collection and the delete can be retried.
        await svc.store.delete(ChunkSelector(collection=name))
        await svc.catalog.collections.delete(name)
    for digest in await svc.catalog.documents.unused_blobs(blobs):
        await asyncio.to_thread(svc.blobs.delete, digest)


@router.get("/{name}/documents", response_model=list[DocumentSummary], responses=errors(403, 404))
async def list_documents(
    name: CollectionInPath,
    svc: Svc,
    caller: Browser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    # Bounded: past 2**63-1 the database driver overflows (a 500); no collection has 2**62 documents.
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> list[DocumentSummary]:
    found = await svc.catalog.documents.in_collection(visible(caller, name), limit, offset)
    return [DocumentSummary.model_validate(d, from_attributes=True) for d in found]

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from ingestion.records import parse_jsonl, record_content
from kernel.errors import Forbidden, InvalidInput, PayloadTooLarge, TransientError
from kernel.records import NewCollection, NewVersion
from kernel.text import lone_surrogate
from kernel.types import (
    ChunkSelector,
    CollectionCreate,
    CollectionInfo,
    DocumentSummary,
    ImportRecord,
    ImportResult,
    UploadResult,
)
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.params import CollectionInPath
from rag.api.uploads import check_document, read_limited, sanitize_filename
from rag.blobs import sha256_hex
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
    blobs = await svc.catalog.collections.blobs(name)
    # Vectors first: if the store fails, the catalog still knows the collection and the delete can be retried.
    await svc.store.delete(ChunkSelector(collection=name))
    await svc.catalog.collections.delete(name)
    for digest in await svc.catalog.documents.unused_blobs(blobs):
        await asyncio.to_thread(svc.blobs.delete, digest)


def _per_file(raw: str | None, filenames: list[str], field: str) -> list[Any]:
    """A JSON list aligned with the files, or an object keyed by file name."""
    if raw is None or not raw.strip():
        return [None] * len(filenames)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"form field {field!r} is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise InvalidInput(f"form field {field!r} is nested too deeply") from None
    if (found := lone_surrogate(value)) is not None:
        where = "".join(f"[{p!r}]" for p in found[0])
        raise InvalidInput(f"form field {field!r}{where} contains an unpaired UTF-16 surrogate ({found[1]}): not text")
    if isinstance(value, list):
        if len(value) != len(filenames):
            raise InvalidInput(f"form field {field!r} has {len(value)} entries for {len(filenames)} files")
        return value
    if isinstance(value, dict) and len(filenames) == 1 and not set(value) & set(filenames):
        return [value] if field == "metadata" else [None]
    if isinstance(value, dict):
        unknown = set(value) - set(filenames)
        if unknown:
            raise InvalidInput(f"form field {field!r} names files that were not uploaded: {sorted(unknown)}")
        return [value.get(f) for f in filenames]
    raise InvalidInput(f"form field {field!r} must be a JSON list (one entry per file) or object (by file name)")


@router.post(
    "/{name}/documents", status_code=202, response_model=list[UploadResult], responses=errors(403, 404, 409, 413, 415)
)
async def upload_documents(
    name: CollectionInPath,
    svc: Svc,
    caller: Manager,
    files: Annotated[list[UploadFile], File(description="One or more documents.")],
    metadata: Annotated[str | None, Form(description="JSON: per-file metadata, list or object by name.")] = None,
    ids: Annotated[str | None, Form(description="JSON: per-file document ids (default: the file name).")] = None,
) -> list[UploadResult]:
    limits = svc.settings.ingestion
    await svc.catalog.collections.get(visible(caller, name))
    if len(files) > limits.max_files_per_request:
        raise InvalidInput(f"{len(files)} files in one request; the limit is {limits.max_files_per_request}")
    names = [sanitize_filename(f.filename) for f in files]
    metas = _per_file(metadata, names, "metadata")
    keys = _per_file(ids, names, "ids")
    # Check every file before storing any, so a rejected request changes nothing.
    staged: list[tuple[str, bytes, str, dict[str, Any], str]] = []
    for upload, filename, meta, key in zip(files, names, metas, keys, strict=True):
        data = await read_limited(upload, limits.max_upload_bytes, filename)
        kind = check_document(filename, data)
        if meta is not None and not isinstance(meta, dict):
            raise InvalidInput(f"metadata for {filename} must be a JSON object")
        if key is not None and (
            not isinstance(key, str) or not key.strip() or len(key) > 512 or any(ord(c) < 32 for c in key)
        ):
            raise InvalidInput(f"the id for {filename} must be a non-empty string of at most 512 printable characters")
        staged.append((filename, data, kind, meta or {}, key or filename))
    if len({s[4] for s in staged}) != len(staged):
        raise InvalidInput("two files in this request have the same name or id; upload them separately")
    results = []
    for filename, data, kind, meta, key in staged:
        digest = await asyncio.to_thread(svc.blobs.put, data)
        item = NewVersion(
            key=key,
            filename=filename,
            sha256=digest,
            size_bytes=len(data),
            kind=kind,
            blob=digest,
            metadata=meta,
        )
        registered = await svc.catalog.versions.register_upload(name, item)
        if registered.needs_job:
            await _enqueue(svc, registered.job_id)
        results.append(UploadResult.model_validate(registered, from_attributes=True))
    return results


async def _enqueue(svc: Services, job_id: str) -> None:
    try:
        await svc.queue.enqueue_ingest(job_id)
    except TransientError:
        # The job is recorded in the catalog; the worker re-enqueues unfinished jobs when it (re)starts.
        pass


# The route reads its body as a stream (to stop at the size limit), so FastAPI cannot describe it.
_JSONL_SCHEMA = {"type": "string", "description": 'JSON lines: {"id", "title", "text", "metadata"} per line.'}
_JSONL = {"requestBody": {"required": True, "content": {"application/x-ndjson": {"schema": _JSONL_SCHEMA}}}}


@router.post(
    "/{name}/documents/import",
    status_code=202,
    response_model=ImportResult,
    responses=errors(403, 404, 409, 413),
    openapi_extra=_JSONL,
)
async def import_documents(name: CollectionInPath, request: Request, svc: Svc, caller: Manager) -> ImportResult:
    await svc.catalog.collections.get(visible(caller, name))
    limit = svc.settings.ingestion.max_import_bytes
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the import is larger than {limit:,} bytes (RAG_INGESTION__MAX_IMPORT_BYTES)")
        parts.append(chunk)
    body = b"".join(parts)
    records = await asyncio.to_thread(parse_jsonl, body)
    digest = await asyncio.to_thread(svc.blobs.put, body)
    items = await asyncio.to_thread(_import_items, records, digest)
    registered = await svc.catalog.versions.register_import(name, items, digest)
    if registered.needs_job and registered.job_id:
        await _enqueue(svc, registered.job_id)
    return ImportResult.model_validate(registered, from_attributes=True)


def _import_items(records: list[ImportRecord], digest: str) -> list[NewVersion]:
    items = []
    for index, record in enumerate(records):
        content = record_content(record)
        items.append(
            NewVersion(
                key=record.id,
                filename=record.id,
                sha256=sha256_hex(content),
                size_bytes=len(content),
                kind="text",
                blob=digest,
                metadata=record.metadata,
                record_index=index,
            )
        )
    return items


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

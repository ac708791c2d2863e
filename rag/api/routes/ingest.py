"""Documents into a collection: multipart uploads and JSONL imports, both written to the blob store as they arrive.

Neither request holds a document or an import in memory: files stream into blobs being written (see
`rag.api.multipart`), an import streams into one while each line is checked (`ingestion.records.JsonlScan`). A
blob gets its content address only once the whole request has been accepted; a rejected request discards what
it wrote, and a blob that no version ends up using (the registration failed, or every record was unchanged) is
deleted again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from ingestion.records import JsonlScan, ScannedRecord
from kernel.errors import InvalidInput, PayloadTooLarge, TransientError
from kernel.records import NewVersion
from kernel.text import lone_surrogate
from kernel.types import ImportResult, UploadResult
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.multipart import FILES_FIELD, ReceivedFile, ReceivedForm, UploadLimits, receive_documents
from rag.api.params import CollectionInPath
from rag.blobs import BlobWriter
from rag.security import Manager, visible
from rag.services import Services

router = APIRouter(prefix="/v1/collections", tags=["collections"], route_class=CheckedRoute, responses=errors(*COMMON))
Svc = Annotated[Services, Depends(get_services)]

# Bytes of an import gathered before they are written and checked in a thread.
_IMPORT_PIECE = 1024 * 1024
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILES_FIELD],
                    "properties": {
                        FILES_FIELD: {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One or more documents.",
                        },
                        "metadata": {
                            "type": "string",
                            "description": "JSON: per-file metadata, list or object by name.",
                        },
                        "ids": {
                            "type": "string",
                            "description": "JSON: per-file document ids (default: the file name).",
                        },
                    },
                }
            }
        },
    }
}

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string", "description": 'JSON lines: {"id", "title", "text", "metadata"} each.'}
            }
        },
    }
}


@router.post(
    "/{name}/documents",
    status_code=202,
    response_model=list[UploadResult],
    responses=errors(403, 404, 409, 413, 415),
    openapi_extra=_UPLOAD_BODY,
)
async def upload_documents(
    name: CollectionInPath, request: Request, svc: Svc, caller: Manager
) -> list[UploadResult]:
    limits = svc.settings.ingestion
    await svc.catalog.collections.get(visible(caller, name))
    form = await receive_documents(
        request, svc.blobs, UploadLimits(limits.max_upload_bytes, limits.max_files_per_request)
    )
    try:
        # Every file is checked before any is stored, so a rejected request changes nothing.
        staged = _staged(form)
        for received in form.files:
            await asyncio.to_thread(received.blob.finish)
    except BaseException:
        await asyncio.to_thread(form.discard)
        raise
    results = []
    for position, (received, meta, key) in enumerate(staged):
        try:
            created = await asyncio.to_thread(received.blob.commit)
        except BaseException:
            await asyncio.to_thread(_discard, [r for r, _, _ in staged[position:]])
            raise
        item = NewVersion(
            key=key,
            filename=received.filename,
            sha256=received.blob.finish(),
            size_bytes=received.blob.size,
            kind=received.kind,
            blob=received.blob.finish(),
            metadata=meta,
        )
        try:
            registered = await svc.catalog.versions.register_upload(name, item)
        except BaseException:
            if created:
                await _drop_unused(svc, [item.blob])
            await asyncio.to_thread(_discard, [r for r, _, _ in staged[position + 1 :]])
            raise
        if registered.needs_job:
            await _enqueue(svc, registered.job_id)
        results.append(UploadResult.model_validate(registered, from_attributes=True))
    return results


def _staged(form: ReceivedForm) -> list[tuple[ReceivedFile, dict[str, Any], str]]:
    names = [received.filename for received in form.files]
    metas = _per_file(form.fields.get("metadata"), names, "metadata")
    keys = _per_file(form.fields.get("ids"), names, "ids")
    staged = []
    for received, meta, key in zip(form.files, metas, keys, strict=True):
        if meta is not None and not isinstance(meta, dict):
            raise InvalidInput(f"metadata for {received.filename} must be a JSON object")
        if key is not None and (
            not isinstance(key, str) or not key.strip() or len(key) > 512 or any(ord(c) < 32 for c in key)
        ):
            raise InvalidInput(
                f"the id for {received.filename} must be a non-empty string of at most 512 printable characters"
            )
        staged.append((received, meta or {}, key or received.filename))
    if len({key for _, _, key in staged}) != len(staged):
        raise InvalidInput("two files in this request have the same name or id; upload them separately")
    return staged


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
    "/{name}/documents/import",
    status_code=202,
    response_model=ImportResult,
    responses=errors(403, 404, 409, 413),
    openapi_extra=_IMPORT_BODY,
)
async def import_documents(name: CollectionInPath, request: Request, svc: Svc, caller: Manager) -> ImportResult:
    await svc.catalog.collections.get(visible(caller, name))
    limits = svc.settings.ingestion
    scan = JsonlScan(limits.max_document_chars)
    blob = await asyncio.to_thread(svc.blobs.writer)
    try:
        async for piece in _gathered(request.stream(), _IMPORT_PIECE):
            if blob.size + len(piece) > limits.max_import_bytes:
                raise PayloadTooLarge(
                    f"the import is larger than {limits.max_import_bytes:,} bytes (RAG_INGESTION__MAX_IMPORT_BYTES)"
                )
            await asyncio.to_thread(_write_and_scan, blob, scan, piece)
        records = await asyncio.to_thread(scan.finish)
        digest = await asyncio.to_thread(blob.finish)
        created = await asyncio.to_thread(blob.commit)
    except BaseException:
        await asyncio.to_thread(blob.discard)
        raise
    try:
        registered = await svc.catalog.versions.register_import(name, _import_items(records, digest), digest)
    except BaseException:
        if created:
            await _drop_unused(svc, [digest])
        raise
    if registered.needs_job and registered.job_id:
        await _enqueue(svc, registered.job_id)
    elif created:
        await _drop_unused(svc, [digest])  # every record unchanged: no version refers to this body
    return ImportResult.model_validate(registered, from_attributes=True)


def _write_and_scan(blob: BlobWriter, scan: JsonlScan, piece: bytes) -> None:
    scan.feed(piece)
    blob.write(piece)


async def _gathered(stream: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    parts: list[bytes] = []
    held = 0
    async for chunk in stream:
        parts.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(parts)
            parts, held = [], 0
    if held:
        yield b"".join(parts)


def _import_items(records: list[ScannedRecord], digest: str) -> list[NewVersion]:
    return [
        NewVersion(
            key=record.id,
            filename=record.id,
            sha256=record.sha256,
            size_bytes=record.size,
            kind="text",
            blob=digest,
            metadata=record.metadata,
            record_index=record.index,
        )
        for record in records
    ]


async def _enqueue(svc: Services, job_id: str) -> None:
    try:
        await svc.queue.enqueue_ingest(job_id)
    except TransientError:
        # The job is recorded in the catalog; the worker re-enqueues unfinished jobs when it (re)starts.
        pass


async def _drop_unused(svc: Services, digests: Iterable[str]) -> None:
    for digest in await svc.catalog.documents.unused_blobs(set(digests)):
        await asyncio.to_thread(svc.blobs.delete, digest)


def _discard(received: list[ReceivedFile]) -> None:
    for r in received:
        r.blob.discard()

"""Checks on uploaded files before anything is stored: name, size, emptiness and type."""

from __future__ import annotations

import re
import unicodedata

from fastapi import UploadFile

from kernel.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_UNSAFE = re.compile(r"[^\w.\- ()+,@&=~]+", re.UNICODE)
READ_CHUNK = 1024 * 1024


def sanitize_filename(raw: str | None) -> str:
    """Keep only the last path component, printable and without leading dots: no path traversal, no hidden files."""
    name = (raw or "").replace("\\", "/").split("/")[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip(" .")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:200]
    return name or "upload"


async def read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"{what} is larger than the limit of {limit:,} bytes (RAG_INGESTION__MAX_UPLOAD_BYTES)"
            )
        parts.append(chunk)
    return b"".join(parts)


def check_document(filename: str, data: bytes) -> str:
    """The document kind, or a 4xx error a person can act on."""
    from ingestion.parse import SUPPORTED_KINDS, detect_kind

    if not data:
        raise InvalidInput(f"{filename} is empty (0 bytes): there is nothing to index")
    kind = detect_kind(filename, data[:8192])
    if kind is None:
        raise UnsupportedMediaType(
            f"{filename} is not a supported document type. Supported: {', '.join(sorted(SUPPORTED_KINDS))}"
        )
    return kind

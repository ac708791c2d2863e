"""Checks on uploaded files before they are accepted: name, emptiness and type."""

from __future__ import annotations

import re
import unicodedata

from kernel.errors import InvalidInput, UnsupportedMediaType

_UNSAFE = re.compile(r"[^\w.\- ()+,@&=~]+", re.UNICODE)


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


def check_document(filename: str, head: bytes, size: int) -> str:
    """The document kind from the file's first bytes, or a 4xx error a person can act on."""
    from ingestion.parse import SUPPORTED_KINDS, detect_kind

    if not size:
        raise InvalidInput(f"{filename} is empty (0 bytes): there is nothing to index")
    kind = detect_kind(filename, head[:8192])
    if kind is None:
        raise UnsupportedMediaType(
            f"{filename} is not a supported document type. Supported: {', '.join(sorted(SUPPORTED_KINDS))}"
        )
    return kind

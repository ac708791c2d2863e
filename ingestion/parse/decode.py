"""Text documents arrive as bytes in whatever charset their author's tool used; the partitioners want text."""

from __future__ import annotations

import codecs
import re

# Longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DECLARED_CHARSET = re.compile(rb"""(?:charset|encoding)\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CHARSET_WINDOW = 4096


def decode_text(data: bytes) -> str:
    """Decode a text document: BOM, then UTF-8, then a declared charset, then Windows-1252."""
    for bom, codec in BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _DECLARED_CHARSET.search(data[:_CHARSET_WINDOW])
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            pass
    # Not UTF-8 and undeclared: in practice a Western Windows file. A few bytes are undefined in cp1252.
    return data.decode("cp1252", errors="replace")

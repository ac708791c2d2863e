"""The document kind from a file's name and first bytes: cheap, so it runs in the upload request."""

from __future__ import annotations

from pathlib import PurePath

from ingestion.parse.decode import BOMS

SUPPORTED_KINDS: frozenset[str] = frozenset(
    {"pdf", "docx", "pptx", "xlsx", "csv", "html", "md", "rst", "txt", "eml", "odt", "rtf", "epub", "json"}
)
# The most `detect_kind` ever looks at; callers may pass fewer bytes.
HEAD_BYTES = 8192

# kind -> (format label, what a real file of it is), for messages a person reads.
KIND_NAMES: dict[str, tuple[str, str]] = {
    "pdf": ("PDF", "PDF"),
    "docx": ("DOCX", "Word"),
    "pptx": ("PPTX", "PowerPoint"),
    "xlsx": ("XLSX", "Excel"),
    "csv": ("CSV", "CSV"),
    "html": ("HTML", "HTML"),
    "md": ("Markdown", "Markdown"),
    "rst": ("reStructuredText", "reStructuredText"),
    "txt": ("text", "text"),
    "eml": ("EML", "e-mail"),
    "odt": ("ODT", "OpenDocument text"),
    "rtf": ("RTF", "RTF"),
    "epub": ("EPUB", "EPUB"),
    "json": ("JSON", "JSON"),
}

_EXTENSION_KINDS: dict[str, str] = {kind: kind for kind in SUPPORTED_KINDS} | {
    "htm": "html",
    "markdown": "md",
    "text": "txt",
}
ZIP_KINDS = frozenset({"docx", "pptx", "xlsx", "odt", "epub"})
OOXML_KINDS = frozenset({"docx", "pptx", "xlsx"})
_TEXT_KINDS = frozenset({"csv", "html", "md", "rst", "txt", "eml", "json"})

_PDF_MAGIC = b"%PDF-"
# PDF readers accept the header anywhere in the first KiB, after junk some producers prepend.
_PDF_HEADER_WINDOW = 1024
_RTF_MAGIC = b"{\\rtf"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# OLE/CFB: legacy .doc/.xls/.ppt, and also the container every *encrypted* OOXML file is wrapped in.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# ODF and EPUB store an uncompressed "mimetype" entry first, so its content sits at a fixed offset.
_ZIP_MIMETYPE_NAME = slice(30, 38)
_ZIP_MIMETYPES = {
    b"application/epub+zip": "epub",
    b"application/vnd.oasis.opendocument.text": "odt",
}
# Audio, video, images, executables and archives that could otherwise slip through under a text extension.
_BINARY_MAGICS: tuple[bytes, ...] = (
    b"RIFF",  # WAV, AVI, WebP
    b"ID3",  # MP3 with a tag
    b"OggS",
    b"fLaC",
    b"\x1aE\xdf\xa3",  # Matroska, WebM
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"MZ",  # Windows executable
    b"\x7fELF",
    b"\x1f\x8b",  # gzip
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!",
    b"\x00asm",
)
_ISO_BMFF_TAG = slice(4, 8)  # MP4, M4A, MOV, HEIC: "ftyp" after the box size


def detect_kind(filename: str, head: bytes) -> str | None:
    """The document kind from the file name's extension and the first bytes, or None when unsupported.

    Magic numbers win over the extension for formats that carry one (PDF, RTF, ZIP, OLE); the extension
    picks among kinds sharing a container (DOCX/PPTX/XLSX) and among text formats. Binary content under
    a text extension, and audio, images, executables or archives under any name, give None. Pass at least
    the first `HEAD_BYTES` bytes (fewer for a shorter file). Needs no libmagic.
    """
    head = head[:HEAD_BYTES]
    claimed = _EXTENSION_KINDS.get(_extension(filename))
    if head.startswith(_PDF_MAGIC) or (claimed == "pdf" and _PDF_MAGIC in head[:_PDF_HEADER_WINDOW]):
        return "pdf"
    if head.startswith(_RTF_MAGIC):
        return "rtf"
    if head.startswith(ZIP_MAGICS):
        return claimed if claimed in ZIP_KINDS else _zip_kind_from_mimetype(head)
    if head.startswith(OLE_MAGIC):
        # Kept so parsing can say "password-protected" or "old .doc format" instead of "unsupported".
        return claimed if claimed in OOXML_KINDS else None
    if not head:
        return claimed
    if _looks_binary(head):
        return None
    if claimed in _TEXT_KINDS:
        return claimed
    # Text with no extension at all (README, LICENSE) is plain text; an unknown extension is not ours.
    return "txt" if claimed is None and not _extension(filename) else None


def _extension(filename: str) -> str:
    return PurePath(filename).suffix.lower().lstrip(".")


def _zip_kind_from_mimetype(head: bytes) -> str | None:
    if head[_ZIP_MIMETYPE_NAME] != b"mimetype":
        return None
    content = head[_ZIP_MIMETYPE_NAME.stop :]
    return next((kind for mime, kind in _ZIP_MIMETYPES.items() if content.startswith(mime)), None)


def _looks_binary(head: bytes) -> bool:
    if head.startswith(tuple(bom for bom, _ in BOMS)):
        return False
    if head.startswith(_BINARY_MAGICS) or head[_ISO_BMFF_TAG] == b"ftyp" or _is_mp3_frame(head):
        return True
    # No text encoding we accept without a BOM puts NUL bytes in a document.
    return b"\x00" in head


def _is_mp3_frame(head: bytes) -> bool:
    # An untagged MP3 starts with an 11-bit frame sync; checked after the BOMs, as FF FE is one too.
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0

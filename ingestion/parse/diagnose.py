"""Why a document cannot be ingested, said so that its owner can act: empty, password-protected, corrupt, textless.

Parsers report these cases badly or not at all (partition_pdf logs and swallows every failure and returns no
elements), so the checks here run before partitioning, or after it returned nothing.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
from typing import Final, NoReturn

from ingestion.parse.decode import decode_text
from ingestion.parse.detect import KIND_NAMES, OLE_MAGIC
from ingestion.parse.nlp import LANGUAGES
from kernel.errors import DocumentError

logger = logging.getLogger(__name__)

# Exceptions that say our install or code is broken, not the document: a job must not fail "for good" on them.
# Final keeps the exact tuple type: mypy cannot check an `except (*NOT_THE_DOCUMENTS_FAULT, ...)` without it.
NOT_THE_DOCUMENTS_FAULT: Final = (ImportError, NameError, SyntaxError, MemoryError)
_DETAIL_MAX_CHARS = 160
# Parsers name the in-memory stream and their temp files in errors: noise to the person reading the reason.
# lxml's own limits (it is used without XML_PARSE_HUGE), recognised by the words of its message.
_XML_LIMITS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("amplification", "entity reference loop", "Maximum entity"),
        "expands XML entities beyond any real document: an entity-expansion ('billion laughs') attack",
    ),
    (("Text node too long", "huge text node"), "holds a run of text longer than XML parsing allows (10 MB)"),
    (("Excessive depth",), "nests XML elements deeper than XML parsing allows (256 levels)"),
)
_DETAIL_NOISE = re.compile(rf"<[\w.]+ object at 0x[0-9a-fA-F]+>|{re.escape(tempfile.gettempdir())}/[^\s\"']+")


def reject_unreadable(kind: str, data: bytes, name: str) -> None:
    """Fail fast, with a precise reason, on what no parser could read."""
    if not data:
        raise DocumentError(f"{name} is empty (0 bytes): it contains no text to index")
    if not data.strip():
        raise DocumentError(f"{name} contains no text to index (only whitespace)")
    if kind == "pdf":
        _reject_locked_pdf(data, name)
    elif data.startswith(OLE_MAGIC):
        _reject_ole_container(kind, data, name)
    elif kind == "html":
        _reject_deep_html(data, name)


def corrupt(kind: str, name: str, exc: BaseException) -> DocumentError:
    label, real = KIND_NAMES[kind]
    if isinstance(exc, RecursionError):
        # A PDF whose cross-reference chain points back at itself, a tree nested thousands of levels deep.
        return DocumentError(
            f"{name} could not be read as {label}: its structure loops back on itself or is nested too deeply"
        )
    detail = " ".join(_DETAIL_NOISE.sub("the file", f"{type(exc).__name__}: {exc}").split())
    if len(detail) > _DETAIL_MAX_CHARS:
        detail = detail[: _DETAIL_MAX_CHARS - 1] + "…"
    return DocumentError(
        f"{name} could not be read as {label}: the file is corrupt or not a real {real} file ({detail})"
    )


def json_refusal(data: bytes, name: str, exc: BaseException) -> DocumentError:
    """unstructured reports every JSON it cannot load as "Not a valid json"; say whether it is broken or nested
    deeper than a parser follows (valid JSON of 50,000 nested arrays is an attack on the parser, not a document)."""
    try:
        json.loads(decode_text(data))
    except RecursionError:
        return DocumentError(
            f"{name} is JSON nested too deeply to read (more than about 1,000 levels); it was not parsed"
        )
    except ValueError as detail:
        return corrupt("json", name, detail)
    return corrupt("json", name, exc)


def xml_refusal(kind: str, name: str, exc: BaseException) -> DocumentError | None:
    """The reason for an lxml error, None for any other exception.

    lxml's errors are SyntaxErrors, which would otherwise read as a fault of our own code ("internal error").
    """
    if type(exc).__module__ != "lxml.etree":
        return None
    message = str(exc)
    for needles, reason in _XML_LIMITS:
        if any(needle in message for needle in needles):
            return DocumentError(f"{name} {reason}; it was not parsed")
    return corrupt(kind, name, exc)


def raise_no_text(kind: str, data: bytes, name: str) -> NoReturn:
    """The reason for a document that parsed without error into no text at all."""
    if kind == "pdf":
        _raise_textless_pdf(data, name)
    raise DocumentError(f"{name} contains no text to index")


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


def _reject_deep_html(data: bytes, name: str) -> None:
    """lxml reads HTML only 256 elements deep and drops what is below without a word; such nesting is an attack on
    parsers (or a generator gone wrong), and indexing the part above it would hide that the rest was lost."""
    from lxml import etree

    parser = etree.HTMLParser(collect_ids=False)
    try:
        etree.fromstring(decode_text(data), parser)
    except Exception:
        return  # the partitioner reports a broken file better
    if any("Excessive depth" in error.message for error in parser.error_log):
        raise DocumentError(
            f"{name} nests HTML elements deeper than they can be read (256 levels): what lies below would be lost; "
            "it was not parsed"
        )


def _reject_ole_container(kind: str, data: bytes, name: str) -> None:
    import msoffcrypto

    try:
        encrypted = msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
    except Exception as exc:
        raise corrupt(kind, name, exc) from exc
    if encrypted:
        raise DocumentError(
            f"{name} is password-protected (encrypted Office file): remove the password and upload it again"
        )
    raise DocumentError(
        f"{name} is in the old binary Office format (.doc/.xls/.ppt) despite its name: "
        f"save it as .{kind} and upload it again"
    )


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
        extractable_elements(file=io.BytesIO(data), languages=list(LANGUAGES))
    except (*NOT_THE_DOCUMENTS_FAULT, DocumentError):
        raise
    except PDFPasswordIncorrect as exc:
        raise _password_protected(name) from exc
    except PDFEncryptionError as exc:
        raise DocumentError(
            f"{name} is encrypted in a way that cannot be opened ({exc}): remove the encryption and upload it again"
        ) from exc
    except Exception as exc:
        raise corrupt("pdf", name, exc) from exc
    raise DocumentError(
        f"{name} contains no text to index: it has no text layer (a scanned or image-only PDF?) and OCR is "
        "not supported; upload a version with selectable text"
    )

"""Turn an uploaded document's bytes into clean text elements with `unstructured`, entirely offline.

One module a step: `detect` the kind from the name and first bytes (cheap: it also runs in the upload
request), `diagnose` what no parser could read, `partition` through one table of unstructured partitioners
(`decode` gives text formats their charset), `clean` every element's text once; `nlp` keeps unstructured
offline and supplies a word list. Everything from `unstructured` is imported lazily: importing it costs
seconds (it pulls in spaCy, torch and pdfminer) and it must not be imported before telemetry is switched off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from ingestion.parse.archive import check_archive
from ingestion.parse.clean import clean_texts
from ingestion.parse.detect import HEAD_BYTES, SUPPORTED_KINDS, ZIP_KINDS, detect_kind
from ingestion.parse.diagnose import raise_no_text, reject_unreadable
from ingestion.parse.limits import ParseLimits
from ingestion.parse.nlp import english_words, ensure_offline_nlp
from ingestion.parse.partition import partition
from kernel.errors import DocumentError

# Re-exported: one element type for the whole pipeline, shared with JSONL imports and the chunker.
from kernel.types import ParsedElement

if TYPE_CHECKING:
    from unstructured.documents.elements import Element

__all__ = [
    "HEAD_BYTES",
    "SUPPORTED_KINDS",
    "ParseLimits",
    "ParsedElement",
    "detect_kind",
    "ensure_offline_nlp",
    "parse_document",
]


def parse_document(data: bytes, filename: str, limits: ParseLimits | None = None) -> list[ParsedElement]:
    """Parse a whole document into elements with non-blank text, in reading order.

    Blocking, and unbounded in time for a hostile file: the worker runs it in a parser process it can kill
    (`ingestion.parse.sandbox`). `section` is the text of the nearest Title at or before the element (a Title
    opens its own section). Raises DocumentError, with a message a person can act on, for a document that can
    never be ingested as it is: unsupported, empty, password-protected, corrupt, a zip bomb, beyond `limits`,
    or without any text. Errors of our own installation (a missing package) propagate unchanged.
    """
    limits = limits or ParseLimits()
    ensure_offline_nlp()
    name = PurePath(filename).name or filename
    kind = detect_kind(filename, data[:HEAD_BYTES])
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED_KINDS))
        raise DocumentError(f"{name} is not a supported document type. Supported: {supported}")
    reject_unreadable(kind, data, name)
    if kind in ZIP_KINDS:
        check_archive(kind, data, name, limits)
    raw = partition(kind, data, name)
    # Before cleaning, which costs time in proportion to the text.
    chars = sum(len(element.text or "") for element in raw)
    if chars > limits.max_chars:
        raise DocumentError(
            f"{name} has {chars:,} characters of text; the limit is {limits.max_chars:,} per document "
            "(RAG_INGESTION__MAX_DOCUMENT_CHARS): split it into smaller documents"
        )
    elements = _to_parsed(raw)
    if not elements:
        raise_no_text(kind, data, name)
    return elements


def _to_parsed(elements: Sequence[Element]) -> list[ParsedElement]:
    texts = clean_texts([(element.category, element.text or "") for element in elements], english_words())
    parsed: list[ParsedElement] = []
    section: str | None = None
    for element, text in zip(elements, texts, strict=True):
        if not text:
            continue
        if element.category == "Title":
            section = text
        page = element.metadata.page_number
        parsed.append(ParsedElement(text=text, type=element.category, page=page, section=section))
    return parsed

"""One table from document kind to unstructured partitioner and options, and the one function that applies it."""

from __future__ import annotations

import importlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ingestion.parse.decode import decode_text
from ingestion.parse.diagnose import NOT_THE_DOCUMENTS_FAULT, corrupt, json_refusal, xml_refusal
from ingestion.parse.nlp import LANGUAGES
from kernel.errors import DocumentError

if TYPE_CHECKING:
    from unstructured.documents.elements import Element


class Source(Enum):
    """How a partitioner is given the document."""

    BYTES = "bytes"  # the bytes as uploaded: the format carries its own encoding (binary, MIME parts, RTF)
    TEXT = "text"  # decoded to str by decode_text: the partitioner would guess the charset worse
    UTF8_FILE = "utf8"  # decoded, then re-encoded as UTF-8 bytes: the partitioner reads UTF-8 files only


@dataclass(frozen=True)
class Partitioner:
    function: str  # "module:function", imported when used: importing unstructured costs seconds
    source: Source = Source.BYTES
    options: Mapping[str, Any] = field(default_factory=dict)
    needs_pandoc: bool = False  # shells out to the pandoc binary shipped by pypandoc-binary


# Page breaks would become elements of their own; table structure inference needs a layout model.
_NO_EXTRAS = {"infer_table_structure": False, "include_page_breaks": False}

PARTITIONERS: dict[str, Partitioner] = {
    # "fast" is pdfminer's text layer alone: no OCR, no layout model, nothing to download.
    "pdf": Partitioner("unstructured.partition.pdf:partition_pdf", options={**_NO_EXTRAS, "strategy": "fast"}),
    "docx": Partitioner("unstructured.partition.docx:partition_docx", options=_NO_EXTRAS),
    # Speaker notes are often where a deck's actual explanations are.
    "pptx": Partitioner(
        "unstructured.partition.pptx:partition_pptx", options={**_NO_EXTRAS, "include_slide_notes": True}
    ),
    "xlsx": Partitioner("unstructured.partition.xlsx:partition_xlsx", options={"infer_table_structure": False}),
    "csv": Partitioner(
        "unstructured.partition.csv:partition_csv",
        Source.UTF8_FILE,
        {"encoding": "utf-8", "infer_table_structure": False},
    ),
    "html": Partitioner("unstructured.partition.html:partition_html", Source.TEXT),
    "md": Partitioner("unstructured.partition.md:partition_md", Source.TEXT),
    "rst": Partitioner("unstructured.partition.rst:partition_rst", Source.UTF8_FILE, needs_pandoc=True),
    "txt": Partitioner("unstructured.partition.text:partition_text", Source.TEXT),
    # Attachments would go through unstructured's auto-detection and default (OCR/model) strategies.
    "eml": Partitioner("unstructured.partition.email:partition_email", options={"process_attachments": False}),
    "odt": Partitioner(
        "unstructured.partition.odt:partition_odt", options={"infer_table_structure": False}, needs_pandoc=True
    ),
    "rtf": Partitioner("unstructured.partition.rtf:partition_rtf", needs_pandoc=True),
    "epub": Partitioner("unstructured.partition.epub:partition_epub", needs_pandoc=True),
    # An array of serialised unstructured elements is rehydrated; any other JSON becomes pretty-printed text.
    "json": Partitioner("unstructured.partition.json:partition_json", Source.TEXT),
}


def partition(kind: str, data: bytes, name: str) -> list[Element]:
    """The document's elements, in reading order. A failure the document caused becomes a DocumentError."""
    partitioner = PARTITIONERS[kind]
    if partitioner.needs_pandoc:
        _require_pandoc()
    module, _, function = partitioner.function.partition(":")
    # Outside the try: a missing module is our install's fault, never the document's.
    partition_function = getattr(importlib.import_module(module), function)
    try:
        return partition_function(
            **_source(partitioner.source, data),
            **partitioner.options,
            metadata_filename=name,
            languages=list(LANGUAGES),
        )
    except DocumentError:
        raise
    except Exception as exc:
        refusal = xml_refusal(kind, name, exc)
        if refusal is not None:
            raise refusal from exc
        if isinstance(exc, NOT_THE_DOCUMENTS_FAULT):
            raise
        if kind == "json":
            raise json_refusal(data, name, exc) from exc
        raise corrupt(kind, name, exc) from exc


def _source(source: Source, data: bytes) -> dict[str, Any]:
    if source is Source.TEXT:
        return {"text": decode_text(data)}
    if source is Source.UTF8_FILE:
        return {"file": io.BytesIO(decode_text(data).encode("utf-8"))}
    return {"file": io.BytesIO(data)}


def _require_pandoc() -> None:
    # pypandoc reports a missing pandoc as OSError, which would otherwise read as a corrupt document.
    import pypandoc

    pypandoc.get_pandoc_path()

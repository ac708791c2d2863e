"""JSONL imports: text that is already extracted, one record per line, read as a stream on both sides.

The API checks an import line by line as its bytes arrive (`JsonlScan`) and keeps only what registering needs
(id, content hash, size, metadata), never the text; the job reads the stored body line by line again
(`read_records`) and parses only the records it indexes. Lines are what `str.splitlines` makes of the text, as
they always were, so record numbers in stored imports keep their meaning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kernel.errors import InvalidInput
from kernel.text import lone_surrogate
from kernel.types import ImportRecord, ParsedElement

_BOM = "\ufeff"
# Metadata and JSON escapes on top of the text: a line may be this much longer than its characters.
_LINE_OVERHEAD_BYTES = 1024 * 1024
_BYTES_PER_CHAR = 6  # "\u00e9" in JSON


@dataclass(frozen=True)
class ScannedRecord:
    """A checked record as registering needs it: its text only as a hash and a size."""

    index: int
    id: str
    sha256: str
    size: int
    metadata: dict[str, Any]


class JsonlScan:
    """Checks an import piece by piece; blocking (JSON and hashing), so `feed` runs in a thread."""

    def __init__(self, max_chars: int, max_errors: int = 5) -> None:
        self.records: list[ScannedRecord] = []
        self._errors: list[str] = []
        self._max_errors = max_errors
        self._max_chars = max_chars
        self._max_line = max_chars * _BYTES_PER_CHAR + _LINE_OVERHEAD_BYTES
        self._seen: dict[str, int] = {}
        self._partial: list[bytes] = []
        self._partial_bytes = 0
        self._overlong = False
        self._lineno = 0
        self._first = True

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the body; InvalidInput once `max_errors` lines are bad."""
        while data:
            end = data.find(b"\n")
            if end < 0:
                self._hold(data)
                return
            self._hold(data[:end])
            data = data[end + 1 :]
            self._line_done()

    def finish(self) -> list[ScannedRecord]:
        """The records of a complete body; InvalidInput naming the first bad lines, or for an empty import."""
        if self._partial_bytes or self._overlong:
            self._line_done(terminated=False)
        self._raise_errors()
        if not self.records:
            raise InvalidInput(
                'the import is empty: send JSONL lines like {"id": "...", "title": "...", "text": "..."}'
            )
        return self.records

    def _hold(self, piece: bytes) -> None:
        if self._overlong:
            return
        if self._partial_bytes + len(piece) > self._max_line:
            # Not buffered any further: one line must not take the memory of a whole import.
            self._overlong, self._partial, self._partial_bytes = True, [], 0
            return
        if piece:
            self._partial.append(piece)
            self._partial_bytes += len(piece)

    def _line_done(self, terminated: bool = True) -> None:
        segment, overlong = b"".join(self._partial), self._overlong
        self._partial, self._partial_bytes, self._overlong = [], 0, False
        if overlong:
            self._lineno += 1
            self._error(
                f"line {self._lineno}: longer than {self._max_line:,} bytes; a record may hold "
                f"{self._max_chars:,} characters (RAG_INGESTION__MAX_DOCUMENT_CHARS)"
            )
            return
        try:
            text = segment.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"the import body is not UTF-8 text (line {self._lineno + 1}): {exc}") from None
        for line in logical_lines(text, self._first, terminated):
            self._lineno += 1
            if line.strip():
                self._check(line)
        self._first = False

    def _check(self, line: str) -> None:
        lineno = self._lineno
        try:
            value = json.loads(line)
            record = ImportRecord.model_validate(value)
        except json.JSONDecodeError as exc:
            return self._error(f"line {lineno}: not JSON ({exc.msg})")
        except RecursionError:
            return self._error(f"line {lineno}: nested too deeply")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            return self._error(f"line {lineno}: {where}: {first['msg']}")
        chars = len(record.title) + len(record.text)
        # JSON can escape half a surrogate pair; no tokenizer, database or response can carry it.
        if (found := lone_surrogate(value)) is not None:
            where = ".".join(str(p) for p in found[0]) or "record"
            self._error(f"line {lineno}: {where}: contains an unpaired UTF-16 surrogate ({found[1]}), not text")
        elif record.id in self._seen:
            self._error(f"line {lineno}: id {record.id!r} already used on line {self._seen[record.id]}")
        elif not (record.title.strip() or record.text.strip()):
            self._error(f"line {lineno}: record {record.id!r} has no text")
        elif chars > self._max_chars:
            self._error(
                f"line {lineno}: record {record.id!r} has {chars:,} characters; the limit is {self._max_chars:,} "
                "per document (RAG_INGESTION__MAX_DOCUMENT_CHARS): split it into several records"
            )
        else:
            self._seen[record.id] = lineno
            content = record_content(record)
            self.records.append(
                ScannedRecord(
                    len(self.records), record.id, hashlib.sha256(content).hexdigest(), len(content), record.metadata
                )
            )
        return None

    def _error(self, message: str) -> None:
        self._errors.append(message)
        if len(self._errors) >= self._max_errors:
            self._raise_errors()

    def _raise_errors(self) -> None:
        if self._errors:
            raise InvalidInput("the import has invalid records; nothing was imported:\n" + "\n".join(self._errors))


def logical_lines(segment: str, first: bool, terminated: bool) -> list[str]:
    """The lines `str.splitlines` makes of the whole body, for one piece of it that ends at a "\\n" (`terminated`)
    or at the end of the body."""
    if first and segment.startswith(_BOM):
        segment = segment[len(_BOM) :]
    lines = segment.splitlines()
    if terminated and (not segment or (segment[-1] != "\r" and segment[-1].splitlines() == [""])):
        # The "\n" ends a line of its own: after nothing, or after another line boundary ("\r\n" is one).
        lines.append("")
    return lines


def read_records(body: Iterable[bytes], wanted: Collection[int]) -> Iterator[tuple[int, ImportRecord]]:
    """The records numbered in `wanted`, in order, from a stored import read line by line (a binary file)."""
    index, first, remaining = -1, True, len(wanted)
    for segment in body:
        terminated = segment.endswith(b"\n")
        text = segment[:-1] if terminated else segment
        for line in logical_lines(text.decode("utf-8"), first, terminated):
            if not line.strip():
                continue
            index += 1
            if index in wanted:
                yield index, ImportRecord.model_validate(json.loads(line))
                remaining -= 1
                if not remaining:
                    return
        first = False


def record_elements(record: ImportRecord) -> list[ParsedElement]:
    title = record.title.strip() or None
    elements = []
    if title:
        elements.append(ParsedElement(text=title, type="Title", section=title))
    if record.text.strip():
        elements.append(ParsedElement(text=record.text, type="NarrativeText", section=title))
    return elements


def record_content(record: ImportRecord) -> bytes:
    """The bytes a record's version hash is computed over: what gets indexed, nothing else."""
    return json.dumps(
        {"title": record.title, "text": record.text, "metadata": record.metadata},
        sort_keys=True,
        ensure_ascii=False,
    ).encode()

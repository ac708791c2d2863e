"""A multipart upload read as it arrives: each file goes straight into a blob being written, checked on the way.

FastAPI's `UploadFile` parameters make Starlette read the whole form first (spooled to temporary files), and the
route then read each file into memory: ten 50 MB files held 500 MB at once. Here nothing of a file is held but
its first bytes (for the type check); a file over the size limit or of the wrong type stops the request as
soon as that is known, and every blob written so far is discarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from kernel.errors import InvalidInput, PayloadTooLarge
from rag.api.uploads import check_document, sanitize_filename
from rag.blobs import BlobStore, BlobWriter

if TYPE_CHECKING:
    # A TypedDict the library declares for type checkers only.
    from python_multipart.multipart import MultipartCallbacks

FILES_FIELD = "files"
TEXT_FIELDS = frozenset({"metadata", "ids"})
HEAD_BYTES = 8192
_MAX_FIELD_BYTES = 1024 * 1024
# Bytes gathered before one write in a thread: a write per network chunk (~64 kB) would cost more in hand-offs.
_WRITE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int
    max_files: int


@dataclass
class ReceivedFile:
    filename: str
    blob: BlobWriter
    head: bytearray = field(default_factory=bytearray)
    kind: str = ""
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0


@dataclass
class ReceivedForm:
    files: list[ReceivedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Blocking. Remove every blob this request wrote."""
        for received in self.files:
            received.blob.discard()


@dataclass
class _Part:
    name: str = ""
    filename: str = ""
    file: ReceivedFile | None = None
    skip: bool = False  # a part the route does not take: read past, kept nowhere
    text: bytearray = field(default_factory=bytearray)


class _Receiver:
    """python-multipart's callbacks (synchronous) record what arrived; `receive` acts on it between chunks."""

    def __init__(self, blobs: BlobStore, limits: UploadLimits) -> None:
        self.blobs, self.limits = blobs, limits
        self.form = ReceivedForm()
        self.part = _Part()
        self.header_name, self.header_value = b"", b""
        self.disposition = b""
        self.opened: list[_Part] = []  # file parts whose blob must be opened (in a thread)
        self.data: list[tuple[_Part, bytes]] = []
        self.ended: list[_Part] = []

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": lambda: self.ended.append(self.part),
            "on_header_field": lambda data, start, end: self._add_header(name=data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header(value=data[start:end]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.part, self.disposition = _Part(), b""

    def _add_header(self, name: bytes = b"", value: bytes = b"") -> None:
        self.header_name += name
        self.header_value += value

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if self.part.name == FILES_FIELD and b"filename" in options:
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
            self.opened.append(self.part)
        elif self.part.name not in TEXT_FIELDS:
            self.part.skip = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.skip:
            return
        if self.part.name == FILES_FIELD:
            self.data.append((self.part, data[start:end]))
            return
        self.part.text += data[start:end]
        if len(self.part.text) > _MAX_FIELD_BYTES:
            raise InvalidInput(f"form field {self.part.name!r} is larger than {_MAX_FIELD_BYTES:,} bytes")


async def receive_documents(request: Request, blobs: BlobStore, limits: UploadLimits) -> ReceivedForm:
    """Every file of the request written to a blob (not yet committed) and checked; the text fields.

    Raises the 4xx error of the first problem; the blobs written by then are discarded.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise InvalidInput(f"send the documents as multipart/form-data, one or more in the field {FILES_FIELD!r}")
    receiver = _Receiver(blobs, limits)
    parser = MultipartParser(options[b"boundary"], receiver.callbacks())
    try:
        async for chunk in _stream(request):
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise InvalidInput(f"the multipart body is malformed: {exc}") from None
            await _act(receiver)
        parser.finalize()
        await _act(receiver)
    except BaseException:
        await asyncio.to_thread(receiver.form.discard)
        raise
    if not receiver.form.files:
        raise InvalidInput(f"no documents: send one or more files in the multipart field {FILES_FIELD!r}")
    return receiver.form


async def _stream(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def _act(receiver: _Receiver) -> None:
    form, limits = receiver.form, receiver.limits
    for part in receiver.opened:
        if len(form.files) >= limits.max_files:
            raise InvalidInput(f"more than {limits.max_files} files in one request; the limit is {limits.max_files}")
        filename = sanitize_filename(part.filename)
        part.file = ReceivedFile(filename, await asyncio.to_thread(receiver.blobs.writer))
        form.files.append(part.file)
    receiver.opened.clear()
    for part, data in receiver.data:
        assert part.file is not None
        _take(part.file, data, limits)
        if part.file.pending_bytes >= _WRITE_BYTES:
            await _flush(part.file)
    receiver.data.clear()
    for part in receiver.ended:
        if part.file is not None:
            await _flush(part.file)
            # The type is known now: a request with one wrong file stops here, before the next file arrives.
            part.file.kind = check_document(part.file.filename, bytes(part.file.head), part.file.blob.size)
        elif not part.skip:
            form.fields[part.name] = part.text.decode("utf-8", "replace")
    receiver.ended.clear()


def _take(received: ReceivedFile, data: bytes, limits: UploadLimits) -> None:
    size = received.blob.size + received.pending_bytes + len(data)
    if size > limits.max_file_bytes:
        raise PayloadTooLarge(
            f"{received.filename} is larger than the limit of {limits.max_file_bytes:,} bytes "
            "(RAG_INGESTION__MAX_UPLOAD_BYTES)"
        )
    if len(received.head) < HEAD_BYTES:
        received.head += data[: HEAD_BYTES - len(received.head)]
    received.pending.append(data)
    received.pending_bytes += len(data)


async def _flush(received: ReceivedFile) -> None:
    if received.pending:
        data = b"".join(received.pending)
        received.pending, received.pending_bytes = [], 0
        await asyncio.to_thread(received.blob.write, data)

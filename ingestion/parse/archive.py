"""Zip-based documents (DOCX, XLSX, PPTX, ODT, EPUB) checked before any parser unpacks them.

The parsers unpack parts whole, in memory: a DOCX whose word/document.xml inflates to 200 MB took about a GB and
then failed inside lxml as an "internal error". So every part is inflated here first, as a stream, counting
what it really inflates to (not what the zip directory claims: pandoc, which reads ODT and EPUB, inflates a
part to its end whatever the directory says), and refused past `max_unpacked_bytes`. The same pass looks for
XML entity declarations: OOXML forbids a DTD, ODF and EPUB never need one, and an entity is how a "billion laughs"
part expands a few bytes into gigabytes (or an external entity reads a file of ours).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator

from ingestion.parse.detect import KIND_NAMES, ZIP_MAGICS
from ingestion.parse.diagnose import corrupt
from ingestion.parse.limits import ParseLimits
from kernel.errors import DocumentError

_READ = 1 << 20
# "<!ENTITY" as it appears in UTF-8 (and ASCII-compatible charsets) and in UTF-16 parts.
_ENTITY_MARKS = (b"<!ENTITY", "<!ENTITY".encode("utf-16-le"), "<!ENTITY".encode("utf-16-be"))
_MARK_OVERLAP = max(len(m) for m in _ENTITY_MARKS) - 1
_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 0xFFFF  # the record and the longest comment
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name and extra field lengths at offset 26
_STORED, _DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED


def check_archive(kind: str, data: bytes, name: str, limits: ParseLimits) -> None:
    """DocumentError unless the zip is within the limits and declares no XML entity. Reads in bounded memory."""
    if not data.startswith(ZIP_MAGICS):
        return  # an encrypted OOXML file is an OLE container: diagnose says so
    label = KIND_NAMES[kind][0]
    entries = _declared_entries(data)
    if entries is not None and entries > limits.max_archive_entries:
        raise _too_many_parts(name, label, entries, limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_archive_entries:
                raise _too_many_parts(name, label, len(infos), limits)
            claimed = sum(info.file_size for info in infos)
            if claimed > limits.max_unpacked_bytes:
                raise _bomb(name, label, f"its zip directory says {claimed:,} bytes", limits)
            unpacked = 0
            for info in infos:
                scan = _EntityScan()
                for piece in _inflate(archive, data, info):
                    unpacked += len(piece)
                    if unpacked > limits.max_unpacked_bytes:
                        raise _bomb(name, label, f"{info.filename} alone inflates past the limit", limits)
                    if scan.found(piece):
                        raise _entities(name, label, info.filename)
    except DocumentError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: a part encrypted with a zip password; NotImplementedError: an unknown compression method.
        raise corrupt(kind, name, exc) from exc


def _declared_entries(data: bytes) -> int | None:
    """The entry count of the end-of-central-directory record, read before zipfile builds an object per entry."""
    at = data.rfind(_EOCD, max(0, len(data) - _EOCD_SEARCH))
    if at < 0 or at + 22 > len(data):
        return None  # zipfile will say what is wrong
    (count,) = struct.unpack_from("<H", data, at + 10)
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR:
        (record,) = struct.unpack_from("<Q", data, locator + 8)
        if data[record : record + 4] == _ZIP64_EOCD and record + 40 <= len(data):
            (count,) = struct.unpack_from("<Q", data, record + 32)
    return count


def _inflate(archive: zipfile.ZipFile, data: bytes, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The part's bytes as the compressed stream really inflates, to its end, in pieces of at most _READ."""
    if info.compress_type not in (_STORED, _DEFLATED):
        # Rare (bzip2, LZMA): zipfile reads them, stopping at the size the directory declares.
        with archive.open(info) as member:
            while piece := member.read(_READ):
                yield piece
        return
    signature, name_len, extra_len = _LOCAL_HEADER.unpack_from(data, info.header_offset)
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"no local header for {info.filename}")
    start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    stream = memoryview(data)[start : start + info.compress_size]
    if info.compress_type == _STORED:
        for at in range(0, len(stream), _READ):
            yield bytes(stream[at : at + _READ])
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    at = 0
    while not inflater.eof:
        pending = inflater.unconsumed_tail
        if not pending:
            if at >= len(stream):
                return  # truncated: the parser will say so
            pending, at = stream[at : at + _READ], at + _READ
        piece = inflater.decompress(pending, _READ)
        if piece:
            yield piece


class _EntityScan:
    """Finds an entity declaration in a part read piece by piece, also across the boundary of two pieces."""

    def __init__(self) -> None:
        self._tail = b""

    def found(self, piece: bytes) -> bool:
        window = self._tail + piece[: _MARK_OVERLAP * 2]
        self._tail = piece[-_MARK_OVERLAP:]
        return any(mark in window or mark in piece for mark in _ENTITY_MARKS)


def _bomb(name: str, label: str, evidence: str, limits: ParseLimits) -> DocumentError:
    return DocumentError(
        f"{name} unpacks to more than {limits.max_unpacked_bytes:,} bytes ({evidence}), the limit for a {label} "
        "file (RAG_INGESTION__MAX_UNPACKED_BYTES): it is a zip bomb or far too large; split it into smaller files"
    )


def _too_many_parts(name: str, label: str, count: int, limits: ParseLimits) -> DocumentError:
    return DocumentError(
        f"{name} is a {label} file of {count:,} parts; no real document has more than "
        f"{limits.max_archive_entries:,}: it is malformed or a zip bomb"
    )


def _entities(name: str, label: str, part: str) -> DocumentError:
    return DocumentError(
        f"{name} declares XML entities in {part}, which a {label} file never needs: it is an entity-expansion "
        "('billion laughs') or external-entity attack, or was made by a broken tool; it was not parsed"
    )

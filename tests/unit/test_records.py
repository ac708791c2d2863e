"""JSONL imports read as streams: the checks as the body arrives, and the records a job reads back from the blob."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from ingestion.records import JsonlScan, read_records
from kernel.errors import InvalidInput

RECORDS: list[dict[str, Any]] = [
    {"id": "a", "title": "Alpha", "text": "First record."},
    {"id": "b", "text": "Second record, with a line separator\u2028inside it escaped.", "metadata": {"n": 1}},
    {"id": "c", "title": "Gamma", "text": "Third: déjà vu, 東京, emoji 🙂."},
]


def jsonl(records: list[dict], sep: str = "\n") -> bytes:
    # ensure_ascii: a raw U+2028 would split the line, as str.splitlines always did.
    return sep.join(json.dumps(r) for r in records).encode()


def scan(body: bytes, piece: int | None = None, max_chars: int = 1_000_000) -> JsonlScan:
    scanner = JsonlScan(max_chars)
    step = piece or len(body) or 1
    for at in range(0, len(body), step):
        scanner.feed(body[at : at + step])
    scanner.finish()
    return scanner


@pytest.mark.parametrize("piece", [None, 1, 7, 64])
def test_records_are_the_same_however_the_body_is_cut(piece: int | None) -> None:
    body = b"\xef\xbb\xbf" + jsonl(RECORDS, "\r\n") + b"\n\n"
    records = scan(body, piece).records
    assert [(r.index, r.id, r.metadata) for r in records] == [(0, "a", {}), (1, "b", {"n": 1}), (2, "c", {})]
    assert all(len(r.sha256) == 64 and r.size > 0 for r in records)
    assert scan(jsonl(RECORDS)).records == records


def test_blank_lines_count_in_the_line_numbers_of_errors() -> None:
    body = jsonl(RECORDS[:1]) + b"\n\n   \n" + b"not json\n" + b'{"title": "no id", "text": "x"}'
    with pytest.raises(InvalidInput) as caught:
        scan(body, 5)
    assert caught.value.message.splitlines()[1:] == ["line 4: not JSON (Expecting value)", "line 5: id: Field required"]


def test_a_record_over_the_character_limit_is_named() -> None:
    body = jsonl([{"id": "big", "text": "x" * 500}, *RECORDS[:1]])
    with pytest.raises(InvalidInput, match=r"line 1: record 'big' has 500 characters; the limit is 100 per document"):
        scan(body, 50, max_chars=100)


def test_a_line_too_long_to_hold_is_not_held() -> None:
    scanner = JsonlScan(max_chars=100)
    limit = scanner._max_line
    scanner.feed(b'{"id": "huge", "text": "' + b"y" * (limit + 10))
    assert scanner._partial_bytes == 0  # dropped, not buffered
    scanner.feed(b'"}\n' + jsonl(RECORDS[:1]))
    with pytest.raises(InvalidInput, match=r"line 1: longer than [\d,]+ bytes"):
        scanner.finish()


def test_the_error_count_stops_the_scan_early() -> None:
    scanner = JsonlScan(1000, max_errors=2)
    scanner.feed(b"bad\n")
    with pytest.raises(InvalidInput, match="line 2"):
        scanner.feed(b"worse\n" + jsonl(RECORDS))


def test_not_utf8_and_empty_imports() -> None:
    with pytest.raises(InvalidInput, match="not UTF-8"):
        scan(b"\xff\xfe\x00")
    with pytest.raises(InvalidInput, match="empty"):
        scan(b"\n \n")


def test_a_job_reads_back_only_the_records_it_indexes() -> None:
    body = b"\xef\xbb\xbf" + jsonl(RECORDS, "\r\n\n")
    found = list(read_records(io.BytesIO(body), {0, 2}))
    assert [(index, record.id, record.title) for index, record in found] == [(0, "a", "Alpha"), (2, "c", "Gamma")]
    assert [r.id for _, r in read_records(io.BytesIO(body), {1})] == ["b"]

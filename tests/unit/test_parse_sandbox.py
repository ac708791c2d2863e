"""The parser process: what only a process that can be killed bounds, and that parsing there changes nothing else.

A parse that never ends is stopped at the timeout, one that needs too much memory at the memory cap, a parser that
dies takes only itself down; after each, the next document parses in a fresh process.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from ingestion.parse import parse_document
from ingestion.parse.child import refuse_network
from ingestion.parse.sandbox import ParseSandbox
from kernel.errors import DocumentError
from kernel.settings import IngestionSettings
from tests.support import hostile


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[ParseSandbox, IngestionSettings]]:
    settings = IngestionSettings()
    box = ParseSandbox(settings)
    try:
        yield box, settings
    finally:
        await box.close()


async def parse(box: ParseSandbox, data: bytes, name: str) -> list[str]:
    return [e.text for e in await box.parse(io.BytesIO(data), name)]


async def refused(box: ParseSandbox, data: bytes, name: str) -> str:
    with pytest.raises(DocumentError) as caught:
        await box.parse(io.BytesIO(data), name)
    assert "internal error" not in caught.value.message
    return caught.value.message


def pid_of(box: ParseSandbox) -> int:
    process = box._process  # the test's window into which process serves
    assert process is not None
    return process.pid


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return open(f"/proc/{pid}/stat").read().split()[2] == "Z"


async def test_the_parser_process_reads_documents_as_parsing_in_process_does(sandbox) -> None:
    box, _ = sandbox
    for name in ("fake-memo.pdf", "fake.docx", "fake-html-cp1252.html"):
        data = hostile.sample(name)
        assert await box.parse(io.BytesIO(data), name) == parse_document(data, name)
    message = await refused(box, hostile.sample("password.pdf"), "password.pdf")
    assert message == "password.pdf is password-protected: remove the password and upload it again"


async def test_a_parse_that_never_ends_is_stopped_at_the_timeout(sandbox) -> None:
    box, settings = sandbox
    await parse(box, b"Warm the parser process up.", "warm.txt")
    first = pid_of(box)
    settings.parse_timeout_seconds = 5
    message = await refused(box, hostile.pdf_form_fanout(), "fanout.pdf")
    assert message.startswith("fanout.pdf took longer than 5 s to parse and was stopped")
    assert "RAG_INGESTION__PARSE_TIMEOUT_SECONDS" in message
    assert gone(first)
    settings.parse_timeout_seconds = 600
    assert await parse(box, hostile.simple_pdf(b"Parsed after the timeout"), "after.pdf") == [
        "Parsed after the timeout"
    ]


async def test_a_parser_that_dies_takes_only_itself_down(sandbox) -> None:
    box, _ = sandbox
    await parse(box, b"Warm the parser process up.", "warm.txt")
    first = pid_of(box)
    stuck = asyncio.create_task(parse(box, hostile.pdf_form_fanout(), "fanout.pdf"))
    await asyncio.sleep(0.5)  # lets the request go out; the outcome is the same if the crash comes first
    # What a C-level stack overflow in a parser looks like from outside.
    os.killpg(first, signal.SIGSEGV)
    with pytest.raises(DocumentError) as caught:
        await stuck
    assert caught.value.message.startswith("fanout.pdf made the parser crash (SIGSEGV)")
    assert await parse(box, b"Still parsing.", "next.txt") == ["Still parsing."]
    assert pid_of(box) != first


async def test_a_document_that_needs_too_much_memory_stops_at_the_cap(sandbox) -> None:
    box, settings = sandbox
    # A quarter of a million one-line paragraphs: each becomes an element with spaCy's view of it, about 0.9 GB
    # on top of the ~0.6 GB the parser process starts with.
    many = b"word word word.\n\n" * 250_000
    settings.parse_memory_mb = 1024
    message = await refused(box, many, "many.txt")
    assert message.startswith("many.txt ")
    assert "1,024 MB" in message and "RAG_INGESTION__PARSE_MEMORY_MB" in message
    settings.parse_memory_mb = 3072
    assert await parse(box, b"Parsed with more memory.", "after.txt") == ["Parsed with more memory."]


async def test_a_cancelled_parse_kills_its_process(sandbox) -> None:
    box, _ = sandbox
    await parse(box, b"Warm the parser process up.", "warm.txt")
    first = pid_of(box)
    stuck = asyncio.create_task(parse(box, hostile.pdf_form_fanout(), "fanout.pdf"))
    await asyncio.sleep(0.5)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert gone(first)
    assert await parse(box, b"A fresh process.", "next.txt") == ["A fresh process."]


@pytest.mark.parametrize(
    ("event", "args", "refused"),
    [
        ("socket.connect", (SimpleNamespace(family=socket.AF_INET), ("93.184.216.34", 80)), True),
        ("socket.getaddrinfo", ("example.com", 443, 0, 0, 0), True),
        ("socket.connect", (SimpleNamespace(family=socket.AF_INET), ("127.0.0.1", 6379)), False),
        ("socket.connect", (SimpleNamespace(family=socket.AF_UNIX), "/tmp/valkey.sock"), False),
        ("socket.getaddrinfo", ("localhost", 80, 0, 0, 0), False),
        ("open", ("/etc/hostname", "r", 0), False),
    ],
)
def test_the_parser_process_refuses_the_network(event: str, args: tuple, refused: bool) -> None:
    if refused:
        with pytest.raises(PermissionError, match="does not reach the network"):
            refuse_network(event, args)
    else:
        refuse_network(event, args)

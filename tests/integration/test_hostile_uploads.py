"""Malicious files sent to the real service fail with a reason, not "internal error", and the service stays healthy.

Each file is built here (see tests/support/hostile.py). Parsing happens in the worker's parser process, with its
timeout and memory cap; after all of them, /healthz answers 200 and an ordinary document still ingests.
"""

from __future__ import annotations

import pytest

from tests.support import hostile
from tests.support.polling import wait_job

MB = 1024 * 1024


async def failed_with(client, collection: str, name: str, data: bytes) -> str:
    resp = await client.post(f"/v1/collections/{collection}/documents", files={"files": (name, data)})
    assert resp.status_code == 202, resp.text
    job = await wait_job(client, resp.json()[0]["job_id"])
    assert job["status"] == "failed", job
    assert "internal error" not in job["error"], job["error"]
    assert job["error"].startswith(name), job["error"]
    return job["error"]


@pytest.mark.parametrize(
    ("name", "build", "reason"),
    [
        # Found by attacking the service: both were "internal error (XMLSyntaxError: ...)".
        ("inflates.docx", lambda: hostile.zip_bomb("docx", 200 * MB), "unpacks to more than 104,857,600 bytes"),
        ("laughs.docx", lambda: hostile.billion_laughs("docx"), "declares XML entities"),
        ("bomb.xlsx", lambda: hostile.zip_bomb("xlsx", 120 * MB), "zip bomb"),
        ("bomb.pptx", lambda: hostile.zip_bomb("pptx", 120 * MB), "zip bomb"),
        ("bomb.epub", lambda: hostile.zip_bomb("epub", 120 * MB), "zip bomb"),
        ("laughs.odt", lambda: hostile.billion_laughs("odt"), "billion laughs"),
        ("deep.docx", hostile.deep_docx, "nests XML elements deeper"),
        ("deep.json", hostile.deep_json, "JSON nested too deeply"),
        ("deep.html", hostile.deep_html, "nests HTML elements deeper"),
        ("loop.pdf", hostile.pdf_xref_loop, "loops back on itself"),
        ("cut.pdf", lambda: hostile.simple_pdf()[:300], "could not be read as PDF"),
    ],
)
async def test_hostile_documents_fail_with_their_reason(client, collection, name, build, reason) -> None:
    assert reason in await failed_with(client, collection, name, build())


async def test_a_huge_single_line_fails_on_the_character_limit(client, collection) -> None:
    # Found by attacking the service: a 20 MB one-line text file was accepted, became ~24,000 chunks and took 90
    # minutes of embedding at 5 GB. Anything over the limit fails now, with the limit named.
    message = await failed_with(client, collection, "one-line.txt", hostile.one_line(6_000_000))
    assert "has 5,999,999 characters of text; the limit is 5,000,000 per document" in message  # the last is a space
    assert "RAG_INGESTION__MAX_DOCUMENT_CHARS" in message


async def test_a_document_over_the_chunk_limit_fails(client, collection, services, monkeypatch) -> None:
    monkeypatch.setattr(services.settings.ingestion, "max_document_chunks", 3)
    text = "\n\n".join(f"Section {i}. " + "A sentence about nothing in particular. " * 40 for i in range(8))
    message = await failed_with(client, collection, "many-chunks.txt", text.encode())
    assert "chunks; the limit is 3 per document (RAG_INGESTION__MAX_DOCUMENT_CHUNKS)" in message


async def test_a_parse_that_never_ends_is_stopped(client, collection, services, monkeypatch) -> None:
    monkeypatch.setattr(services.settings.ingestion, "parse_timeout_seconds", 10)
    message = await failed_with(client, collection, "fanout.pdf", hostile.pdf_form_fanout())
    assert "took longer than 10 s to parse and was stopped" in message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bomb.txt", hostile.zip_bomb("docx", MB)),
        ("report.pdf", hostile.sample("fake.docx")),
        ("sheet.xlsx", b"<html><body>not a spreadsheet</body></html>"),
        ("notes.md", b"MZ\x90\x00" + bytes(200)),
    ],
)
async def test_wrong_extensions_are_refused_at_upload(client, collection, name, data) -> None:
    resp = await client.post(f"/v1/collections/{collection}/documents", files={"files": (name, data)})
    assert resp.status_code == 415, resp.text
    assert resp.json()["error"].startswith(f"{name} is not a supported document type")


async def test_the_service_is_healthy_and_ingests_afterwards(client, collection) -> None:
    assert (await client.get("/healthz")).status_code == 200
    resp = await client.post(
        f"/v1/collections/{collection}/documents",
        files={"files": ("fine.md", b"# Fine\n\nAn ordinary document about lighthouses and their keepers.")},
    )
    job = await wait_job(client, resp.json()[0]["job_id"])
    assert job["status"] == "succeeded", job
    found = await client.post("/v1/search", json={"query": "lighthouse keepers", "collections": [collection]})
    assert "lighthouses" in found.json()["hits"][0]["text"]

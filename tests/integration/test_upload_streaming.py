"""Uploads and imports are written to the blob store as they arrive, and a rejected request leaves nothing behind.

The bodies here are async generators that count what the service has read: a file over the limit must stop the
request where the limit is passed, not after the whole body has been taken in (before, the form was read whole
and then each file into memory). What the blob store holds is compared file by file, partial files included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.polling import wait_job

MB = 1024 * 1024
BOUNDARY = "streaming-test-boundary"


def stored(services) -> list[Path]:
    root = services.settings.blob_dir
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


class CountingBody:
    """A multipart body of one file of `megabytes` MB, produced a megabyte at a time as the service reads it."""

    def __init__(self, filename: str, megabytes: int) -> None:
        self.filename, self.megabytes, self.sent = filename, megabytes, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{self.filename}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        for _ in range(self.megabytes):
            self.sent += 1
            yield b"words and more words\n" * (MB // 21)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_a_file_over_the_limit_stops_the_request_where_the_limit_is_passed(
    client, services, collection, monkeypatch
) -> None:
    monkeypatch.setattr(services.settings.ingestion, "max_upload_bytes", 3 * MB)
    before = stored(services)
    body = CountingBody("huge.txt", 200)
    resp = await client.post(
        f"/v1/collections/{collection}/documents",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert resp.status_code == 413, resp.text
    assert "huge.txt is larger than the limit of 3,145,728 bytes" in resp.json()["error"]
    assert body.sent <= 5, f"the service read {body.sent} MB of a request it refused at 3 MB"
    assert stored(services) == before


async def test_a_streamed_upload_is_stored_whole(client, services, collection) -> None:
    body = CountingBody("streamed.txt", 3)
    resp = await client.post(
        f"/v1/collections/{collection}/documents",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert resp.status_code == 202, resp.text
    detail = (await client.get(f"/v1/documents/{resp.json()[0]['document_id']}")).json()
    version = detail["versions"][0]
    assert version["size_bytes"] == 3 * (MB // 21) * 21
    blob = services.settings.blob_dir / version["sha256"][:2] / version["sha256"]
    assert blob.stat().st_size == version["size_bytes"]
    # Not indexed here (that is what the other tests do): deleting it cancels its job.
    assert (await client.delete(f"/v1/documents/{resp.json()[0]['document_id']}")).status_code == 204
    assert (await wait_job(client, resp.json()[0]["job_id"]))["status"] in ("cancelled", "failed")


@pytest.mark.parametrize(
    ("files", "form", "status", "needle"),
    [
        ([("good.txt", b"fine text " * 100), ("big.txt", b"x " * 600_000)], {}, 413, "big.txt is larger"),
        ([("good.txt", b"fine text"), ("song.txt", b"RIFF\x00\x00\x00\x00WAVEfmt ")], {}, 415, "song.txt"),
        ([("a.txt", b"alpha"), ("b.txt", b"beta")], {"metadata": "{oops"}, 422, "metadata"),
        ([("a.txt", b"alpha"), ("a.txt", b"again")], {}, 422, "same name or id"),
        ([("a.txt", b"alpha"), ("empty.txt", b"")], {}, 422, "empty.txt is empty"),
    ],
)
async def test_a_rejected_upload_leaves_no_blob_or_partial_file(
    client, services, collection, monkeypatch, files, form, status, needle
) -> None:
    monkeypatch.setattr(services.settings.ingestion, "max_upload_bytes", 1_000_000)
    before = stored(services)
    resp = await client.post(f"/v1/collections/{collection}/documents", files=[("files", f) for f in files], data=form)
    assert resp.status_code == status, resp.text
    assert needle in resp.json()["error"]
    assert stored(services) == before
    assert (await client.get(f"/v1/collections/{collection}/documents")).json() == []


async def test_a_rejected_import_leaves_no_blob_or_partial_file(client, services, collection, monkeypatch) -> None:
    url = f"/v1/collections/{collection}/documents/import"
    before = stored(services)
    good = "\n".join(json.dumps({"id": f"r{i}", "text": f"Record number {i}."}) for i in range(100))
    resp = await client.post(url, content=good + "\nnot json at the very end\n")
    assert resp.status_code == 422 and "line 101" in resp.json()["error"], resp.text
    monkeypatch.setattr(services.settings.ingestion, "max_import_bytes", 1000)
    assert (await client.post(url, content=good)).status_code == 413
    assert stored(services) == before


async def test_an_import_that_changes_nothing_keeps_no_blob(client, services, collection) -> None:
    url = f"/v1/collections/{collection}/documents/import"
    records = [{"id": f"r{i}", "text": f"Record number {i} about tides."} for i in range(3)]
    first = await client.post(url, content="\n".join(json.dumps(r) for r in records))
    assert (await wait_job(client, first.json()["job_id"]))["status"] == "succeeded"
    after_first = stored(services)
    # The same records in another order: another body, no new version, so no blob to keep.
    again = await client.post(url, content="\n".join(json.dumps(r) for r in reversed(records)))
    assert again.json()["status"] == "unchanged", again.text
    assert stored(services) == after_first

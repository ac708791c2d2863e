"""Bad input gets a 4xx with a message a person can act on, changes nothing, and the service stays healthy."""

from __future__ import annotations

import pytest

from tests.conftest import DOCS
from tests.support.polling import wait_job
from tests.support.service import create_collection


async def assert_error(resp, status: int, *needles: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body["error"], str) and body["error"]
    for needle in needles:
        assert needle in body["error"], body["error"]


@pytest.fixture(autouse=True)
async def healthy_afterwards(client):
    yield
    assert (await client.get("/healthz")).status_code == 200


async def test_collection_errors(client, collection):
    await assert_error(await client.post("/v1/collections", json={"name": collection}), 409, "already exists")
    await assert_error(await client.post("/v1/collections", json={"name": "Bad Name!"}), 422, "name")
    await assert_error(await client.post("/v1/collections", content=b"{not json"), 422, "invalid request")
    await assert_error(await client.get("/v1/collections/nope"), 404, "'nope' does not exist")
    await assert_error(await client.delete("/v1/collections/nope"), 404, "does not exist")
    await assert_error(
        await client.post("/v1/collections/nope/documents", files={"files": ("a.txt", b"hello")}), 404, "nope"
    )


async def test_upload_rejections(client, collection):
    url = f"/v1/collections/{collection}/documents"
    wav = (DOCS / "CantinaBand3.wav").read_bytes()
    await assert_error(await client.post(url, files={"files": ("song.wav", wav)}), 415, "song.wav", "Supported")
    # Renaming audio does not make it a document.
    await assert_error(await client.post(url, files={"files": ("song.txt", wav)}), 415, "song.txt")
    await assert_error(await client.post(url, files={"files": ("empty.txt", b"")}), 422, "empty.txt is empty")
    await assert_error(await client.post(url), 422, "files")
    # A request with one bad file stores nothing.
    mixed = [("files", ("good.txt", b"fine text")), ("files", ("bad.wav", wav))]
    await assert_error(await client.post(url, files=mixed), 415, "bad.wav")
    assert (await client.get(url)).json() == []
    await assert_error(
        await client.post(url, files={"files": ("a.txt", b"alpha")}, data={"metadata": "{oops"}), 422, "metadata"
    )
    await assert_error(
        await client.post(
            url,
            files=[("files", ("a.txt", b"alpha")), ("files", ("b.txt", b"beta"))],
            data={"metadata": '{"other.txt": {}}'},
        ),
        422,
        "other.txt",
    )


async def test_size_and_count_limits(own_service):
    # Limits small enough to reach with a few bytes: a service of its own, the session's keeps the defaults.
    limits = {"max_upload_bytes": 100, "max_files_per_request": 1, "max_import_bytes": 10}
    svc = await own_service({"ingestion": limits})
    client = svc.client
    url = f"/v1/collections/{await create_collection(client, 'limits')}/documents"
    await assert_error(await client.post(url, files={"files": ("big.txt", b"x " * 200)}), 413, "big.txt", "100")
    two = [("files", ("a.txt", b"alpha")), ("files", ("b.txt", b"beta"))]
    await assert_error(await client.post(url, files=two), 422, "limit is 1")
    await assert_error(await client.post(url + "/import", content=b'{"id": "a", "text": "long enough"}'), 413, "larger")
    assert (await client.get(url)).json() == []
    # Within the limits the same service takes the upload: the limits, not something else, refused the others.
    small = await client.post(url, files={"files": ("small.txt", b"A short note.")})
    assert small.status_code == 202, small.text
    assert (await client.get("/healthz")).status_code == 200


async def test_filenames_are_sanitised(client, collection):
    url = f"/v1/collections/{collection}/documents"
    resp = await client.post(url, files={"files": ("../../etc/evil.txt", b"Traversal attempt text.")})
    assert resp.status_code == 202, resp.text
    assert resp.json()[0]["filename"] == "evil.txt"


async def test_import_rejections(client, collection):
    url = f"/v1/collections/{collection}/documents/import"
    await assert_error(await client.post(url, content=b""), 422, "empty")
    await assert_error(await client.post(url, content=b'{"id": "a", "text": "x"}\nnot json\n'), 422, "line 2")
    await assert_error(await client.post(url, content=b'{"title": "no id", "text": "x"}'), 422, "line 1", "id")
    dup = b'{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}'
    await assert_error(await client.post(url, content=dup), 422, "already used on line 1")
    await assert_error(await client.post(url, content=b'{"id": "a", "text": "  "}'), 422, "no text")
    await assert_error(await client.post(url, content=b"\xff\xfe\x00"), 422, "UTF-8")
    assert (await client.get(f"/v1/collections/{collection}/documents")).json() == []


async def test_unknown_ids(client):
    await assert_error(await client.get("/v1/jobs/nope"), 404, "job 'nope'")
    await assert_error(await client.get("/v1/documents/nope"), 404, "document 'nope'")
    await assert_error(await client.delete("/v1/documents/nope"), 404)
    await assert_error(await client.get("/v1/nothing-here"), 404)


async def test_rollback_without_history_is_a_conflict(client, collection):
    resp = await client.post(
        f"/v1/collections/{collection}/documents", files={"files": ("one.txt", b"Only one version.")}
    )
    res = resp.json()[0]
    assert (await wait_job(client, res["job_id"]))["status"] == "succeeded"  # one indexed version, none before it
    await assert_error(await client.post(f"/v1/documents/{res['document_id']}/rollback"), 409, "no earlier version")


async def test_delete_collection_removes_everything(client, services, collection):
    from kernel.types import ChunkSelector

    resp = await client.post(
        f"/v1/collections/{collection}/documents", files={"files": ("x.md", b"# X\n\nSome words to index.")}
    )
    await wait_job(client, resp.json()[0]["job_id"])
    assert await services.store.count(ChunkSelector(collection=collection)) > 0
    assert (await client.delete(f"/v1/collections/{collection}")).status_code == 204
    assert await services.store.count(ChunkSelector(collection=collection)) == 0
    assert (await client.get(f"/v1/collections/{collection}")).status_code == 404


async def test_hostile_json_is_a_422(client, collection):
    url = f"/v1/collections/{collection}/documents"
    deep = "[" * 100_000 + "]" * 100_000
    await assert_error(await client.post(url + "/import", content=deep.encode()), 422, "line 1")
    await assert_error(
        await client.post(url, files={"files": ("a.txt", b"alpha")}, data={"metadata": deep}), 422, "metadata"
    )
    await assert_error(await client.post(url + "/import", content=b'{"id": "a\\u0000b", "text": "x"}'), 422, "id")
    await assert_error(
        await client.post(url, files={"files": ("a.txt", b"alpha")}, data={"ids": '["bad\\u0001id"]'}), 422, "printable"
    )


async def test_reuploading_after_delete_and_after_failure(client, collection):
    url = f"/v1/collections/{collection}/documents"
    first = (await client.post(url, files={"files": ("again.txt", b"Same bytes twice.")})).json()[0]
    assert (await wait_job(client, first["job_id"]))["status"] == "succeeded"
    assert (await client.delete(f"/v1/documents/{first['document_id']}")).status_code == 204
    second = await client.post(url, files={"files": ("again.txt", b"Same bytes twice.")})
    assert second.status_code == 202, second.text
    assert second.json()[0]["job_id"] != first["job_id"]
    assert (await wait_job(client, second.json()[0]["job_id"]))["status"] == "succeeded"
    # A failed version is retried by uploading the same bytes again (a new version), not reported unchanged.
    ws = (await client.post(url, files={"files": ("blank.txt", b"   \n ")})).json()[0]
    assert (await wait_job(client, ws["job_id"]))["status"] == "failed"
    retry = (await client.post(url, files={"files": ("blank.txt", b"   \n ")})).json()[0]
    assert retry["status"] == "queued" and retry["version"] == 2

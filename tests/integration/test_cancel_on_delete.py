"""Deleting a document or a collection cancels its jobs, queued or running, and nothing of it is written afterwards.

Found by attacking the service: a 20 MB one-line text file kept embedding for 90 minutes after both its document
and its collection had been deleted (204 each). The real service, worker, model and store run here; the embedder
is the real one made to wait at one call, so the test knows the job is mid-embedding when it deletes, and the
store is the real one with a record of what was written after the delete.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from kernel.types import ChunkSelector
from tests.support import hostile
from tests.support.polling import wait_job

# Forty paragraphs of about 200 tokens: some forty chunks, ten embedding groups of four.
TEXT = "\n\n".join(f"Paragraph {i}. " + "The quick brown fox jumps over the lazy dog. " * 20 for i in range(40))
GROUP = 4


class GatedEmbedder:
    """The real embedder; its `pause_at`-th call waits until the test releases it."""

    def __init__(self, real: Any, pause_at: int) -> None:
        self.real, self.pause_at, self.calls = real, pause_at, 0
        self.reached, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls == self.pause_at:
            self.reached.set()
            self.release.wait(600)
        return self.real.embed_documents(texts)


class RecordingStore:
    """The real store; remembers which documents were written after `deleted` was set."""

    def __init__(self, real: Any) -> None:
        self.real, self.deleted, self.upserts = real, False, 0
        self.late: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def upsert(self, records: list[Any]) -> None:
        self.upserts += 1
        if self.deleted:
            self.late.extend(r.payload["document_id"] for r in records)
        await self.real.upsert(records)


class RunWatch:
    """How each run of the indexer ended: a job whose collection was deleted has no row left to poll."""

    def __init__(self, indexer: Any) -> None:
        self.real = indexer.run
        self.ended: dict[str, asyncio.Future[Any]] = {}

    def future(self, job_id: str) -> asyncio.Future[Any]:
        return self.ended.setdefault(job_id, asyncio.get_running_loop().create_future())

    async def run(self, job_id: str) -> Any:
        try:
            result = await self.real(job_id)
        except BaseException as exc:
            self.future(job_id).set_exception(exc)
            raise
        self.future(job_id).set_result(result)
        return result


# These tests rig the indexer (a gated embedder, a recording store, a watched run): on a service of their own, so
# that no other test's job meets the rigging. The names shadow the shared session fixtures for this module only.
@pytest.fixture
async def own(own_service: Any) -> Any:
    return await own_service()


@pytest.fixture
def client(own: Any) -> Any:
    return own.client


@pytest.fixture
def services(own: Any) -> Any:
    return own.services


@pytest.fixture
async def collection(own: Any) -> str:
    resp = await own.client.post("/v1/collections", json={"name": "cancel"})
    assert resp.status_code == 201, resp.text
    return "cancel"


@pytest.fixture
def rigged(services, monkeypatch):
    monkeypatch.setattr("ingestion.index.EMBED_GROUP", GROUP)
    gated = GatedEmbedder(services.indexer.embedder, pause_at=2)
    store = RecordingStore(services.indexer.store)
    watch = RunWatch(services.indexer)
    monkeypatch.setattr(services.indexer, "embedder", gated)
    monkeypatch.setattr(services.indexer, "store", store)
    monkeypatch.setattr(services.indexer, "run", watch.run)
    yield gated, store, watch
    gated.release.set()


async def upload(client, collection: str, name: str, text: str) -> dict:
    resp = await client.post(f"/v1/collections/{collection}/documents", files={"files": (name, text.encode())})
    assert resp.status_code == 202, resp.text
    return resp.json()[0]


async def test_deleting_a_document_stops_its_running_job(client, services, collection, rigged) -> None:
    gated, store, watch = rigged
    doc = await upload(client, collection, "long.txt", TEXT)
    ended = watch.future(doc["job_id"])
    assert await asyncio.to_thread(gated.reached.wait, 600), "the job never reached its second embedding group"

    assert (await client.delete(f"/v1/documents/{doc['document_id']}")).status_code == 204
    store.deleted = True
    gated.release.set()

    assert await asyncio.wait_for(ended, 600) == "cancelled"
    job = (await client.get(f"/v1/jobs/{doc['job_id']}")).json()
    assert job["status"] == "cancelled", job
    assert job["error"] == "cancelled: long.txt was deleted before it was indexed"
    assert gated.calls == 2, "it went on embedding after the delete"
    assert store.late == [], "it wrote chunks of the deleted document"
    assert await services.store.count(ChunkSelector(document_id=doc["document_id"])) == 0
    assert (await client.get(f"/v1/documents/{doc['document_id']}")).status_code == 404


async def test_deleting_a_collection_stops_its_running_job(client, services, collection, rigged) -> None:
    gated, store, watch = rigged
    doc = await upload(client, collection, "long.txt", TEXT)
    ended = watch.future(doc["job_id"])
    assert await asyncio.to_thread(gated.reached.wait, 600), "the job never reached its second embedding group"

    assert (await client.delete(f"/v1/collections/{collection}")).status_code == 204
    store.deleted = True
    gated.release.set()

    assert await asyncio.wait_for(ended, 600) in ("cancelled", None)
    assert gated.calls == 2, "it went on embedding after the delete"
    assert store.late == [], "it wrote chunks of the deleted collection"
    assert await services.store.count(ChunkSelector(collection=collection)) == 0
    assert (await client.get(f"/v1/jobs/{doc['job_id']}")).status_code == 404


async def test_deleting_a_document_stops_its_parse(client, services, collection, monkeypatch) -> None:
    # A parse may run up to the parse timeout (here an hour, for a PDF whose drawings never end): the job checks
    # for a delete while it waits, and stops the parser process.
    monkeypatch.setattr(services.settings.ingestion, "parse_timeout_seconds", 3600)
    watch = RunWatch(services.indexer)
    monkeypatch.setattr(services.indexer, "run", watch.run)
    loader = services.indexer._loader  # the parser the job uses: the real parser process, watched
    parsing = asyncio.Event()
    real_parse = loader.parser.parse

    async def parse(source, filename):
        parsing.set()
        return await real_parse(source, filename)

    monkeypatch.setattr(loader.parser, "parse", parse)
    resp = await client.post(
        f"/v1/collections/{collection}/documents", files={"files": ("fanout.pdf", hostile.pdf_form_fanout())}
    )
    doc = resp.json()[0]
    ended = watch.future(doc["job_id"])
    await asyncio.wait_for(parsing.wait(), 600)

    assert (await client.delete(f"/v1/documents/{doc['document_id']}")).status_code == 204
    assert await asyncio.wait_for(ended, 600) == "cancelled"
    assert (await client.get(f"/v1/jobs/{doc['job_id']}")).json()["status"] == "cancelled"
    again = await upload(client, collection, "next.txt", "Parsed by a fresh parser process.")
    assert (await wait_job(client, again["job_id"]))["status"] == "succeeded"


async def test_a_queued_job_of_a_deleted_document_never_runs(client, services, collection, rigged, monkeypatch) -> None:
    gated, store, _ = rigged
    queued: list[str] = []

    async def hold(job_id: str) -> bool:
        queued.append(job_id)  # recorded in the catalog, not handed to the worker yet
        return True

    monkeypatch.setattr(services.queue, "enqueue_ingest", hold)
    doc = await upload(client, collection, "later.txt", TEXT)
    assert queued == [doc["job_id"]]
    assert (await client.get(f"/v1/jobs/{doc['job_id']}")).json()["status"] == "queued"

    assert (await client.delete(f"/v1/documents/{doc['document_id']}")).status_code == 204
    job = (await client.get(f"/v1/jobs/{doc['job_id']}")).json()
    assert (job["status"], job["error"]) == ("cancelled", "cancelled: later.txt was deleted before it was indexed")
    # What the worker does when the job reaches it.
    assert await services.indexer.run(doc["job_id"]) == "cancelled"
    assert (gated.calls, store.upserts) == (0, 0)
    assert (await client.get(f"/v1/jobs/{doc['job_id']}")).json()["status"] == "cancelled"


async def test_an_import_goes_on_without_the_document_deleted_from_it(client, services, collection, rigged) -> None:
    gated, store, watch = rigged
    records = [{"id": key, "text": TEXT[:12_000]} for key in ("keep-a", "drop-b", "keep-c")]
    body = "\n".join(json.dumps(r) for r in records)
    resp = await client.post(f"/v1/collections/{collection}/documents/import", content=body)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    ended = watch.future(job_id)
    assert await asyncio.to_thread(gated.reached.wait, 600)
    docs = {d["key"]: d["document_id"] for d in (await client.get(f"/v1/collections/{collection}/documents")).json()}

    assert (await client.delete(f"/v1/documents/{docs['drop-b']}")).status_code == 204
    store.deleted = True
    gated.release.set()

    assert await asyncio.wait_for(ended, 600) == "succeeded"
    assert (await wait_job(client, job_id))["status"] == "succeeded"
    assert docs["drop-b"] not in store.late
    assert await services.store.count(ChunkSelector(document_id=docs["drop-b"])) == 0
    for key in ("keep-a", "keep-c"):
        detail = (await client.get(f"/v1/documents/{docs[key]}")).json()
        assert detail["active_version"] == 1 and detail["chunk_count"] > 0, detail


async def test_a_delete_waits_for_a_write_in_progress_and_then_removes_it(
    client, services, collection, monkeypatch
) -> None:
    # The write guard: a job checks that its document exists and upserts under the collection's lock, and a delete
    # takes the same lock; whichever comes second sees what the first did.
    monkeypatch.setattr("ingestion.index.EMBED_GROUP", GROUP)
    real = services.indexer.store
    inside, release = asyncio.Event(), asyncio.Event()
    writes = 0

    class PausingStore(RecordingStore):
        async def upsert(self, records: list[Any]) -> None:
            nonlocal writes
            writes += 1
            if writes == 2:
                inside.set()
                await release.wait()
            await super().upsert(records)

    store = PausingStore(real)
    watch = RunWatch(services.indexer)
    monkeypatch.setattr(services.indexer, "store", store)
    monkeypatch.setattr(services.indexer, "run", watch.run)
    doc = await upload(client, collection, "long.txt", TEXT)
    ended = watch.future(doc["job_id"])
    await asyncio.wait_for(inside.wait(), 600)
    delete = asyncio.create_task(client.delete(f"/v1/documents/{doc['document_id']}"))
    await asyncio.sleep(0.5)
    assert not delete.done(), "the delete ran while a write of the document held the collection"
    release.set()
    assert (await delete).status_code == 204
    store.deleted = True
    assert await asyncio.wait_for(ended, 600) == "cancelled"
    assert (await client.get(f"/v1/jobs/{doc['job_id']}")).json()["status"] == "cancelled"
    assert store.late == []
    assert await services.store.count(ChunkSelector(document_id=doc["document_id"])) == 0

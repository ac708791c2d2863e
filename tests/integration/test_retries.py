"""A transient failure of the vector store is retried with backoff until the job succeeds."""

from __future__ import annotations

from kernel.errors import TransientError
from kernel.types import ChunkSelector
from tests.conftest import wait_job


class FlakyStore:
    """The real store, except that the first `failures` upserts fail as if the store were unreachable."""

    def __init__(self, inner, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    async def upsert(self, records):
        if self.failures > 0:
            self.failures -= 1
            raise TransientError("connection refused (injected by the test)")
        await self._inner.upsert(records)

    def __getattr__(self, name):
        return getattr(self._inner, name)


async def test_transient_store_failure_is_retried(client, services, collection, monkeypatch):
    flaky = FlakyStore(services.store, failures=2)
    monkeypatch.setattr(services.indexer, "store", flaky)
    monkeypatch.setattr(services.settings.ingestion, "retry_base_seconds", 0.05)
    resp = await client.post(
        f"/v1/collections/{collection}/documents",
        files={"files": ("retry.txt", b"The bridge opened in 1932 and carries eight lanes of traffic.")},
    )
    job = await wait_job(client, resp.json()[0]["job_id"])
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 3
    assert flaky.failures == 0
    doc = (await client.get(f"/v1/documents/{resp.json()[0]['document_id']}")).json()
    assert await services.store.count(ChunkSelector(document_id=doc["document_id"])) == doc["chunk_count"] > 0


async def test_gives_up_after_max_tries_with_reason(client, services, collection, monkeypatch):
    monkeypatch.setattr(services.indexer, "store", FlakyStore(services.store, failures=100))
    monkeypatch.setattr(services.settings.ingestion, "retry_base_seconds", 0.01)
    monkeypatch.setattr(services.settings.ingestion, "max_tries", 2)
    resp = await client.post(
        f"/v1/collections/{collection}/documents", files={"files": ("down.txt", b"Some text that cannot be stored.")}
    )
    job = await wait_job(client, resp.json()[0]["job_id"])
    assert job["status"] == "failed"
    assert "gave up after 2 attempts" in job["error"] and "connection refused" in job["error"]
    assert (await client.get("/healthz")).status_code == 200

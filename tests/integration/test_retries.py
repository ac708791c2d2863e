"""A transient failure of the vector store is retried with backoff until the job succeeds, or given up with a reason.

Each test runs a service of its own: the flaky store sits in that service's indexer only, so no other test's job
meets its failures, and its retry settings change nothing for anyone else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from kernel.errors import TransientError
from kernel.filters import FieldType, FilterSpec
from kernel.protocols import SearchPlan, VectorStore
from kernel.types import ChunkRecord, ChunkSelector, ChunkState, Hit, SparseVector
from rag.services import Services
from tests.support.polling import wait_job
from tests.support.service import create_collection


class FlakyStore:
    """The real store, except that the first `failures` upserts fail as if the store were unreachable (a real store
    cannot be made unreachable for exactly n calls)."""

    def __init__(self, inner: VectorStore, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TransientError("connection refused (injected by the test)")
        await self._inner.upsert(records)

    async def ensure(self, dim: int) -> None:
        await self._inner.ensure(dim)

    async def set_state(self, selector: ChunkSelector, state: ChunkState) -> None:
        await self._inner.set_state(selector, state)

    async def delete(self, selector: ChunkSelector) -> None:
        await self._inner.delete(selector)

    async def count(self, selector: ChunkSelector) -> int:
        return await self._inner.count(selector)

    async def drop_generations(self, collection: str, keep: int) -> None:
        await self._inner.drop_generations(collection, keep)

    async def ensure_field_index(self, field: str, type_: FieldType) -> None:
        await self._inner.ensure_field_index(field, type_)

    async def search(self, dense: list[float], sparse: SparseVector, spec: FilterSpec, plan: SearchPlan) -> list[Hit]:
        return await self._inner.search(dense, sparse, spec, plan)

    async def ping(self) -> None:
        await self._inner.ping()

    async def dense_by_text(self, model_id: str, text_sha256: Sequence[str]) -> dict[str, list[float]]:
        return await self._inner.dense_by_text(model_id, text_sha256)

    async def sample_dense(self, selector: ChunkSelector, limit: int) -> list[list[float]]:
        return await self._inner.sample_dense(selector, limit)

    async def close(self) -> None:
        await self._inner.close()


def flaky_indexer(failures: int) -> tuple[Callable[[Services], None], list[FlakyStore]]:
    """A `prepare` hook that makes the service's indexer write through a FlakyStore around the service's real store,
    and the list that receives that FlakyStore."""
    made: list[FlakyStore] = []

    def prepare(svc: Services) -> None:
        flaky = FlakyStore(svc.store, failures)
        made.append(flaky)
        svc.indexer = replace(svc.indexer, store=flaky)

    return prepare, made


async def test_transient_store_failure_is_retried(own_service):
    prepare, made = flaky_indexer(failures=2)
    svc = await own_service({"ingestion": {"retry_base_seconds": 0.05}}, prepare=prepare)
    client, [flaky] = svc.client, made
    await create_collection(client, "kb")
    resp = await client.post(
        "/v1/collections/kb/documents",
        files={"files": ("retry.txt", b"The bridge opened in 1932 and carries eight lanes of traffic.")},
    )
    job = await wait_job(client, resp.json()[0]["job_id"])
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 3
    assert flaky.failures == 0
    doc = (await client.get(f"/v1/documents/{resp.json()[0]['document_id']}")).json()
    assert await svc.services.store.count(ChunkSelector(document_id=doc["document_id"])) == doc["chunk_count"] > 0


async def test_gives_up_after_max_tries_with_reason(own_service):
    prepare, made = flaky_indexer(failures=100)
    svc = await own_service({"ingestion": {"retry_base_seconds": 0.01, "max_tries": 2}}, prepare=prepare)
    client = svc.client
    await create_collection(client, "kb")
    resp = await client.post("/v1/collections/kb/documents", files={"files": ("down.txt", b"Some text that fails.")})
    job = await wait_job(client, resp.json()[0]["job_id"])
    assert job["status"] == "failed"
    assert job["attempts"] == 2 and made[0].failures == 98  # one upsert per attempt, then no more
    assert "gave up after 2 attempts" in job["error"] and "connection refused" in job["error"]
    assert (await client.get("/healthz")).status_code == 200

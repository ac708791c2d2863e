"""The embedded store's search index (HNSW) is built after large imports, in the background of the worker that ran
the job (RAG_INGESTION__OPTIMIZE_AFTER_CHUNKS), and not after small ones; 0 switches it off."""

from __future__ import annotations

from tests.support.polling import poll
from tests.support.service import create_collection, import_records


def notes(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"n{i}", "text": f"Note {i}: the river rose by {i} centimetres overnight."} for i in range(start, n)]


async def test_a_large_import_builds_the_index_in_the_background_and_a_small_one_does_not(own_service) -> None:
    running = await own_service({"ingestion": {"optimize_after_chunks": 10}})
    optimizer = running.services.optimizer
    assert optimizer is not None and optimizer.active  # Qdrant Edge: built only when asked
    name = await create_collection(running.client, "big")

    async def counted() -> tuple[int, int]:
        return optimizer.pending, optimizer.runs

    job = await import_records(running.client, name, notes(4))  # 4 chunks: below the threshold
    # The worker counts a job's chunks just after it ends.
    assert await poll(counted, lambda c: c[0] == 4, what="the job's chunks counted") == (4, 0)
    assert job["total"] == 4

    await import_records(running.client, name, notes(12, start=4))  # 8 more: 12 since the last build
    assert await poll(counted, lambda c: c[1] == 1, what="a build of the search index") == (0, 1)
    resp = await running.client.post("/v1/search", json={"query": "river rose", "collections": [name], "top_k": 3})
    assert resp.status_code == 200 and resp.json()["hits"], resp.text  # searches go on over the built index


async def test_zero_never_builds_automatically(own_service) -> None:
    running = await own_service({"ingestion": {"optimize_after_chunks": 0}})
    optimizer = running.services.optimizer
    assert optimizer is not None and not optimizer.active
    name = await create_collection(running.client, "big")
    await import_records(running.client, name, notes(12))
    await optimizer.idle()
    assert optimizer.runs == 0

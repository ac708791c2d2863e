"""One suite for every VectorStore: Qdrant Edge, and the server store (on qdrant-client's in-process engine, since
no Qdrant server runs here)."""

from __future__ import annotations

import uuid

import pytest

from kernel.filters import Condition, FilterSpec
from kernel.protocols import SearchPlan
from kernel.types import ChunkRecord, ChunkSelector, ChunkState
from retrieval.sparse import Bm25Encoder

DIM = 4


@pytest.fixture(params=["edge", "server"])
async def store(request, tmp_path):
    if request.param == "edge":
        from retrieval.stores.qdrant_edge import QdrantEdgeStore

        s = QdrantEdgeStore(tmp_path / "edge")
    else:
        from qdrant_client import AsyncQdrantClient

        from retrieval.stores.qdrant_server import QdrantServerStore

        s = QdrantServerStore("unused", "chunks", None, 5, client=AsyncQdrantClient(location=":memory:"))
    await s.ensure(DIM)
    yield s
    await s.close()


def record(doc: str, version: int, i: int, text: str, vec: list[float], state=ChunkState.active, **meta) -> ChunkRecord:
    return ChunkRecord(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{doc}/{version}/{i}")),
        dense=vec,
        sparse=Bm25Encoder().encode_document(text),
        payload={
            "collection": "c",
            "document_id": doc,
            "version": version,
            "chunk_index": i,
            "text": text,
            "state": state.value,
            "job_id": f"job-{doc}-{version}",
            "filename": f"{doc}.txt",
            "page": i + 1,
            "metadata": meta,
        },
    )


async def test_lifecycle_and_search(store):
    await store.ensure_field_index("metadata.year", "integer")
    await store.upsert(
        [
            record("a", 1, 0, "apples grow on trees", [1, 0, 0, 0], year=2001),
            record("a", 1, 1, "orchards need bees", [0.9, 0.1, 0, 0], year=2001),
            record("b", 1, 0, "rockets need fuel", [0, 1, 0, 0], year=2020),
            record("b", 2, 0, "rockets need oxygen", [0, 0.9, 0.1, 0], state=ChunkState.staged, year=2020),
        ]
    )
    assert await store.count(ChunkSelector(collection="c")) == 4
    spec = FilterSpec(collections=["c"])
    sparse = Bm25Encoder().encode_query("rockets fuel")
    hits = await store.search([0, 1, 0, 0], sparse, spec, SearchPlan(limit=10, candidates=10))
    assert hits[0].payload["document_id"] == "b" and hits[0].payload["version"] == 1
    assert hits[0].dense_rank == 1 and hits[0].sparse_rank == 1
    assert all(h.payload["state"] == "active" for h in hits)  # staged chunks are invisible
    only_sparse = await store.search([0, 1, 0, 0], sparse, spec, SearchPlan(10, 10, mode="sparse"))
    assert [h.payload["document_id"] for h in only_sparse] == ["b"]
    old = FilterSpec(collections=["c"], conditions=[Condition(field="metadata.year", type="integer", lt=2010)])
    older = await store.search([0, 1, 0, 0], sparse, old, SearchPlan(10, 10))
    assert {h.payload["document_id"] for h in older} == {"a"}

    await store.set_state(ChunkSelector(document_id="b", version=2), ChunkState.active)
    await store.set_state(ChunkSelector(document_id="b", version=1), ChunkState.retired)
    hits = await store.search([0, 1, 0, 0], sparse, spec, SearchPlan(limit=10, candidates=10))
    assert {(h.payload["document_id"], h.payload["version"]) for h in hits} == {("a", 1), ("b", 2)}

    await store.delete(ChunkSelector(document_id="a"))
    assert await store.count(ChunkSelector(document_id="a")) == 0
    await store.delete(ChunkSelector(job_id="job-b-1"))
    assert await store.count(ChunkSelector(collection="c")) == 1
    await store.ping()


async def test_dimension_mismatch_is_a_clear_error(store, tmp_path):
    from kernel.errors import RagError

    if type(store).__name__ == "QdrantEdgeStore":
        await store.close()
        from retrieval.stores.qdrant_edge import QdrantEdgeStore

        other = QdrantEdgeStore(tmp_path / "edge")
        with pytest.raises(RagError, match="4-dimensional"):
            await other.ensure(8)
    else:
        with pytest.raises(RagError, match="4-dimensional"):
            await store.ensure(8)

"""A collection the server store creates is laid out as RAG_QDRANT__SHARDS / __REPLICATION_FACTOR /
__WRITE_CONSISTENCY_FACTOR say. No Qdrant server runs here and qdrant-client's in-process engine has no shards, so
the store runs on that engine behind a client that records what the store asked of it (the request a server gets)."""

from __future__ import annotations

from typing import Any

from qdrant_client import AsyncQdrantClient

from kernel.settings import load_settings
from retrieval.stores.qdrant_server import CollectionLayout, QdrantServerStore


class RecordingClient(AsyncQdrantClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.created: list[dict[str, Any]] = []

    async def create_collection(self, *args: Any, **kwargs: Any) -> bool:
        self.created.append(kwargs)
        return await super().create_collection(*args, **kwargs)


async def test_a_new_collection_gets_the_configured_layout() -> None:
    qdrant = load_settings(
        qdrant={"url": "http://qdrant:6333", "shards": 6, "replication_factor": 3, "write_consistency_factor": 2}
    ).qdrant
    layout = CollectionLayout(qdrant.shards, qdrant.replication_factor, qdrant.write_consistency_factor)
    client = RecordingClient(location=":memory:")
    store = QdrantServerStore("unused", "chunks", None, 5, client=client, layout=layout)
    try:
        await store.ensure(8)
        await store.ensure(8)  # an existing collection keeps its layout: it is not created again
    finally:
        await store.close()
    assert len(client.created) == 1
    created = client.created[0]
    assert (created["shard_number"], created["replication_factor"], created["write_consistency_factor"]) == (6, 3, 2)


async def test_the_default_layout_is_one_shard_one_copy() -> None:
    client = RecordingClient(location=":memory:")
    store = QdrantServerStore("unused", "chunks", None, 5, client=client)
    try:
        await store.ensure(8)
    finally:
        await store.close()
    created = client.created[0]
    assert (created["shard_number"], created["replication_factor"], created["write_consistency_factor"]) == (1, 1, 1)

"""Qdrant Edge: the Qdrant engine in-process, on disk. The embedded default.

The shard locks its folder to one process, which is why embedded mode is a single process. Edge calls block, so
they run in a worker thread; writes are serialised because a shard has a single write-ahead log.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import qdrant_edge as qe

from rag.errors import RagError
from rag.types import ChunkRecord, ChunkSelector, ChunkState
from retrieval.stores import fields


def edge_filter(selector: ChunkSelector) -> qe.Filter:
    must: list[qe.FieldCondition] = []
    for key, value in selector.model_dump(exclude_none=True).items():
        must.append(qe.FieldCondition(key=key, match=qe.MatchValue(value)))
    return qe.Filter(must=must)


class QdrantEdgeStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._shard: qe.EdgeShard | None = None
        self._write_lock = threading.Lock()

    async def ensure(self, dim: int) -> None:
        await asyncio.to_thread(self._open, dim)

    def _open(self, dim: int) -> None:
        config = qe.EdgeConfig(
            vectors={fields.DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={fields.SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        marker = self._path / "edge_config.json"
        if marker.exists():
            stored = json.loads(marker.read_text()).get("vectors", {}).get(fields.DENSE, {}).get("size")
            if stored is not None and stored != dim:
                raise RagError(
                    f"the vector store at {self._path} holds {stored}-dimensional vectors but the embedding "
                    f"model makes {dim}: use a new RAG_DATA_DIR or the model the data was indexed with"
                )
            self._shard = qe.EdgeShard.load(str(self._path))
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            self._shard = qe.EdgeShard.create(str(self._path), config)
        self._create_indexes()

    def _create_indexes(self) -> None:
        existing = set(self.shard.info().payload_schema)
        ops = []
        for name in fields.KEYWORD_FIELDS:
            if name not in existing:
                ops.append((name, qe.KeywordIndexParams(is_tenant=name == fields.TENANT_FIELD)))
        for name in fields.INTEGER_FIELDS:
            if name not in existing:
                ops.append((name, qe.IntegerIndexParams(lookup=True, range=True)))
        for name in fields.DATETIME_FIELDS:
            if name not in existing:
                ops.append((name, qe.DatetimeIndexParams()))
        with self._write_lock:
            for name, params in ops:
                self.shard.update(qe.UpdateOperation.create_field_index(name, params))

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError("QdrantEdgeStore.ensure() was not called")
        return self._shard

    def _write(self, op: qe.UpdateOperation) -> None:
        with self._write_lock:
            self.shard.update(op)

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        points = [
            qe.Point(
                r.id,
                {
                    fields.DENSE: r.dense,
                    fields.SPARSE: qe.SparseVector(r.sparse.indices, r.sparse.values),
                },
                r.payload,
            )
            for r in records
        ]
        if points:
            await asyncio.to_thread(self._write, qe.UpdateOperation.upsert_points(points))

    async def set_state(self, selector: ChunkSelector, state: ChunkState) -> None:
        op = qe.UpdateOperation.set_payload_by_filter(edge_filter(selector), {"state": state.value})
        await asyncio.to_thread(self._write, op)

    async def delete(self, selector: ChunkSelector) -> None:
        await asyncio.to_thread(self._write, qe.UpdateOperation.delete_points_by_filter(edge_filter(selector)))

    async def count(self, selector: ChunkSelector) -> int:
        request = qe.CountRequest(filter=edge_filter(selector), exact=True)
        return await asyncio.to_thread(self.shard.count, request)

    async def optimize(self) -> None:
        """Build the HNSW index; Edge builds it only when asked."""
        await asyncio.to_thread(self._optimize)

    def _optimize(self) -> None:
        with self._write_lock:
            self.shard.optimize()

    async def ping(self) -> None:
        self.shard.info()

    async def close(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            await asyncio.to_thread(self._close, shard)

    def _close(self, shard: qe.EdgeShard) -> None:
        with self._write_lock:
            shard.flush()
            shard.close()

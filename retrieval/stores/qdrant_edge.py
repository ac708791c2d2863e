"""Qdrant Edge: the Qdrant engine in-process, on disk. The embedded default.

The shard locks its folder to one process, which is why embedded mode is a single process. Edge calls block, so
they run in a worker thread; writes are serialised because a shard has a single write-ahead log.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import qdrant_edge as qe

from kernel.errors import RagError
from kernel.filters import FieldType, FilterSpec
from kernel.protocols import SearchPlan
from kernel.types import ChunkRecord, ChunkSelector, ChunkState, Hit, SparseVector
from retrieval.filters import GENERATION_FIELD, spec_clauses
from retrieval.stores import fields


def edge_filter(selector: ChunkSelector) -> qe.Filter:
    values = selector.model_dump(exclude_none=True)
    return qe.Filter(must=[qe.FieldCondition(key=key, match=qe.MatchValue(value)) for key, value in values.items()])


def _edge_live(field: str, live: list[tuple[str, int | None]]) -> qe.Filter:
    """One of these collections, each at its live generation (see `retrieval.filters.spec_clauses`)."""
    options: list[qe.Filter] = []
    for name, generation in live:
        in_collection = qe.FieldCondition(key="collection", match=qe.MatchValue(name))
        if generation is None:
            options.append(qe.Filter(must=[in_collection]))
        elif generation == 0:  # chunks without the field (indexed before generations) are generation 0
            later = qe.FieldCondition(key=field, range=qe.RangeFloat(gte=1))
            options.append(qe.Filter(must=[in_collection], must_not=[later]))
        else:
            current = qe.FieldCondition(key=field, match=qe.MatchValue(generation))
            options.append(qe.Filter(must=[in_collection, current]))
    return qe.Filter(should=list(options))


def _edge_clause(field: str, kind: str, value: Any) -> qe.FieldCondition | qe.Filter:
    if kind == "live":
        return _edge_live(field, value)
    if kind == "eq":
        return qe.FieldCondition(key=field, match=qe.MatchValue(value))
    if kind == "any":
        return qe.FieldCondition(key=field, match=qe.MatchAny(any=value))
    rng = qe.RangeDateTime(**value) if kind == "datetime" else qe.RangeFloat(**value)
    return qe.FieldCondition(key=field, range=rng)


def spec_filter(spec: FilterSpec) -> qe.Filter:
    return qe.Filter(must=[_edge_clause(*clause) for clause in spec_clauses(spec)])


_IndexParams = qe.KeywordIndexParams | qe.IntegerIndexParams | qe.FloatIndexParams | qe.DatetimeIndexParams

_INDEX_PARAMS: dict[FieldType, Callable[[], _IndexParams]] = {
    "keyword": lambda: qe.KeywordIndexParams(),
    "integer": lambda: qe.IntegerIndexParams(lookup=True, range=True),
    "float": lambda: qe.FloatIndexParams(),
    "datetime": lambda: qe.DatetimeIndexParams(),
}


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
            if self._shard is None:  # already open: the dimension check above is all that is left to do
                self._shard = qe.EdgeShard.load(str(self._path))
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            self._shard = qe.EdgeShard.create(str(self._path), config)
        self._create_indexes()

    def _create_indexes(self) -> None:
        existing = set(self.shard.info().payload_schema)
        ops: list[tuple[str, _IndexParams]] = []
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

    async def drop_generations(self, collection: str, keep: int) -> None:
        """Delete the collection's chunks of every generation but `keep` (those without one included)."""
        kept = qe.FieldCondition(key=GENERATION_FIELD, match=qe.MatchValue(keep))
        flt = qe.Filter(must=[qe.FieldCondition(key="collection", match=qe.MatchValue(collection))], must_not=[kept])
        await asyncio.to_thread(self._write, qe.UpdateOperation.delete_points_by_filter(flt))

    async def count(self, selector: ChunkSelector) -> int:
        request = qe.CountRequest(filter=edge_filter(selector), exact=True)
        return await asyncio.to_thread(self.shard.count, request)

    async def dense_by_text(self, model_id: str, text_sha256: Sequence[str]) -> dict[str, list[float]]:
        if not text_sha256:
            return {}
        return await asyncio.to_thread(self._dense_by_text, model_id, list(text_sha256))

    def _dense_by_text(self, model_id: str, digests: list[str]) -> dict[str, list[float]]:
        flt = qe.Filter(
            must=[
                qe.FieldCondition(key=fields.TEXT_DIGEST, match=qe.MatchAny(any=digests)),
                qe.FieldCondition(key="model_id", match=qe.MatchValue(model_id)),
            ]
        )
        found: dict[str, list[float]] = {}
        offset = None
        # The same text may be stored many times (kept versions, other collections): stop once each is found.
        while len(found) < len(digests):
            request = qe.ScrollRequest(
                filter=flt,
                limit=2 * len(digests),
                offset=offset,
                with_payload=[fields.TEXT_DIGEST],
                with_vector=[fields.DENSE],
            )
            points, offset = self.shard.scroll(request)
            for p in points:
                vectors = p.vector if isinstance(p.vector, dict) else {}
                dense = vectors.get(fields.DENSE)
                if p.payload is not None and isinstance(dense, list):
                    found.setdefault(p.payload[fields.TEXT_DIGEST], cast(list[float], dense))
            if offset is None:
                break
        return found

    async def sample_dense(self, selector: ChunkSelector, limit: int) -> list[list[float]]:
        return await asyncio.to_thread(self._sample_dense, selector, limit)

    def _sample_dense(self, selector: ChunkSelector, limit: int) -> list[list[float]]:
        out: list[list[float]] = []
        offset = None
        while len(out) < limit:
            request = qe.ScrollRequest(
                filter=edge_filter(selector),
                limit=min(256, limit - len(out)),
                offset=offset,
                with_payload=False,
                with_vector=[fields.DENSE],
            )
            points, offset = self.shard.scroll(request)
            for p in points:
                dense = p.vector.get(fields.DENSE) if isinstance(p.vector, dict) else None
                if isinstance(dense, list):
                    out.append(cast(list[float], dense))
            if offset is None or not points:
                break
        return out[:limit]

    async def optimize(self) -> None:
        """Build the HNSW index; Edge builds it only when asked."""
        await asyncio.to_thread(self._optimize)

    def _optimize(self) -> None:
        with self._write_lock:
            self.shard.optimize()

    async def ensure_field_index(self, field: str, type_: FieldType) -> None:
        info = await asyncio.to_thread(self.shard.info)
        if field in info.payload_schema:
            return
        op = qe.UpdateOperation.create_field_index(field, _INDEX_PARAMS[type_]())
        await asyncio.to_thread(self._write, op)

    async def search(self, dense: list[float], sparse: SparseVector, spec: FilterSpec, plan: SearchPlan) -> list[Hit]:
        return await asyncio.to_thread(self._search, dense, sparse, spec, plan)

    def _search(self, dense: list[float], sparse: SparseVector, spec: FilterSpec, plan: SearchPlan) -> list[Hit]:
        limit, candidates, mode, rrf_k = plan.limit, plan.candidates, plan.mode, plan.rrf_k
        flt = spec_filter(spec)
        dense_q = qe.Query.Nearest(dense, using=fields.DENSE)
        sparse_q = qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=fields.SPARSE)
        stages = {
            "dense": qe.QueryRequest(query=dense_q, filter=flt, limit=candidates, with_payload=mode == "dense"),
            "sparse": qe.QueryRequest(query=sparse_q, filter=flt, limit=candidates, with_payload=mode == "sparse"),
        }
        requests = [stages[m] for m in ("dense", "sparse") if mode in (m, "hybrid")]
        if mode == "hybrid":
            requests.insert(
                0,
                qe.QueryRequest(
                    prefetches=[
                        qe.Prefetch(query=dense_q, limit=candidates, filter=flt),
                        qe.Prefetch(query=sparse_q, limit=candidates, filter=flt),
                    ],
                    query=qe.Fusion.Rrf(k=rrf_k),  # type: ignore[arg-type]  # a Fusion at runtime; the stub omits the base
                    limit=limit,
                    with_payload=True,
                ),
            )
        results = self.shard.query_batch(qe.QueryBatchRequest(requests))
        return assemble_hits(mode, results, limit)

    async def ping(self) -> None:
        await asyncio.to_thread(self.shard.info)

    async def close(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            await asyncio.to_thread(self._close, shard)

    def _close(self, shard: qe.EdgeShard) -> None:
        with self._write_lock:
            shard.flush()
            shard.close()


def assemble_hits(mode: str, results: list, limit: int) -> list[Hit]:
    """Hits in final order, each with its rank and score in the dense and sparse stages it appeared in."""
    per_stage: dict[str, dict[str, tuple[int, float]]] = {}
    stage_names = ["dense", "sparse"] if mode == "hybrid" else [mode]
    for name, points in zip(stage_names, results[-len(stage_names) :], strict=True):
        per_stage[name] = {str(p.id): (rank, p.score) for rank, p in enumerate(points, start=1)}
    final = results[0] if mode == "hybrid" else results[0][:limit]
    hits = []
    for p in final:
        pid = str(p.id)
        d = per_stage.get("dense", {}).get(pid)
        s = per_stage.get("sparse", {}).get(pid)
        hits.append(
            Hit(
                chunk_id=pid,
                score=p.score,
                payload=dict(p.payload or {}),
                dense_rank=d[0] if d else None,
                dense_score=d[1] if d else None,
                sparse_rank=s[0] if s else None,
                sparse_score=s[1] if s else None,
            )
        )
    return hits

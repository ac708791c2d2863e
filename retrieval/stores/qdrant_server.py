"""A Qdrant server or cluster through qdrant-client: the production store."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from kernel.errors import RagError, TransientError
from kernel.filters import FieldType, FilterSpec
from kernel.protocols import SearchPlan
from kernel.types import ChunkRecord, ChunkSelector, ChunkState, Hit, SparseVector
from retrieval.filters import GENERATION_FIELD, spec_clauses
from retrieval.stores import fields
from retrieval.stores.qdrant_edge import assemble_hits

T = TypeVar("T")


def server_filter(selector: ChunkSelector) -> models.Filter:
    return models.Filter(
        must=[
            models.FieldCondition(key=key, match=models.MatchValue(value=value))
            for key, value in selector.model_dump(exclude_none=True).items()
        ]
    )


def _server_live(field: str, live: list[tuple[str, int | None]]) -> models.Filter:
    """One of these collections, each at its live generation (see `retrieval.filters.spec_clauses`)."""
    options: list[models.Condition] = []
    for name, generation in live:
        in_collection = models.FieldCondition(key="collection", match=models.MatchValue(value=name))
        if generation is None:
            options.append(models.Filter(must=[in_collection]))
        elif generation == 0:  # chunks without the field (indexed before generations) are generation 0
            later = models.FieldCondition(key=field, range=models.Range(gte=1))
            options.append(models.Filter(must=[in_collection], must_not=[later]))
        else:
            current = models.FieldCondition(key=field, match=models.MatchValue(value=generation))
            options.append(models.Filter(must=[in_collection, current]))
    return models.Filter(should=options)


def _server_clause(field: str, kind: str, value: Any) -> models.FieldCondition | models.Filter:
    if kind == "live":
        return _server_live(field, value)
    if kind == "eq":
        return models.FieldCondition(key=field, match=models.MatchValue(value=value))
    if kind == "any":
        return models.FieldCondition(key=field, match=models.MatchAny(any=value))
    rng = models.DatetimeRange(**value) if kind == "datetime" else models.Range(**value)
    return models.FieldCondition(key=field, range=rng)


def spec_filter(spec: FilterSpec) -> models.Filter:
    return models.Filter(must=[_server_clause(*clause) for clause in spec_clauses(spec)])


_SCHEMAS = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "datetime": models.PayloadSchemaType.DATETIME,
}


@dataclass(frozen=True)
class CollectionLayout:
    """How a collection this store creates is spread over a Qdrant cluster; an existing collection keeps its own."""

    shards: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1


class QdrantServerStore:
    def __init__(
        self,
        url: str,
        collection: str,
        api_key: str | None,
        timeout: float,
        client: AsyncQdrantClient | None = None,
        layout: CollectionLayout | None = None,
    ) -> None:
        # `client` lets the contract tests run this store on qdrant-client's in-process engine.
        self._client = client or AsyncQdrantClient(url=url, api_key=api_key, timeout=int(timeout))
        self._collection = collection
        self._layout = layout or CollectionLayout()

    async def ensure(self, dim: int) -> None:
        try:
            exists = await self._client.collection_exists(self._collection)
            if exists:
                info = await self._client.get_collection(self._collection)
                vectors = info.config.params.vectors
                size = vectors[fields.DENSE].size if isinstance(vectors, dict) else None
                if size != dim:
                    raise RagError(
                        f"Qdrant collection {self._collection!r} holds {size}-dimensional vectors but the "
                        f"embedding model makes {dim}: set RAG_QDRANT__COLLECTION to a new name"
                    )
                # Indexed since the embedding cache came: a collection made before gets the index now (idempotent).
                for name in (fields.TEXT_DIGEST, "model_id"):
                    schema = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)
                    await self._client.create_payload_index(self._collection, name, field_schema=schema)
                # Indexed since reindexing came (`rag reindex`): every search filters on it.
                await self._client.create_payload_index(
                    self._collection, GENERATION_FIELD, field_schema=models.PayloadSchemaType.INTEGER
                )
                return
            await self._client.create_collection(
                self._collection,
                vectors_config={fields.DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={fields.SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                shard_number=self._layout.shards,
                replication_factor=self._layout.replication_factor,
                write_consistency_factor=self._layout.write_consistency_factor,
            )
            for name in fields.KEYWORD_FIELDS:
                schema = models.KeywordIndexParams(
                    type=models.KeywordIndexType.KEYWORD, is_tenant=name == fields.TENANT_FIELD
                )
                await self._client.create_payload_index(self._collection, name, field_schema=schema)
            for name in fields.INTEGER_FIELDS:
                await self._client.create_payload_index(
                    self._collection, name, field_schema=models.PayloadSchemaType.INTEGER
                )
            for name in fields.DATETIME_FIELDS:
                await self._client.create_payload_index(
                    self._collection, name, field_schema=models.PayloadSchemaType.DATETIME
                )
        except (ResponseHandlingException, UnexpectedResponse, OSError) as exc:
            raise TransientError(f"Qdrant at the configured URL is unavailable: {exc}") from exc

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        points = [
            models.PointStruct(
                id=r.id,
                vector={
                    fields.DENSE: r.dense,
                    fields.SPARSE: models.SparseVector(indices=r.sparse.indices, values=r.sparse.values),
                },
                payload=r.payload,
            )
            for r in records
        ]
        if points:  # Qdrant rejects an empty update ("Empty update request"); the Edge store skips it too
            await self._call(self._client.upsert(self._collection, points=points, wait=True))

    async def set_state(self, selector: ChunkSelector, state: ChunkState) -> None:
        await self._call(
            self._client.set_payload(
                self._collection, payload={"state": state.value}, points=server_filter(selector), wait=True
            )
        )

    async def delete(self, selector: ChunkSelector) -> None:
        await self._call(
            self._client.delete(
                self._collection,
                points_selector=models.FilterSelector(filter=server_filter(selector)),
                wait=True,
            )
        )

    async def drop_generations(self, collection: str, keep: int) -> None:
        """Delete the collection's chunks of every generation but `keep` (those without one included)."""
        flt = models.Filter(
            must=[models.FieldCondition(key="collection", match=models.MatchValue(value=collection))],
            must_not=[models.FieldCondition(key=GENERATION_FIELD, match=models.MatchValue(value=keep))],
        )
        await self._call(
            self._client.delete(self._collection, points_selector=models.FilterSelector(filter=flt), wait=True)
        )

    async def count(self, selector: ChunkSelector) -> int:
        result = await self._call(
            self._client.count(self._collection, count_filter=server_filter(selector), exact=True)
        )
        return result.count

    async def dense_by_text(self, model_id: str, text_sha256: Sequence[str]) -> dict[str, list[float]]:
        digests = list(text_sha256)
        flt = models.Filter(
            must=[
                models.FieldCondition(key=fields.TEXT_DIGEST, match=models.MatchAny(any=digests)),
                models.FieldCondition(key="model_id", match=models.MatchValue(value=model_id)),
            ]
        )
        found: dict[str, list[float]] = {}
        offset: Any = None
        # The same text may be stored many times (kept versions, other collections): stop once each is found.
        while digests and len(found) < len(digests):
            points, offset = await self._call(
                self._client.scroll(
                    self._collection,
                    scroll_filter=flt,
                    limit=2 * len(digests),
                    offset=offset,
                    with_payload=[fields.TEXT_DIGEST],
                    with_vectors=[fields.DENSE],
                )
            )
            for p in points:
                vectors = p.vector if isinstance(p.vector, dict) else {}
                dense = vectors.get(fields.DENSE)
                if p.payload is not None and isinstance(dense, list):
                    found.setdefault(p.payload[fields.TEXT_DIGEST], cast(list[float], dense))
            if offset is None:
                break
        return found

    async def sample_dense(self, selector: ChunkSelector, limit: int) -> list[list[float]]:
        out: list[list[float]] = []
        offset: Any = None
        while len(out) < limit:
            points, offset = await self._call(
                self._client.scroll(
                    self._collection,
                    scroll_filter=server_filter(selector),
                    limit=min(256, limit - len(out)),
                    offset=offset,
                    with_payload=False,
                    with_vectors=[fields.DENSE],
                )
            )
            for p in points:
                dense = p.vector.get(fields.DENSE) if isinstance(p.vector, dict) else None
                if isinstance(dense, list):
                    out.append(cast(list[float], dense))
            if offset is None or not points:
                break
        return out[:limit]

    async def ensure_field_index(self, field: str, type_: FieldType) -> None:
        await self._call(self._client.create_payload_index(self._collection, field, field_schema=_SCHEMAS[type_]))

    async def search(self, dense: list[float], sparse: SparseVector, spec: FilterSpec, plan: SearchPlan) -> list[Hit]:
        limit, candidates, mode, rrf_k = plan.limit, plan.candidates, plan.mode, plan.rrf_k
        flt = spec_filter(spec)
        sparse_vec = models.SparseVector(indices=sparse.indices, values=sparse.values)
        stage = {
            "dense": models.QueryRequest(
                query=dense, using=fields.DENSE, filter=flt, limit=candidates, with_payload=mode == "dense"
            ),
            "sparse": models.QueryRequest(
                query=sparse_vec, using=fields.SPARSE, filter=flt, limit=candidates, with_payload=mode == "sparse"
            ),
        }
        requests = [stage[m] for m in ("dense", "sparse") if mode in (m, "hybrid")]
        if mode == "hybrid":
            requests.insert(
                0,
                models.QueryRequest(
                    prefetch=[
                        models.Prefetch(query=dense, using=fields.DENSE, filter=flt, limit=candidates),
                        models.Prefetch(query=sparse_vec, using=fields.SPARSE, filter=flt, limit=candidates),
                    ],
                    query=models.RrfQuery(rrf=models.Rrf(k=rrf_k)),
                    limit=limit,
                    with_payload=True,
                ),
            )
        responses = await self._call(self._client.query_batch_points(self._collection, requests=requests))
        return assemble_hits(mode, [r.points for r in responses], limit)

    async def ping(self) -> None:
        await self._call(self._client.get_collections())

    async def close(self) -> None:
        await self._client.close()

    @staticmethod
    async def _call(awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (ResponseHandlingException, OSError) as exc:
            raise TransientError(f"Qdrant is unavailable: {exc}") from exc
        except UnexpectedResponse as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise TransientError(f"Qdrant failed ({exc.status_code}): {exc}") from exc
            raise

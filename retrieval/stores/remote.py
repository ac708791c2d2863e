"""A VectorStore in another process: the client of a store owner (`rag store`, see `rag.store_owner`).

Qdrant Edge locks its folder to one process. A store owner opens it once and serves the VectorStore calls over HTTP
on loopback, so that any number of API and worker processes, each of which may die, share one embedded store; its
writes all go through that single owner, which serialises them as the Edge store does in-process.

Errors keep their meaning across the wire: a refusal (a dimension that does not match) is a RagError with the
owner's message, an owner that cannot be reached or fails is a TransientError, so jobs retry as they would on a
Qdrant server that is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import httpx
from pydantic import BaseModel

from kernel.errors import RagError, TransientError
from kernel.filters import FieldType, FilterSpec
from kernel.protocols import SearchPlan
from kernel.types import ChunkRecord, ChunkSelector, ChunkState, Hit, SparseVector
from retrieval.stores import wire

M = TypeVar("M", bound=BaseModel)


class RemoteStore:
    def __init__(self, url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._url = url.rstrip("/")
        # No retries here: a failed call is a TransientError and the job (or the caller) decides what to do.
        self._client = httpx.AsyncClient(base_url=self._url + wire.PREFIX, timeout=timeout, transport=transport)

    async def _post(self, path: str, body: BaseModel | None = None) -> httpx.Response:
        content = b"{}" if body is None else body.model_dump_json().encode()
        try:
            resp = await self._client.post(path, content=content, headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise TransientError(f"the vector store owner at {self._url} is unavailable: {exc!r}") from exc
        if resp.status_code >= 400:
            raise _error(self._url, resp)
        return resp

    async def _ask(self, path: str, body: BaseModel, result: type[M]) -> M:
        return result.model_validate_json((await self._post(path, body)).content)

    async def ensure(self, dim: int) -> None:
        await self._post("/ensure", wire.EnsureBody(dim=dim))

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        if records:
            await self._post("/upsert", wire.UpsertBody(records=list(records)))

    async def set_state(self, selector: ChunkSelector, state: ChunkState) -> None:
        await self._post("/set_state", wire.SetStateBody(selector=selector, state=state))

    async def delete(self, selector: ChunkSelector) -> None:
        await self._post("/delete", wire.SelectorBody(selector=selector))

    async def drop_generations(self, collection: str, keep: int) -> None:
        await self._post("/drop_generations", wire.DropGenerationsBody(collection=collection, keep=keep))

    async def count(self, selector: ChunkSelector) -> int:
        return (await self._ask("/count", wire.SelectorBody(selector=selector), wire.CountResult)).count

    async def ensure_field_index(self, field: str, type_: FieldType) -> None:
        await self._post("/field_index", wire.FieldIndexBody(field=field, type=type_))

    async def dense_by_text(self, model_id: str, text_sha256: Sequence[str]) -> dict[str, list[float]]:
        if not text_sha256:
            return {}
        body = wire.DenseByTextBody(model_id=model_id, text_sha256=list(text_sha256))
        return (await self._ask("/dense_by_text", body, wire.DenseByTextResult)).vectors

    async def sample_dense(self, selector: ChunkSelector, limit: int) -> list[list[float]]:
        body = wire.SampleBody(selector=selector, limit=limit)
        return (await self._ask("/sample_dense", body, wire.SampleResult)).vectors

    async def search(self, dense: list[float], sparse: SparseVector, spec: FilterSpec, plan: SearchPlan) -> list[Hit]:
        body = wire.SearchBody(dense=dense, sparse=sparse, spec=spec, plan=wire.PlanBody.of(plan))
        return (await self._ask("/search", body, wire.SearchResult)).hits

    async def optimize(self) -> None:
        """Ask the owner to build the HNSW index (Edge builds it only when asked)."""
        await self._post("/optimize")

    async def ping(self) -> None:
        await self._post("/ping")

    async def close(self) -> None:
        """Closes this client's connections; the owner and its store stay up for the other processes."""
        await self._client.aclose()


def _error(url: str, resp: httpx.Response) -> RagError:
    try:
        body = wire.StoreError.model_validate_json(resp.content)
    except ValueError:
        body = wire.StoreError(kind="unavailable", error=resp.text[:500])
    if resp.status_code == 409 and body.kind == "invalid":
        return RagError(body.error)
    if resp.status_code >= 500:
        return TransientError(f"the vector store owner at {url} failed ({resp.status_code}): {body.error}")
    # A 404 or 422 here is a client and owner of different releases, or not a store owner at all.
    return RagError(
        f"the vector store owner at {url} refused a call ({resp.status_code}): {body.error}; check that "
        "RAG_QDRANT__STORE_URL points at a `rag store` of the same release"
    )

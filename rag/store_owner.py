"""The store owner (`rag store`): one process that opens the embedded Qdrant Edge store and serves it to others.

Qdrant Edge locks its folder to one process, so API and worker processes that must be free to die (a split
deployment on one machine, extra ingestion workers) cannot each open it. This process opens it once and serves the
VectorStore protocol over HTTP on loopback (`retrieval.stores.wire` bodies, `retrieval.stores.remote.RemoteStore` is
the client). Every write goes through this single owner, which serialises writes the way the Edge store already
does in-process; reads run in threads beside them.

It serves whoever reaches its port, without keys: keep it on loopback (the default) or a private network. A
production cluster uses a Qdrant server instead (RAG_QDRANT__URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from kernel.errors import RagError, TransientError
from kernel.protocols import VectorStore
from retrieval.stores import wire

log = logging.getLogger(__name__)


class _NotOpen(RagError):
    pass


class StoreOwner:
    """The served store and whether a client has opened it (Edge needs the dimension, which only clients know)."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self.dim: int | None = None
        # Two processes starting at once both call ensure: one opens or creates the folder, the other checks it.
        self._ensure_lock = asyncio.Lock()

    async def ensure(self, dim: int) -> None:
        async with self._ensure_lock:
            await self.store.ensure(dim)
            self.dim = dim

    def opened(self) -> VectorStore:
        if self.dim is None:
            raise _NotOpen("the store owner has no open store yet: a client calls ensure(dim) first")
        return self.store


def _router(owner: StoreOwner) -> APIRouter:
    router = APIRouter(prefix=wire.PREFIX)

    @router.post("/ensure")
    async def ensure(body: wire.EnsureBody) -> dict[str, str]:
        await owner.ensure(body.dim)
        return {"status": "ok"}

    @router.post("/upsert")
    async def upsert(body: wire.UpsertBody) -> dict[str, str]:
        await owner.opened().upsert(body.records)
        return {"status": "ok"}

    @router.post("/set_state")
    async def set_state(body: wire.SetStateBody) -> dict[str, str]:
        await owner.opened().set_state(body.selector, body.state)
        return {"status": "ok"}

    @router.post("/delete")
    async def delete(body: wire.SelectorBody) -> dict[str, str]:
        await owner.opened().delete(body.selector)
        return {"status": "ok"}

    @router.post("/drop_generations")
    async def drop_generations(body: wire.DropGenerationsBody) -> dict[str, str]:
        await owner.opened().drop_generations(body.collection, body.keep)
        return {"status": "ok"}

    @router.post("/count")
    async def count(body: wire.SelectorBody) -> wire.CountResult:
        return wire.CountResult(count=await owner.opened().count(body.selector))

    @router.post("/field_index")
    async def field_index(body: wire.FieldIndexBody) -> dict[str, str]:
        await owner.opened().ensure_field_index(body.field, body.type)
        return {"status": "ok"}

    @router.post("/dense_by_text")
    async def dense_by_text(body: wire.DenseByTextBody) -> wire.DenseByTextResult:
        return wire.DenseByTextResult(vectors=await owner.opened().dense_by_text(body.model_id, body.text_sha256))

    @router.post("/sample_dense")
    async def sample_dense(body: wire.SampleBody) -> wire.SampleResult:
        return wire.SampleResult(vectors=await owner.opened().sample_dense(body.selector, body.limit))

    @router.post("/search")
    async def search(body: wire.SearchBody) -> wire.SearchResult:
        hits = await owner.opened().search(body.dense, body.sparse, body.spec, body.plan.plan())
        return wire.SearchResult(hits=hits)

    @router.post("/optimize")
    async def optimize() -> dict[str, str]:
        optimize_: Callable[[], Awaitable[None]] | None = getattr(owner.opened(), "optimize", None)
        if optimize_ is not None:
            await optimize_()
        return {"status": "ok"}

    @router.post("/ping")
    async def ping() -> dict[str, str]:
        if owner.dim is not None:  # up, with nothing opened yet, is up
            await owner.store.ping()
        return {"status": "ok"}

    return router


def create_store_app(store: VectorStore) -> FastAPI:
    owner = StoreOwner(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await store.close()  # flushes: a stopped owner leaves a store the next one opens cleanly

    app = FastAPI(title="RAG vector store owner", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(_router(owner))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "open": owner.dim is not None}

    @app.exception_handler(RagError)
    async def refused(request: Request, exc: RagError) -> JSONResponse:
        if isinstance(exc, TransientError):
            return _reply(503, "unavailable", exc.message)
        return _reply(409, "invalid", exc.message)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("store call %s failed", request.url.path)
        return _reply(500, "unavailable", f"{type(exc).__name__}: {exc}")

    return app


def _reply(status: int, kind: str, error: str) -> JSONResponse:
    return JSONResponse(wire.StoreError(kind=kind, error=error).model_dump(), status_code=status)

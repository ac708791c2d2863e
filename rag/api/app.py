"""The FastAPI application. `create_app()` builds it; nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from kernel.privacy import enforce_offline
from kernel.settings import Settings, load_settings
from rag.api import errors
from rag.api.audit import add_audit
from rag.api.limits import RequestLimits
from rag.api.routes import answers, audit, collections, documents, ingest, keys, ready, scores, search, signin
from rag.api.routes import metrics as metrics_route
from rag.api.routes import ops as ops_routes
from rag.api.routes import prompts as prompt_routes
from rag.api.routes import replay as replay_routes
from rag.api.routes import usage as usage_routes
from rag.api.schema import Health, openapi_schema
from rag.observability.middleware import ObservabilityMiddleware
from rag.security import Caller, check_open_mode
from rag.services import Services, build_services
from rag.variants import audit_changes as audit_variant_changes

log = logging.getLogger(__name__)

ServicesFactory = Callable[[Settings], Awaitable[Services]]


def create_app(
    settings: Settings | None = None,
    *,
    embedded_worker: bool = True,
    services_factory: ServicesFactory = build_services,
) -> FastAPI:
    """`embedded_worker`: run the arq worker inside this process (embedded mode, `rag serve`)."""
    enforce_offline()
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = await services_factory(settings)
        try:
            open_mode = await check_open_mode(svc)
            await audit_variant_changes(settings, svc.audit)  # refuses a variant naming a missing prompt
            limits = RequestLimits(settings.limits, svc.redis_url)
        except BaseException:
            await svc.close()
            raise
        if open_mode:
            log.warning("single-user mode: no API key exists, every request on %s runs as admin", settings.host)
        worker_task: asyncio.Task[Any] | None = None
        worker = None
        if embedded_worker:
            from rag.worker import make_worker

            worker = make_worker(svc, handle_signals=False)
            worker_task = asyncio.create_task(worker.async_run(), name="embedded-arq-worker")
        app.state.limits = limits
        app.state.services = svc
        app.state.worker_task = worker_task
        try:
            yield
        finally:
            app.state.services = None
            if worker is not None and worker_task is not None:
                # Stop taking jobs, then interrupt running ones before their services close: an interrupted
                # job is still "running" in the catalog and is re-enqueued at the next start.
                worker_task.cancel()
                running = [t for t in worker.tasks.values() if not t.done()]
                for task in running:
                    task.cancel()
                await asyncio.gather(worker_task, *running, return_exceptions=True)
            await limits.close()
            await svc.close()

    app = FastAPI(
        title="RAG service",
        version="0.1.0",
        description="Grounded, cited answers over document collections.",
        lifespan=lifespan,
        # Served below behind the same key check as every route.
        docs_url=None,
        openapi_url=None,
    )
    app.state.services = None
    app.state.settings = settings
    add_audit(app, settings.audit)
    # Added last, so outermost: its request id, span and timing cover the audit and every route.
    app.add_middleware(ObservabilityMiddleware)
    app.include_router(collections.router)
    app.include_router(ingest.router)
    app.include_router(documents.router)
    app.include_router(search.router)
    app.include_router(answers.router)
    app.include_router(scores.router)
    app.include_router(keys.router)
    app.include_router(audit.router)
    app.include_router(signin.router)
    app.include_router(metrics_route.router)
    app.include_router(prompt_routes.router)
    app.include_router(replay_routes.router)
    app.include_router(usage_routes.router)
    app.include_router(ops_routes.router)
    # Readiness, open like /healthz (probes carry no key).
    app.include_router(ready.router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(caller: Caller) -> JSONResponse:
        # While no key exists every caller is the open-mode admin (no key id), and the schema says a key is optional.
        return JSONResponse(openapi_schema(app, settings, keyed=caller.key_id is not None))

    @app.get("/docs", include_in_schema=False)
    async def docs(_caller: Caller) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    @app.get("/healthz", tags=["ops"], response_model=Health, responses={503: {"model": Health}})
    async def healthz(request: Request) -> JSONResponse:
        svc: Services | None = request.app.state.services
        if svc is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        checks: dict[str, str] = {}
        for name, probe in (
            ("catalog", svc.catalog.ping),
            ("queue", svc.queue.ping),
            ("store", svc.store.ping),
        ):
            try:
                await probe()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {exc}"
        task = request.app.state.worker_task
        if task is not None:
            checks["worker"] = "ok" if not task.done() else "stopped"
        ok = all(v == "ok" for v in checks.values())
        # Liveness for probes, open like them: it names no collection, document or key.
        try:
            keyed = await svc.keys.any_key()
        except Exception:
            keyed = None  # the catalog check above says why
        mode = {True: "api-keys", False: "single-user (no API key exists; loopback only)", None: "unknown"}[keyed]
        body = {"status": "ok" if ok else "degraded", "mode": mode, "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    errors.install(app)
    return app

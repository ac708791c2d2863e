"""`GET /readyz`: ready only while the queue, the database, the vector store and a live worker answer; otherwise 503
naming what is down, while the liveness probe `/healthz` still answers. Open to probes without a key, and it says
nothing about where the backends are."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from kernel.settings import load_settings
from rag.api.app import create_app
from rag.heartbeat import heartbeat_prefix, live_workers
from rag.worker import make_worker
from tests.support.polling import poll
from tests.support.service import BASE_URL, RunningService

CHECKS = {"queue", "database", "vector_store", "worker"}
# A Redis database of its own on the machine's server (the queue contract tests use 15).
REDIS_URL = "redis://127.0.0.1:6379/14"


async def _ready(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/readyz")


async def test_the_session_service_is_ready(client: httpx.AsyncClient) -> None:
    resp = await poll(lambda: _ready(client), lambda r: r.status_code == 200, what="the service to be ready")
    body = resp.json()
    assert body == {"status": "ready", "checks": dict.fromkeys(CHECKS, "ok"), "failing": []}


async def test_ready_without_a_key_once_keys_exist(own_service: Callable[..., Awaitable[RunningService]]) -> None:
    running = await own_service()
    made = await running.client.post("/v1/keys", json={"role": "admin", "collections": ["*"]})
    assert made.status_code == 201, made.text
    assert (await running.client.get("/v1/collections")).status_code == 401  # keys are required now
    resp = await poll(lambda: _ready(running.client), lambda r: r.status_code == 200, what="readiness")
    assert resp.json()["status"] == "ready"


async def test_queue_down_is_named_and_the_service_stays_live(
    own_service: Callable[..., Awaitable[RunningService]],
) -> None:
    running = await own_service()
    await poll(lambda: _ready(running.client), lambda r: r.status_code == 200, what="readiness")
    valkey = running.services._valkey
    assert valkey is not None, "the service was to run its embedded Valkey"
    socket_path = running.services.redis_url
    await valkey.stop()  # the queue's server goes away under the running service

    resp = await running.client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "not ready"
    assert {"queue", "worker"} <= set(body["failing"]), body
    assert body["checks"]["database"] == "ok" and body["checks"]["vector_store"] == "ok"
    # Open to anyone who can reach it: where the backends are, or what they said, stays in the log.
    assert socket_path.removeprefix("unix://") not in resp.text and "Error" not in resp.text
    live = await running.client.get("/healthz")
    assert live.status_code in (200, 503) and live.json()["status"] in ("ok", "degraded")


async def test_a_stopped_embedded_worker_is_named(own_service: Callable[..., Awaitable[RunningService]]) -> None:
    running = await own_service()
    await poll(lambda: _ready(running.client), lambda r: r.status_code == 200, what="readiness")
    task: asyncio.Task[Any] = running.app.state.worker_task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    resp = await running.client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["failing"] == ["worker"]
    assert resp.json()["checks"]["worker"] == "stopped"
    assert (await running.client.get("/healthz")).status_code in (200, 503)


@asynccontextmanager
async def _api_alone(data_dir: Path, queue_name: str, heartbeat_seconds: float) -> AsyncIterator[RunningService]:
    """The API without a worker of its own (as `rag api`), on the machine's Redis: workers come and go beside it."""
    settings = load_settings(
        data_dir=data_dir,
        database={"url": None},
        qdrant={"url": None},
        redis={"url": REDIS_URL, "queue_name": queue_name},
        ingestion={"heartbeat_seconds": heartbeat_seconds},
    )
    app = create_app(settings, embedded_worker=False)
    async with LifespanManager(app, startup_timeout=300, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=60) as client:
            yield RunningService(client, app.state.services, app)


async def test_readiness_follows_the_worker_heartbeats(tmp_path: Path) -> None:
    """Split mode: the API is ready while some worker's heartbeat is fresh; a worker that stops without cleaning up
    (killed) is counted out when its key expires, one that stops cleanly at once."""
    queue_name = f"rag:test:ready:{uuid.uuid4().hex[:12]}"
    async with _api_alone(tmp_path / "api", queue_name, heartbeat_seconds=0.5) as api:
        resp = await _ready(api.client)
        assert resp.status_code == 503 and resp.json()["failing"] == ["worker"]
        assert resp.json()["checks"]["worker"] == "no live worker"

        # A worker on the same queue (here in this process, on the API's services; `rag worker` runs the same).
        worker = make_worker(api.services, handle_signals=False)
        run = asyncio.create_task(worker.async_run())
        await poll(lambda: _ready(api.client), lambda r: r.status_code == 200, what="the worker's first heartbeat")
        pool = api.services.queue.pool
        keys = [k async for k in pool.scan_iter(match=heartbeat_prefix(queue_name) + "*")]
        assert len(keys) == 1 and 0 < await pool.pttl(keys[0]) <= 1500

        run.cancel()  # as if killed: no clean-up, the key is left to expire
        await asyncio.gather(run, return_exceptions=True)
        resp = await poll(lambda: _ready(api.client), lambda r: r.status_code == 503, what="the heartbeat to expire")
        assert resp.json()["failing"] == ["worker"]

        # A clean stop (arq's close, as `rag worker` does on SIGTERM) removes the key at once.
        worker = make_worker(api.services, handle_signals=False)
        run = asyncio.create_task(worker.async_run())
        await poll(lambda: live_workers(pool, queue_name), lambda n: n == 1, what="the second worker's heartbeat")
        worker.handle_sig(signal.SIGTERM)  # arq's own stop: cancel the main task...
        await asyncio.gather(run, return_exceptions=True)
        assert worker.on_shutdown is not None
        await worker.on_shutdown(worker.ctx)  # ...and its shutdown hook (its close() would also close the API's pool)
        assert await live_workers(pool, queue_name) == 0

"""What every benchmark needs: the real service in-process and a way to wait for a job."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kernel.settings import Settings


def pct(values: list[float], p: float) -> float:
    """The value at quantile `p` (0-1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def wait_job(client: httpx.AsyncClient, job_id: str, interval: float = 0.05) -> dict:
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def local_service(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The embedded service (API, worker, Valkey, SQLite, Qdrant Edge, model) behind an in-process client."""
    from asgi_lifespan import LifespanManager

    from rag.api.app import create_app

    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=300, shutdown_timeout=120) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            yield client, app


async def indexed_service(
    stack: contextlib.AsyncExitStack, name: str, rows: list[dict], **settings: Any
) -> httpx.AsyncClient:
    """A service on a temporary data directory (entered on `stack`), scoring and rate limits off, with `rows`
    imported into the collection "scifact"; `settings` are more settings sections."""
    from bench.scifact import import_body
    from kernel.settings import load_settings

    data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-")))
    cfg = load_settings(data_dir=data, scoring={"enabled": False}, limits={"rate": "off"}, **settings)
    client, _ = await stack.enter_async_context(local_service(cfg))
    (await client.post("/v1/collections", json={"name": "scifact"})).raise_for_status()
    res = await client.post("/v1/collections/scifact/documents/import", content=import_body(rows))
    job = await wait_job(client, res.json()["job_id"], interval=0.5)
    print(f"{name}: indexed {len(rows)} documents ({job['status']}, {job['total']} chunks)")
    return client

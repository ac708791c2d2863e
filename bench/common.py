"""What every benchmark needs: the real service in-process and a way to wait for a job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

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

"""Shared fixtures: a real service (Valkey, SQLite, Qdrant Edge, MiniLM) in the test process."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from kernel.privacy import enforce_offline

enforce_offline()

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAG_SHARED_DATA", REPO.parent / "shared" / "data"))
DOCS = SHARED / "docs"


async def wait_job(client: httpx.AsyncClient, job_id: str, limit_s: float = 600.0) -> dict:
    """Poll a job until it finishes. The limit only guards against a hang; it asserts nothing about speed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        resp = await client.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job = resp.json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} did not finish: {job}")
        await asyncio.sleep(0.1)


def wait_job_sync(url: str, job_id: str, until: tuple[str, ...] = ("succeeded", "failed", "cancelled")) -> dict:
    """Poll a job of a service process until its status is one of `until`. The limit only guards against a hang."""
    import time

    deadline = time.monotonic() + 600
    while (job := httpx.get(f"{url}/v1/jobs/{job_id}").json())["status"] not in until:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def import_records_sync(url: str, collection: str, records: list[dict]) -> None:
    """Create a collection in a service process and import JSONL records into it, to the end of the job."""
    httpx.post(url + "/v1/collections", json={"name": collection}).raise_for_status()
    body = "\n".join(json.dumps(r) for r in records)
    resp = httpx.post(f"{url}/v1/collections/{collection}/documents/import", content=body, timeout=60)
    assert resp.status_code == 202, resp.text
    assert wait_job_sync(url, resp.json()["job_id"])["status"] == "succeeded"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rag-data")


@pytest.fixture(scope="session")
async def service(data_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    from kernel.settings import load_settings
    from rag.api.app import create_app

    settings = load_settings(data_dir=data_dir)
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=300, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rag.test", timeout=120) as client:
            yield client, app


@pytest.fixture(scope="session")
def client(service: tuple[httpx.AsyncClient, object]) -> httpx.AsyncClient:
    return service[0]


@pytest.fixture(scope="session")
def services(service: tuple[httpx.AsyncClient, object]):  # type: ignore[no-untyped-def]
    return service[1].state.services  # type: ignore[attr-defined]


_counter = iter(range(1_000_000))


@pytest.fixture
async def collection(client: httpx.AsyncClient, request: pytest.FixtureRequest) -> str:
    name = f"t{next(_counter)}-{request.node.name.lower()}"[:60].replace("[", "-").replace("]", "")
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    resp = await client.post("/v1/collections", json={"name": name})
    assert resp.status_code == 201, resp.text
    return name


@pytest.fixture(scope="session")
def netguard():  # type: ignore[no-untyped-def]
    from tests.netguard import NetGuard

    # Audit hooks cannot be removed, so one guard serves the session and records only while watching.
    return NetGuard()

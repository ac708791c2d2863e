"""Starting a service of a test's own: in this process (`start_service`) or as a `rag serve` subprocess
(`ServiceProcess`, for tests that kill it or drive the CLI against it).

Either way the service shares nothing with any other: its own data directory (SQLite, Qdrant Edge, blobs) and its
own queue; the server implementations of the backends have their contract tests (tests/contracts). A test that needs
different settings, or a stand-in for a component that cannot fail on demand, starts one of these instead of changing
the session's service, whose embedded worker is meanwhile running other tests' jobs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from kernel.records import AuditQuery
from kernel.settings import Settings, load_settings
from rag.api.app import create_app
from rag.services import Services, build_services
from tests.support.polling import poll_sync, wait_job, wait_job_sync
from tests.support.ports import free_port

BASE_URL = "http://rag.test"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SentRequests:
    """Every state-changing request a test client sent, as (method, path): what the audit log must account for."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    async def __call__(self, request: httpx.Request) -> None:
        if request.method in STATE_CHANGING:
            self.items.append((request.method, request.url.path[:512]))

    async def unaudited(self, services: Services) -> list[tuple[str, str]]:
        """The sent requests with no audit entry of the same method and path (counted: two sends need two)."""
        audited: Counter[tuple[str, str]] = Counter()
        after = 0
        while batch := await services.audit.query(AuditQuery(after_seq=after, limit=5000)):
            audited.update((e.method, e.path) for e in batch)
            after = batch[-1].seq
        return list((Counter(self.items) - audited).elements())


@dataclass
class RunningService:
    client: httpx.AsyncClient
    services: Services
    app: FastAPI
    sent: SentRequests = field(default_factory=SentRequests)

    @property
    def settings(self) -> Settings:
        return self.services.settings


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@asynccontextmanager
async def start_service(
    data_dir: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    prepare: Callable[[Services], None] | None = None,
) -> AsyncIterator[RunningService]:
    """The app with its embedded worker, on `data_dir` (which may hold an earlier service's data: a restart).

    `overrides`: settings, nested like the settings model, e.g. `{"ingestion": {"max_tries": 2}}`.
    `prepare`: called with the built services before the worker starts, to put a stand-in in place (a flaky vector
    store in the indexer, say); it changes only this service.
    """
    async with AsyncExitStack() as stack:
        # All its state lives in its data directory, whatever the environment points at: SQLite and Qdrant Edge there
        # (a restart on the same directory finds the same data). A Redis server from the environment may be shared:
        # a queue of its own keeps other services' workers off its jobs.
        isolation = {
            "data_dir": data_dir,
            "database": {"url": None},
            "qdrant": {"url": None},
            "redis": {"queue_name": f"rag:test:{uuid.uuid4().hex[:12]}"},
            # Tests ask the same questions again to see what the pipeline does; the answer cache's tests switch it on.
            "cache": {"answers": False},
        }
        settings = load_settings(**_merge(isolation, overrides or {}))

        async def services_factory(s: Settings) -> Services:
            svc = await build_services(s)
            if prepare is not None:
                prepare(svc)
            return svc

        app = create_app(settings, services_factory=services_factory)
        manager = await stack.enter_async_context(LifespanManager(app, startup_timeout=300, shutdown_timeout=60))
        transport = httpx.ASGITransport(app=manager.app)
        sent = SentRequests()
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=120, event_hooks={"request": [sent]})
        )
        yield RunningService(client, app.state.services, app, sent)


async def create_collection(client: httpx.AsyncClient, name: str, **body: Any) -> str:
    resp = await client.post("/v1/collections", json={"name": name, **body})
    assert resp.status_code == 201, resp.text
    return name


async def import_records(client: httpx.AsyncClient, collection: str, records: list[dict]) -> dict:
    """Import JSONL records into an existing collection, to the end of the job, which must succeed."""
    body = "\n".join(json.dumps(r) for r in records).encode()
    resp = await client.post(f"/v1/collections/{collection}/documents/import", content=body)
    assert resp.status_code == 202, resp.text
    job = await wait_job(client, resp.json()["job_id"])
    assert job["status"] == "succeeded", job
    return job


def import_records_sync(url: str, collection: str, records: list[dict]) -> None:
    """Create a collection in a service process and import JSONL records into it, to the end of the job."""
    httpx.post(url + "/v1/collections", json={"name": collection}).raise_for_status()
    body = "\n".join(json.dumps(r) for r in records)
    resp = httpx.post(f"{url}/v1/collections/{collection}/documents/import", content=body, timeout=60)
    assert resp.status_code == 202, resp.text
    assert wait_job_sync(url, resp.json()["job_id"])["status"] == "succeeded"


# Backend settings a `rag serve` subprocess must not inherit: it runs the embedded stack (its own Valkey, SQLite and
# Qdrant Edge) in its data directory, which is what the tests that kill it check.
_SHARED_BACKENDS = ("RAG_DATA_DIR", "RAG_REDIS__", "RAG_DATABASE__", "RAG_QDRANT__")


class ServiceProcess:
    """`rag serve` on a free loopback port with its own data directory; `env` adds settings (RAG_... variables)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.extra_env = data_dir, env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"service-{self.port}.log"

    def start(self) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SHARED_BACKENDS)}
        env = {**inherited, "RAG_DATA_DIR": str(self.data_dir), "RAG_LOG_LEVEL": "warning", **self.extra_env}
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rag", "serve", "--port", str(self.port)], env=env, stdout=log, stderr=log
            )
        poll_sync(self._healthy, bool, what=f"the service at {self.url} to be healthy", every_s=0.2)

    def _healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"the service exited at start:\n{self.log_tail()}"
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

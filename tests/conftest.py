"""Shared fixtures: a real service (Valkey, SQLite, Qdrant Edge, MiniLM) in the test process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from kernel.privacy import enforce_offline

# Before anything imports unstructured, transformers or ragas: the service modules are imported in the fixtures.
enforce_offline()

if TYPE_CHECKING:
    from rag.services import Services
    from tests.support.service import RunningService

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAG_SHARED_DATA", REPO.parent / "shared" / "data"))
DOCS = SHARED / "docs"


@pytest.fixture(scope="session")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningService]:
    """The service most tests share. Read it, add collections to it; never change its settings or components (a
    test that needs that starts its own with `own_service`): its worker is running other tests' jobs meanwhile."""
    from tests.support.service import start_service

    async with start_service(tmp_path_factory.mktemp("rag-data")) as running:
        yield running
        # The whole run's state-changing requests to this service, each with its audit entry (issue 10): a route that
        # escapes the audit middleware fails the run here, naming the requests.
        missing = await running.sent.unaudited(running.services)
        assert not missing, f"{len(missing)} state-changing requests have no audit entry: {missing[:20]}"
        check = await running.services.audit.verify()
        assert check.broken_at is None, f"the audit chain is broken after the whole run: {check}"


@pytest.fixture(scope="session")
def client(service: RunningService) -> httpx.AsyncClient:
    return service.client


@pytest.fixture(scope="session")
def services(service: RunningService) -> Services:
    return service.services


@pytest.fixture
async def own_service(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[RunningService]]]:
    """Starts services of this test's own: `svc = await own_service({"ingestion": {"max_tries": 2}})`; each is
    closed when the test ends. Arguments as for `tests.support.service.start_service`."""
    from tests.support.service import start_service

    async with AsyncExitStack() as stack:
        count = iter(range(1_000))

        async def start(
            overrides: Mapping[str, Any] | None = None, *, prepare: Callable[[Services], None] | None = None
        ) -> RunningService:
            context = start_service(tmp_path / f"service-{next(count)}", overrides, prepare=prepare)
            return await stack.enter_async_context(context)

        yield start


_counter = iter(range(1_000_000))


@pytest.fixture
async def collection(client: httpx.AsyncClient, request: pytest.FixtureRequest) -> str:
    name = f"t{next(_counter)}-{request.node.name.lower()}"[:60].replace("[", "-").replace("]", "")
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    resp = await client.post("/v1/collections", json={"name": name})
    assert resp.status_code == 201, resp.text
    return name


@pytest.fixture(scope="session")
def netguard():
    from tests.netguard import NetGuard

    # Audit hooks cannot be removed, so one guard serves the session and records only while watching.
    return NetGuard()

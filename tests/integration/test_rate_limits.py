"""Rate limits per key (per client address in single-user mode) and the cap on /v1/evaluate, on a real service:
a burst over the limit gets 429s with Retry-After while another key keeps being answered, counted in the process
or in the service's own Valkey; an evaluation over the cap gets 429, or waits its bounded turn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from kernel.ops_settings import LimitsSettings
from kernel.settings import load_settings
from rag.api.app import create_app
from rag.api.limits import RateLimited, RequestLimits
from rag.cli_support import service_transport

RATE = 10  # per hour: a test never spans the window
ITEM = {"question": "How tall?", "answer": "It is 330 metres tall.", "contexts": ["The tower is 330 metres tall."]}


@dataclass
class Limited:
    client: httpx.AsyncClient
    app: FastAPI
    keys: dict[str, dict[str, str]]  # who -> headers


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module", params=["memory", "redis"])
async def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Limited]:
    """`redis`: counted in the Valkey server the service starts for its job queue."""
    limits = {"rate": f"{RATE}/hour", "storage": request.param, "evaluate_concurrency": 1}
    settings = load_settings(data_dir=tmp_path_factory.mktemp(f"limits-{request.param}"), limits=limits)
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=300, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rag.test", timeout=120) as client:
            first = await client.post("/v1/keys", json={"role": "admin", "collections": ["*"]})
            assert first.status_code == 201, first.text
            keys = {"admin": bearer(first.json()["key"])}
            for who, role in (("a", "reader"), ("b", "reader"), ("analyst", "analyst")):
                made = await client.post("/v1/keys", json={"role": role, "collections": ["*"]}, headers=keys["admin"])
                assert made.status_code == 201, made.text
                keys[who] = bearer(made.json()["key"])
            yield Limited(client, app, keys)


async def test_a_burst_over_the_rate_gets_429_while_another_key_is_answered(limited: Limited) -> None:
    c, keys = limited.client, limited.keys
    statuses = [(await c.get("/v1/collections", headers=keys["a"])).status_code for _ in range(RATE + 5)]
    assert statuses == [200] * RATE + [429] * 5
    refused = await c.get("/v1/collections", headers=keys["a"])
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    message = refused.json()["error"]
    assert f"at most {RATE} requests per hour" in message and "RAG_LIMITS__RATE" in message, message
    assert (await c.get("/v1/collections", headers=keys["b"])).status_code == 200
    limits: RequestLimits = limited.app.state.limits
    if limits.settings.storage == "redis":
        # Another API process on the same Valkey sees the same count: key a is over its rate there too.
        services = limited.app.state.services
        other_process = RequestLimits(limits.settings, services.redis_url)
        key_id = keys["a"]["Authorization"].split("_")[1]
        try:
            with pytest.raises(RateLimited):
                await other_process.hit(f"key:{key_id}")
        finally:
            await other_process.close()
    # Refused requests are audited as refused, under the key that made them.
    audit = await c.get("/v1/audit", params={"outcome": "refused"}, headers=keys["admin"])
    assert {e["status"] for e in audit.json()["entries"]} == {429}


async def test_an_evaluation_over_the_cap_gets_429_then_runs_when_a_turn_frees(limited: Limited) -> None:
    c, analyst = limited.client, limited.keys["analyst"]
    cap: RequestLimits = limited.app.state.limits
    await cap.evaluations.acquire()  # the one turn, held as a running evaluation would hold it
    try:
        busy = await c.post("/v1/evaluate", json=ITEM, headers=analyst)
        assert busy.status_code == 429, busy.text
        assert "RAG_LIMITS__EVALUATE_CONCURRENCY" in busy.json()["error"] and busy.headers["retry-after"]
    finally:
        cap.evaluations.release()
    done = await c.post("/v1/evaluate", json=ITEM, headers=analyst)
    assert done.status_code == 200, done.text
    assert done.json()["faithfulness"]["value"] is not None


async def test_an_evaluation_waits_its_bounded_turn(limited: Limited, monkeypatch: pytest.MonkeyPatch) -> None:
    c, analyst = limited.client, limited.keys["analyst"]
    cap: RequestLimits = limited.app.state.limits
    monkeypatch.setattr(cap.settings, "evaluate_wait_seconds", 300.0)  # a guard against a hang
    await cap.evaluations.acquire()
    waiting = asyncio.create_task(c.post("/v1/evaluate", json=ITEM, headers=analyst))
    for _ in range(30_000):  # until it queues behind the held turn; the bound only guards against a hang
        if cap.evaluations.statistics().tasks_waiting:
            break
        await asyncio.sleep(0.01)
    assert cap.evaluations.statistics().tasks_waiting == 1
    cap.evaluations.release()
    assert (await waiting).status_code == 200
    monkeypatch.setattr(cap.settings, "evaluate_wait_seconds", 0.01)
    await cap.evaluations.acquire()
    try:
        assert (await c.post("/v1/evaluate", json=ITEM, headers=analyst)).status_code == 429
    finally:
        cap.evaluations.release()


@contextlib.contextmanager
def rate(app: Any, value: str) -> Iterator[None]:
    """The shared single-user service with another rate for a while. (Not monkeypatch: on Starlette's State its
    undo deletes the attribute instead of restoring it.)"""
    saved = app.state.limits
    app.state.limits = RequestLimits(LimitsSettings(rate=value))
    try:
        yield
    finally:
        app.state.limits = saved


async def test_in_single_user_mode_the_rate_is_counted_per_client_address(service) -> None:
    client, app = service.client, service.app
    other = httpx.ASGITransport(app=app, client=("127.0.0.2", 50000))
    with rate(app, "3/hour"):
        assert [(await client.get("/v1/collections")).status_code for _ in range(4)] == [200, 200, 200, 429]
        async with httpx.AsyncClient(transport=other, base_url="http://rag.test") as neighbour:
            assert (await neighbour.get("/v1/collections")).status_code == 200


async def test_the_rag_commands_wait_out_a_429(service) -> None:
    """`rag ingest`, `rag ask` and `rag eval run` poll and ask in bursts; over the rate they wait, not fail."""
    app = service.app
    transport = service_transport(httpx.ASGITransport(app=app, client=("127.0.0.3", 50000)))
    with rate(app, "2/second"):
        async with httpx.AsyncClient(transport=transport, base_url="http://rag.test") as polite:
            before = await polite.get("/v1/audit", params={"outcome": "refused", "limit": 10_000})
            assert [(await polite.get("/v1/collections")).status_code for _ in range(5)] == [200] * 5
            after = await polite.get("/v1/audit", params={"outcome": "refused", "limit": 10_000})
        refused = len(after.json()["entries"]) - len(before.json()["entries"])
        assert refused >= 1, "the burst went over 2 per second, so some requests were refused and sent again"

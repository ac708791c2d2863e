"""Drift indicators and alerts on real questions: a service over CLAP-NQ passages is asked CLAP-NQ questions for
three days, then SciFact claims (another topic, another form) on the fourth. The fourth day raises the query-drift
alerts, which reach a real HTTP server on loopback once; the stable days raise none.

Days are made by moving the answers' timestamps back in the service's own database: the indicators are computed
per UTC day from what is stored, so this is what a slower test would get by waiting.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
import sqlalchemy as sa

from evals.shared_data import clapnq_rows, scifact_queries
from rag.storage.schema import answers
from rag.worker import drift_alerts
from tests.support.loopback import send, serve, shut
from tests.support.service import RunningService, create_collection, import_records

pytestmark = pytest.mark.slow

PER_DAY = 12
DAYS_BACK = 2  # stable days before today


class Hooks:
    """A webhook receiver on 127.0.0.1: every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hooks.lock:
                    hooks.bodies.append(body)
                send(self, 204, "text/plain", b"")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd, self.thread = serve(Handler, "webhook")
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    shut(h.httpd, h.thread)


@dataclass
class World:
    svc: RunningService
    today: str
    stable_day: str


def _records(rows: list[dict]) -> list[dict]:
    return [{"id": f"nq-{r['id']}", "title": r["passages"][0]["title"], "text": r["passages"][0]["text"]} for r in rows]


@pytest.fixture
async def world(own_service, hooks: Hooks) -> World:
    svc = await own_service({"drift": {"webhook_url": hooks.url, "enabled": False}, "scoring": {"enabled": False}})
    rows = [r for r in clapnq_rows("train") if r["answerable"]][: PER_DAY * DAYS_BACK + PER_DAY]
    await create_collection(svc.client, "nq")
    await import_records(svc.client, "nq", _records(rows))
    claims = [q["text"] for q in scifact_queries()][:PER_DAY]
    plan: list[tuple[int, str]] = [(1 + i // PER_DAY, r["input"]) for i, r in enumerate(rows[: PER_DAY * DAYS_BACK])]
    plan += [(0, claim) for claim in claims]  # today: another topic
    moved: dict[int, list[str]] = {}
    for back, question in plan:
        resp = await svc.client.post("/v1/query", json={"question": question, "collections": ["nq"]})
        assert resp.status_code == 200, resp.text
        moved.setdefault(back, []).append(resp.json()["answer_id"])
    async with svc.services.catalog.engine.begin() as conn:
        for back, ids in moved.items():
            at = datetime.now(UTC) - timedelta(days=back)
            await conn.execute(sa.update(answers).where(answers.c.id.in_(ids)).values(created_at=at))
    today = datetime.now(UTC).date()
    return World(svc, today.isoformat(), (today - timedelta(days=1)).isoformat())


async def test_another_topic_raises_query_drift_and_a_stable_day_does_not(world: World, hooks: Hooks) -> None:
    client = world.svc.client
    stable = await client.get("/v1/ops/drift", params={"collection": "nq", "days": 2, "until": world.stable_day})
    assert stable.status_code == 200, stable.text
    stable_days = stable.json()["collections"][0]["days"]
    print(json.dumps(stable_days, indent=1))
    assert [d["answers"] for d in stable_days] == [PER_DAY, PER_DAY]
    assert all(d["questions_embedded"] == PER_DAY for d in stable_days)
    assert stable_days[-1]["query_drift_previous"] is not None
    assert stable_days[-1]["alerts"] == [], stable_days[-1]

    drifted = await client.get("/v1/ops/drift", params={"collection": "nq", "days": 1})
    assert drifted.status_code == 200, drifted.text
    day = drifted.json()["collections"][0]["days"][0]
    print(json.dumps(day, indent=1))
    assert day["day"] == world.today and day["answers"] == PER_DAY
    assert {"query_drift_collection", "query_drift_previous"} <= set(day["alerts"]), day
    # The drift is a difference of kind, not of noise: well above the stable day's.
    assert day["query_drift_previous"] > 2 * stable_days[-1]["query_drift_previous"]
    assert day["query_drift_collection"] > stable_days[-1]["query_drift_collection"]

    # Nothing was sent by reading the indicators; evaluating raises, counts and sends each alert once.
    assert hooks.bodies == []
    raised = (await client.post("/v1/ops/alerts/evaluate")).json()["raised"]
    names = {a["indicator"] for a in raised if a["day"] == world.today}
    assert {"query_drift_collection", "query_drift_previous"} <= names
    assert not [a for a in raised if a["day"] == world.stable_day]
    assert all(a["delivered"] is True for a in raised)
    sent = [b["alert"] for b in hooks.bodies]
    assert sorted(a["id"] for a in sent) == sorted(a["id"] for a in raised)
    assert all(b["kind"] == "drift_alert" and b["alert"]["collection"] == "nq" for b in hooks.bodies)
    # No question text leaves the machine: only figures.
    assert not any(q in json.dumps(hooks.bodies) for q in ("?", "what", "who"))
    again = (await client.post("/v1/ops/alerts/evaluate")).json()["raised"]
    assert again == [] and len(hooks.bodies) == len(raised)
    # The worker's hourly job judges the same way: nothing new to raise.
    assert await drift_alerts({"services": world.svc.services}) == 0

    listed = (await client.get("/v1/ops/drift", params={"days": 1})).json()
    assert {a["indicator"] for a in listed["alerts"]} == {a["indicator"] for a in raised}
    metrics = (await client.get("/metrics")).text
    assert 'rag_alerts_total{indicator="query_drift_previous"} 1.0' in metrics
    assert f'rag_alert_deliveries_total{{outcome="sent"}} {float(len(raised))}' in metrics
    gauge = f'rag_drift_indicator{{collection="nq",indicator="query_drift_previous"}} {day["query_drift_previous"]}'
    assert gauge in metrics


async def test_the_summary_counts_the_days(world: World) -> None:
    resp = await world.svc.client.get("/v1/ops/summary", params={"collection": "nq", "days": DAYS_BACK + 1})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [d["answers"] for d in body["days"]] == [PER_DAY] * (DAYS_BACK + 1)
    today = body["days"][-1]
    assert today["day"] == world.today and today["latency_ms"]["p50"] is not None
    assert today["latency_ms"]["p50"] <= today["latency_ms"]["p95"] <= today["latency_ms"]["p99"]
    # Requests come from the audit log, stamped when they were served: all of them today.
    assert today["requests"] >= (DAYS_BACK + 1) * PER_DAY and today["errors_5xx"] == 0
    assert today["chunks_indexed"] > 0 and today["ingest_jobs_succeeded"] == 1
    assert body["now"]["jobs_waiting"] == 0 and body["now"]["queue_depth"] is not None
    assert body["usage"]["cost_recorded"] is False


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"days": 0}, 422, "days"),
        ({"days": 91}, 422, "days"),
        ({"days": "many"}, 422, "days"),
        ({"until": "2026-13-01"}, 422, "until"),
        ({"until": "yesterday"}, 422, "until"),
        ({"until": "0001-01-02"}, 422, "out of range"),
        ({"collection": "Not A Name"}, 422, "collection"),
        ({"collection": "missing"}, 404, "missing"),
    ],
)
async def test_bad_parameters_are_refused_and_the_service_stays_healthy(
    own_service, params: dict, status: int, says: str
) -> None:
    svc = await own_service()
    for path in ("/v1/ops/summary", "/v1/ops/drift"):
        resp = await svc.client.get(path, params=params)
        assert resp.status_code == status, resp.text
        assert says in resp.text
    assert (await svc.client.get("/healthz")).status_code == 200
    assert (await svc.client.get("/v1/ops/summary")).status_code == 200


async def test_a_reader_may_not_see_operations(own_service) -> None:
    svc = await own_service()
    client: httpx.AsyncClient = svc.client
    admin = (await client.post("/v1/keys", json={"role": "admin", "collections": ["*"]})).json()["key"]
    made = await client.post(
        "/v1/keys", json={"role": "reader", "collections": ["*"]}, headers={"Authorization": f"Bearer {admin}"}
    )
    reader = {"Authorization": f"Bearer {made.json()['key']}"}
    for method, path in (
        ("GET", "/v1/ops/summary"),
        ("GET", "/v1/ops/drift"),
        ("POST", "/v1/ops/alerts/evaluate"),
        ("GET", "/ops"),
    ):
        resp = await client.request(method, path, headers=reader)
        assert resp.status_code == 403, (path, resp.text)
    page = await client.get("/ops")
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/ops")
    ok = await client.get("/v1/ops/summary", headers={"Authorization": f"Bearer {admin}"})
    assert ok.status_code == 200


async def test_an_analyst_sees_only_its_collections(own_service) -> None:
    svc = await own_service({"scoring": {"enabled": False}})
    client: httpx.AsyncClient = svc.client
    for name, text in (("a", "The Eiffel Tower is 330 metres tall."), ("b", "The Golden Gate Bridge opened in 1937.")):
        await create_collection(client, name)
        await import_records(client, name, [{"id": name, "text": text}])
        resp = await client.post("/v1/query", json={"question": "How tall is it?", "collections": [name]})
        assert resp.status_code == 200, resp.text
    admin = (await client.post("/v1/keys", json={"role": "admin", "collections": ["*"]})).json()["key"]
    made = await client.post(
        "/v1/keys", json={"role": "analyst", "collections": ["a"]}, headers={"Authorization": f"Bearer {admin}"}
    )
    analyst, root = {"Authorization": f"Bearer {made.json()['key']}"}, {"Authorization": f"Bearer {admin}"}
    mine = (await client.get("/v1/ops/summary", params={"days": 1}, headers=analyst)).json()
    everything = (await client.get("/v1/ops/summary", params={"days": 1}, headers=root)).json()
    assert (mine["days"][0]["answers"], everything["days"][0]["answers"]) == (1, 2)
    one = (await client.get("/v1/ops/summary", params={"days": 1, "collection": "a"}, headers=analyst)).json()
    assert one["days"][0]["answers"] == 1
    drift = (await client.get("/v1/ops/drift", params={"days": 1}, headers=analyst)).json()
    assert [c["collection"] for c in drift["collections"]] == ["a"]
    hidden = await client.get("/v1/ops/drift", params={"collection": "b"}, headers=analyst)
    assert hidden.status_code == 404

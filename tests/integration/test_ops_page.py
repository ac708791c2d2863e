"""The operations page /ops, rendered by a real headless Chromium against a real `rag serve` subprocess: every
figure it shows is the one in the JSON it draws (GET /v1/ops/summary and /v1/ops/drift).

The page is opened for one collection, whose requests are the audit log's entries naming it: the page's own reads
name none, so the figures hold still while the test compares them. A low abstention threshold makes the day raise an
alert, so the page has one to show.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from tests.integration.test_answers import RECORDS
from tests.integration.test_reports_page import chromium, one, rendered, run_chromium, text  # noqa: F401
from tests.support.polling import wait_scored_sync
from tests.support.service import ServiceProcess, import_records_sync

pytestmark = pytest.mark.slow

QUESTIONS = [
    "When did the Golden Gate Bridge open?",
    "How tall is the Eiffel Tower?",
    "How long is the main span of the Golden Gate Bridge?",
    "Who won the 1998 football world cup final?",  # abstains
]
PAGE = "/ops?collection=kb&days=5"
SCREENSHOT_COPY = Path("/tmp/ops.png")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"RAG_DRIFT__MIN_QUESTIONS": "2", "RAG_DRIFT__THRESHOLDS__ABSTENTION_RATE": "0.2"}
    svc = ServiceProcess(tmp_path_factory.mktemp("ops") / "data", env=env)
    svc.start()
    try:
        import_records_sync(svc.url, "kb", RECORDS)
        with httpx.Client(base_url=svc.url, timeout=120) as http:
            ids = []
            for q in QUESTIONS:
                resp = http.post("/v1/query", json={"question": q, "collections": ["kb"]})
                assert resp.status_code == 200, resp.text
                ids.append(resp.json()["answer_id"])
            assert http.get("/v1/collections/kb/documents/nope").status_code in (404, 405)
            for answer_id in ids:
                wait_scored_sync(svc.url, answer_id)
            assert http.post(f"/v1/answers/{ids[0]}/feedback", json={"rating": "up"}).status_code == 201
            assert http.post(f"/v1/answers/{ids[1]}/feedback", json={"rating": "down"}).status_code == 201
            raised = http.post("/v1/ops/alerts/evaluate").json()["raised"]
            assert "abstention_rate" in {a["indicator"] for a in raised}, raised
        yield svc.url
    finally:
        svc.stop()


def _json(url: str, path: str) -> dict:
    resp = httpx.get(url + path, params={"collection": "kb", "days": 5}, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _value(raw: str | list[str] | None) -> float | None:
    assert isinstance(raw, str), raw
    return None if raw == "null" else float(raw)


def test_the_page_shows_the_numbers_of_the_json(chromium: str, service: str) -> None:  # noqa: F811
    summary, drift = _json(service, "/v1/ops/summary"), _json(service, "/v1/ops/drift")
    dom: BeautifulSoup = rendered(chromium, service + PAGE)
    assert one(dom, "#error").has_attr("hidden"), text(one(dom, "#error"))
    assert one(dom, "#ops")["data-state"] == "ready"
    # Read again after the page: nothing it counts moved while it loaded.
    assert _json(service, "/v1/ops/summary") == summary

    last, now = summary["days"][-1], summary["now"]
    assert last["answers"] == len(QUESTIONS) and last["requests"] >= len(QUESTIONS) + 1
    tiles = {t["data-testid"]: t for t in dom.select("#tiles .tile")}
    expected = {
        "tile-requests": last["requests"],
        "tile-error-rate": last["error_rate"],
        "tile-p50": last["latency_ms"]["p50"],
        "tile-p95": last["latency_ms"]["p95"],
        "tile-p99": last["latency_ms"]["p99"],
        "tile-abstention": last["abstention_rate"],
        "tile-cache": last["cache_hit_rate"],
        "tile-tokens": last["prompt_tokens"] + last["completion_tokens"],
        "tile-cost": last["cost"],
        "tile-queue": now["queue_depth"],
        "tile-jobs": now["jobs_waiting"],
        "tile-owed": now["scores_owed"],
    }
    for name, value in expected.items():
        assert _value(tiles[name]["data-value"]) == value, name
    assert text(one(tiles["tile-abstention"], ".value")) == "25.0%"
    assert text(one(tiles["tile-p95"], ".value")) == f"{last['latency_ms']['p95']:.1f} ms"
    assert "no usage data" in text(tiles["tile-cost"]) and "no usage data" in text(one(dom, "#usage-note"))

    days = [d["day"] for d in summary["days"]]
    bars = one(dom, "svg#chart-requests").select("rect.bar")
    shown_requests = [(b["data-day"], _value(b["data-value"])) for b in bars]
    assert shown_requests == [(d["day"], d["requests"]) for d in summary["days"]]
    for p in ("p50", "p95", "p99"):
        points = one(dom, "svg#chart-latency").select(f"circle.point.{p}")
        shown = [(c["data-day"], _value(c["data-value"])) for c in points]
        assert shown == [(d["day"], d["latency_ms"][p]) for d in summary["days"] if d["latency_ms"][p] is not None]
    faith = [(c["data-day"], _value(c["data-value"])) for c in dom.select("svg#chart-scores circle.faithfulness")]
    assert faith == [(d["day"], d["faithfulness"]) for d in summary["days"] if d["faithfulness"] is not None]
    assert faith and faith[-1][0] == days[-1]
    chunks = [_value(b["data-value"]) for b in dom.select("svg#chart-ingestion rect.bar")]
    assert chunks == [d["chunks_indexed"] for d in summary["days"]] and (chunks[-1] or 0) > 0
    assert "no usage data" in text(one(dom, "svg#chart-tokens"))  # the extractive generator uses no tokens

    rows = dom.select("#drift tbody tr[data-day]")
    kb = drift["collections"][0]
    assert [r["data-day"] for r in rows] == [d["day"] for d in kb["days"]]
    for row, day in zip(rows, kb["days"], strict=True):
        for cell in row.select("td[data-indicator]"):
            assert _value(cell["data-value"]) == day[cell["data-indicator"]], (day["day"], cell["data-indicator"])
        assert sorted(c["data-indicator"] for c in row.select("td.alert")) == sorted(day["alerts"])
    assert "abstention_rate" in rows[-1]["data-alerts"]
    alerts = dom.select("#alerts tbody tr[data-alert-id]")
    assert [int(str(a["data-alert-id"])) for a in alerts] == [a["id"] for a in drift["alerts"]]
    assert "no webhook" in text(alerts[0])


def test_a_bad_parameter_is_shown(chromium: str, service: str) -> None:  # noqa: F811
    dom = rendered(chromium, service + "/ops?days=0")
    error = one(dom, "#error")
    assert not error.has_attr("hidden") and "days" in text(error) and "422" in text(error)
    assert one(dom, "#ops")["data-state"] == "error"


def test_screenshot_is_not_blank(chromium: str, service: str, tmp_path: Path) -> None:  # noqa: F811
    png = tmp_path / "ops.png"
    run_chromium(chromium, f"--screenshot={png}", "--window-size=1280,1800", service + PAGE)
    assert png.is_file(), "chromium wrote no screenshot"
    shutil.copyfile(png, SCREENSHOT_COPY)
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, "is the page blank?"

"""The /reports page shows a collection's variants side by side with their intervals, and replays an answer; a real
headless Chromium against a `rag serve` subprocess running a canary (half of the questions on a candidate prompt)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from bs4 import Tag

from tests.integration.test_answers import RECORDS
from tests.integration.test_reports_page import chromium, number, one, rendered, text  # noqa: F401
from tests.integration.test_variants import QUESTIONS, write_candidate
from tests.support.polling import wait_scored_sync
from tests.support.service import ServiceProcess, import_records_sync

pytestmark = pytest.mark.slow


def decimal(node: Tag, attribute: str) -> float:
    value = node[attribute]
    assert isinstance(value, str), value  # only class-like attributes hold lists
    return float(value)


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict]]]:
    base = tmp_path_factory.mktemp("variants-page")
    env = {
        "RAG_PROMPTS__DIRECTORY": str(write_candidate(base / "prompts")),
        "RAG_VARIANTS__COLLECTIONS__KB__PROMPT": "grounded_answer_terse",
        "RAG_VARIANTS__COLLECTIONS__KB__SHARE": "0.5",
    }
    svc = ServiceProcess(base / "data", env=env)
    svc.start()
    try:
        import_records_sync(svc.url, "kb", RECORDS)
        answers = []
        with httpx.Client(base_url=svc.url, timeout=120) as http:
            for i in range(12):
                body = {"question": f"{QUESTIONS[i % 3]} ({i})", "collections": ["kb"]}
                resp = http.post("/v1/query", json=body)
                assert resp.status_code == 200, resp.text
                answers.append(resp.json())
        for a in answers:
            wait_scored_sync(svc.url, a["answer_id"])
        yield svc.url, answers
    finally:
        svc.stop()


def test_the_page_shows_both_variants_with_their_intervals(chromium: str, canary):  # noqa: F811
    url, answers = canary
    report = httpx.get(url + "/v1/reports/groundedness", params={"collection": "kb"}, timeout=60).json()
    variants = {v["variant"]: v for v in report["by_variant"]}
    assert set(variants) == {"control", "candidate"}
    assert sum(v["count"] for v in variants.values()) == len(answers) == 12

    dom = rendered(chromium, url + "/reports?collection=kb")
    assert one(dom, "#report")["data-state"] == "ready"
    rows = dom.select("#by-variant tbody tr[data-variant]:not(.vs-control)")
    assert [r["data-variant"] for r in rows] == ["control", "candidate"]
    for row in rows:
        v = variants[row["data-variant"]]
        assert text(row).split()[1] == str(v["count"])
        faith = one(row, 'td[data-measure="faithfulness"]')
        assert decimal(faith, "data-mean") == pytest.approx(v["faithfulness"]["mean"], abs=1e-4)
        assert number(faith, "data-n") == v["faithfulness"]["n"]
        abstention = one(row, 'td[data-measure="abstention"]')
        assert decimal(abstention, "data-rate") == pytest.approx(v["abstention"]["rate"], abs=1e-4)
        assert decimal(abstention, "data-hi") == pytest.approx(v["abstention"]["hi"], abs=1e-4)
        latency = one(row, 'td[data-measure="latency_ms"]')
        assert decimal(latency, "data-lo") == pytest.approx(v["latency_ms"]["lo"], abs=1e-3)
    versus = one(dom, "#by-variant tr.vs-control")
    assert versus["data-variant"] == "candidate"
    diff = variants["candidate"]["vs_control"]["latency_ms"]
    cell = one(versus, 'td[data-measure="latency_ms"]')
    assert decimal(cell, "data-diff") == pytest.approx(diff["diff"], abs=1e-3)
    assert cell["data-significant"] == str(diff["significant"]).lower()


def test_the_page_replays_an_answer(chromium: str, canary):  # noqa: F811
    url, answers = canary
    answer_id = answers[0]["answer_id"]
    dom = rendered(chromium, f"{url}/reports#replay={answer_id}")
    box = one(dom, "#replay")
    assert box["data-state"] == "ready", text(box)
    assert one(box, "#rp-evidence")["data-evidence"] == "original_versions"
    assert one(box, "#rp-original")["data-answer-id"] == answer_id
    replay_id = one(box, "#rp-replay")["data-answer-id"]
    assert replay_id != answer_id
    assert one(box, "#rp-changes")["data-text-changed"] == "false"
    stored = httpx.get(f"{url}/v1/answers/{replay_id}", timeout=60).json()
    assert stored["replay_of"] == answer_id and stored["variant"] == answers[0]["variant"]
    assert text(one(box, "#rp-replay .rp-answer")) == " ".join(stored["answer"].split())

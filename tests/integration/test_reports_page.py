"""The analysts' page /reports, rendered by a real headless Chromium against a real `rag serve` subprocess.

The service runs embedded (API + worker + Valkey + SQLite + Qdrant Edge + MiniLM) and scores every answer in its
worker with the offline scorer. Answers come from the extractive generator, plus one from the "llm" generator
pointed at a canned OpenAI-compatible stub on 127.0.0.1: the stub answer mixes a claim the documents support with
two they do not, so the page has unsupported claims to show.

Chromium is a system package (`apt-get install -y chromium`); a missing one fails the test, it does not skip it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bs4 import BeautifulSoup, Tag
from PIL import Image

from tests.integration.test_answers import RECORDS
from tests.support.chat_server import ChatServer
from tests.support.polling import HANG_GUARD_S, wait_scored_sync
from tests.support.service import ServiceProcess, import_records_sync

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT_COPY = Path("/tmp/reports.png")

SUPPORTED_CLAIM = "The Golden Gate Bridge opened to traffic in 1937"
INVENTED_CLAIMS = [
    "In 2019 it was repainted with 4,000 litres of chocolate",
    "Napoleon Bonaparte drove the first car across it",
]
STUB_ANSWER = f"{SUPPORTED_CLAIM} [1]. {INVENTED_CLAIMS[0]} [1]. {INVENTED_CLAIMS[1]} [1]."
HOSTILE_COMMENT = "<b>made up</b> & <script>alert(1)</script>"

pytestmark = pytest.mark.slow


# ----- a canned OpenAI-compatible endpoint --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stub_llm() -> Iterator[str]:
    with ChatServer([STUB_ANSWER], model="stub-llm") as server:
        yield server.base_url


# ----- the service and its data -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed; as root: apt-get update && apt-get install -y chromium")
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, stub_llm: str) -> Iterator[str]:
    """`rag serve` on a free loopback port, with its own data directory; yields its base URL."""
    llm = {"RAG_LLM__BASE_URL": stub_llm, "RAG_LLM__MODEL": "stub-llm", "RAG_LLM__MAX_RETRIES": "0"}
    svc = ServiceProcess(tmp_path_factory.mktemp("reports") / "data", env=llm)
    svc.start()
    try:
        yield svc.url
    finally:
        svc.stop()


def ask(http: httpx.Client, question: str, generator: str) -> dict:
    resp = http.post("/v1/query", json={"question": question, "collections": ["reports"], "generator": generator})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def answers(service: str) -> dict[str, dict]:
    """Ingest three documents, ask four questions, give feedback and a reference; wait until all are scored."""
    with httpx.Client(base_url=service, timeout=120) as http:
        import_records_sync(service, "reports", RECORDS)

        out = {
            "bridge": ask(http, "When did the Golden Gate Bridge open?", "extractive"),
            "tower": ask(http, "How tall is the Eiffel Tower?", "extractive"),
            "invented": ask(http, "What happened to the Golden Gate Bridge after it opened?", "llm"),
            "abstained": ask(http, "Who won the 1998 football world cup final?", "extractive"),
        }
        assert [v["abstained"] for v in out.values()] == [False, False, False, True], out
        ids = {k: v["answer_id"] for k, v in out.items()}
        scored = {k: wait_scored_sync(service, answer_id) for k, answer_id in ids.items()}
        for rating, key, comment in (("up", "bridge", None), ("down", "invented", HOSTILE_COMMENT)):
            resp = http.post(f"/v1/answers/{ids[key]}/feedback", json={"rating": rating, "comment": comment})
            assert resp.status_code == 201, resp.text
        # A reference makes context recall computable for this one answer; the worker scores it again.
        resp = http.post(f"/v1/answers/{ids['bridge']}/reference", json={"reference": "It opened in 1937."})
        assert resp.status_code == 202, resp.text
        scored["bridge"] = wait_scored_sync(service, ids["bridge"], after=scored["bridge"]["scores"]["scored_at"])
        scored["invented"] = http.get(f"/v1/answers/{ids['invented']}").json()  # now with its feedback
        return scored


@pytest.fixture(scope="module")
def report(service: str, answers: dict[str, dict]) -> dict:
    resp = httpx.get(service + "/v1/reports/groundedness", timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


# ----- Chromium -----------------------------------------------------------------------------------------------------
def run_chromium(chromium: str, *args: str) -> str:
    """Headless Chromium with a throwaway profile and no background traffic; returns its stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            *args,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout


def rendered(chromium: str, url: str) -> BeautifulSoup:
    return BeautifulSoup(run_chromium(chromium, "--dump-dom", url), "html.parser")


def text(node: Tag) -> str:
    return " ".join(node.get_text(" ").split())


def one(node: Tag, selector: str) -> Tag:
    """The element the page must have: a missing one fails here, naming it."""
    found = node.select_one(selector)
    assert found is not None, f"no {selector} in the page"
    return found


def number(node: Tag, attribute: str) -> int:
    value = node[attribute]
    assert isinstance(value, str), value  # only class-like attributes hold lists
    return int(value)


# ----- the tests ----------------------------------------------------------------------------------------------------
def test_report_page_renders_summary_charts_and_tables(chromium: str, service: str, answers: dict, report: dict):
    assert report["count"] == 4 and report["scored"] == 4 and report["pending"] == 0, report
    dom = rendered(chromium, service + "/reports")

    assert one(dom, "#error").has_attr("hidden"), text(one(dom, "#error"))
    assert one(dom, "#report")["data-state"] == "ready"

    tiles = {t["data-testid"]: text(one(t, ".value")) for t in dom.select("#summary .tile")}
    assert tiles["tile-count"] == "4" and tiles["tile-scored"] == "4" and tiles["tile-pending"] == "0"
    assert tiles["tile-abstention"] == "25.0%"
    assert tiles["tile-feedback"] == "1 up / 1 down"
    for metric in ("faithfulness", "context_precision", "context_recall"):
        summary = report["metrics"][metric]
        assert float(tiles[f"tile-{metric}"]) == pytest.approx(summary["mean"], abs=5e-4)
        below = text(one(dom, f'[data-testid="below-{metric}"]'))
        assert below.startswith(f"{summary['below_threshold']} below {summary['threshold']}"), below
    # Null scores are explained, never counted as 0.
    assert "the service abstained" in text(one(dom, '[data-testid="nulls-faithfulness"]'))
    assert "no reference answer" in text(one(dom, '[data-testid="nulls-context_recall"]'))

    for metric in ("faithfulness", "context_precision", "context_recall"):
        svg = one(dom, f"svg#hist-{metric}")
        bars = svg.select("rect.bar")
        assert len(bars) == 10
        assert [number(b, "data-count") for b in bars] == [b["count"] for b in report["metrics"][metric]["histogram"]]
        assert number(svg, "data-total") == report["metrics"][metric]["count"]
    assert number(one(dom, "svg#hist-context_recall"), "data-total") == 1  # only the answer with a reference
    trend = one(dom, "svg#trend")
    assert [number(r, "data-count") for r in trend.select("rect.day")] == [4]
    assert trend.select("circle.point.faithfulness")

    rows = dom.select("#worst tbody tr.answer-row")
    assert [r["data-answer-id"] for r in rows] == [a["answer_id"] for a in report["worst_answers"]]
    by_id = {r["data-answer-id"]: r for r in rows}
    assert set(by_id) == {answers[k]["id"] for k in ("bridge", "tower", "invented")}  # abstention: no faithfulness
    worst = rows[0]
    assert worst["data-answer-id"] == answers["invented"]["id"]
    assert "What happened to the Golden Gate Bridge" in text(one(worst, ".question"))
    assert one(worst, "a")["href"] == f"#answer={answers['invented']['id']}"
    unsupported = text(one(worst, ".unsupported"))
    assert all(claim in unsupported for claim in INVENTED_CLAIMS) and SUPPORTED_CLAIM not in unsupported
    assert text(one(worst, ".feedback")) == "0 up / 1 down"
    assert "When did the Golden Gate Bridge open?" in text(by_id[answers["bridge"]["id"]])
    assert "How tall is the Eiffel Tower?" in text(by_id[answers["tower"]["id"]])
    # No reference, no recall: a dash that says why, not a 0.
    recall = one(by_id[answers["tower"]["id"]], 'td[data-metric="context_recall"]')
    assert recall["data-null"] == "true" and text(recall) == "—"
    assert "no reference answer" in one(recall, ".null")["title"]

    generators = {r["data-key"] for r in dom.select("#by-generator tbody tr")}
    assert generators == {"extractive", "openai:stub-llm"}
    assert len(dom.select("#by-prompt-version tbody tr")) == len(report["by_prompt_version"])
    docs = [r["data-document-id"] for r in dom.select("#low-faith-docs tbody tr")]
    assert docs == [d["document_id"] for d in report["documents_in_low_faithfulness_answers"]] and docs
    assert "bridge" in text(one(dom, "#low-faith-docs"))

    assert one(dom, "#csv-link")["href"] == "/v1/reports/groundedness?format=csv"


def test_drilldown_marks_each_claim(chromium: str, service: str, answers: dict):
    answer = answers["invented"]
    dom = rendered(chromium, f"{service}/reports#answer={answer['id']}")

    drill = one(dom, "#drilldown")
    assert drill["data-state"] == "ready" and not drill.has_attr("hidden")
    assert text(one(drill, "#dd-question")) == "What happened to the Golden Gate Bridge after it opened?"
    assert text(one(drill, "#dd-answer")) == STUB_ANSWER
    assert one(drill, "#dd-status")["data-status"] == "done"

    supported = [text(li) for li in drill.select("#dd-claims li.claim.supported")]
    unsupported = [text(li) for li in drill.select("#dd-claims li.claim.unsupported")]
    assert len(supported) == 1 and SUPPORTED_CLAIM in supported[0] and "context [1]" in supported[0]
    assert len(unsupported) == 2
    for claim, shown in zip(INVENTED_CLAIMS, unsupported, strict=True):
        assert claim in shown
    reasons = [c["reason"] for c in answer["scores"]["claims"] if c["supported"] is False]
    assert all(reason and reason in " ".join(unsupported) for reason in reasons)

    contexts = drill.select("#dd-contexts li")
    assert [number(li, "data-n") for li in contexts] == [c["n"] for c in answer["contexts"]]
    assert "bridge" in text(contexts[0]) and "It opened to traffic in 1937" in text(contexts[0])
    assert "None. Attach one" in text(one(drill, "#dd-reference"))

    # The hostile comment is shown as text: no element was made from it.
    feedback = one(drill, "#dd-feedback")
    assert HOSTILE_COMMENT in feedback.get_text()
    assert feedback.find("b") is None and feedback.find("script") is None


def test_drilldown_of_an_abstention_explains_the_null_scores(chromium: str, service: str, answers: dict):
    dom = rendered(chromium, f"{service}/reports#answer={answers['abstained']['id']}")
    scores = one(dom, "#dd-scores")
    faith = one(scores, '[data-metric="faithfulness"]')
    assert faith.select_one('[data-null="true"]') is not None
    assert "the service abstained" in text(faith) and "0.000" not in text(faith)
    assert one(dom, "#dd-abstained")["data-abstained"] == "true"


def test_api_error_is_shown(chromium: str, service: str, answers: dict):
    dom = rendered(chromium, service + "/reports?since=last-tuesday")
    error = one(dom, "#error")
    assert not error.has_attr("hidden")
    assert "since='last-tuesday' is not a date" in text(error)
    assert one(dom, "#report")["data-state"] == "error"


def test_screenshot_is_not_blank(chromium: str, service: str, answers: dict, tmp_path: Path):
    png = tmp_path / "reports.png"
    run_chromium(chromium, f"--screenshot={png}", "--window-size=1280,1600", service + "/reports")
    assert png.is_file(), "chromium wrote no screenshot"
    shutil.copyfile(png, SCREENSHOT_COPY)
    with Image.open(png) as image:
        assert image.size == (1280, 1600)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None
    # Text, tiles, bars in three metric colours, lines: a rendered page has many colours; a blank one has one.
    assert len(colours) > 50, f"{len(colours)} colours: is the page blank?"
    most_common_share = max(count for count, _ in colours) / (1280 * 1600)
    assert most_common_share < 0.9, f"one colour covers {most_common_share:.0%} of the screenshot"

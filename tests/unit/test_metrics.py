"""The metrics object alone: services in one process count apart; `rag api` and `rag worker` processes sharing a
multiprocess directory are added up by /metrics; switched off, nothing is counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from rag.observability.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_services_in_one_process_count_apart() -> None:
    a, b = Metrics(), Metrics()
    a.tokens("gemma", prompt=120, completion=30)
    a.cache("answer", hit=True)
    a.cache("answer", hit=False)
    a.budget_refused("collection")
    b.tokens("gemma", prompt=7, completion=0)
    got_a, got_b = values(a.render()[0].decode()), values(b.render()[0].decode())
    assert got_a[("rag_tokens_total", (("direction", "in"), ("model", "gemma")))] == 120
    assert got_a[("rag_tokens_total", (("direction", "out"), ("model", "gemma")))] == 30
    assert got_a[("rag_cache_requests_total", (("cache", "answer"), ("result", "hit")))] == 1
    assert got_a[("rag_cache_requests_total", (("cache", "answer"), ("result", "miss")))] == 1
    assert got_a[("rag_budget_refusals_total", (("scope", "collection"),))] == 1
    assert got_b[("rag_tokens_total", (("direction", "in"), ("model", "gemma")))] == 7
    # No completion tokens: no series; and nothing of a's in b.
    assert ("rag_tokens_total", (("direction", "out"), ("model", "gemma"))) not in got_b
    assert not [name for (name, _), v in got_b.items() if name.startswith(("rag_cache", "rag_budget")) and v]


def test_switched_off_it_counts_nothing() -> None:
    off = Metrics(enabled=False)
    off.request("GET", "/v1/collections", 200, 0.01)
    off.answer("extractive", "weak_evidence")
    off.tokens("gemma", 10, 10)
    got = values(off.render()[0].decode())
    assert not [k for k, v in got.items() if v and not k[0].endswith("_created")]


# A process of a split deployment: it switches to the shared directory as the `rag` entry points do, then counts.
_WRITER = """
import sys
from pathlib import Path
from rag.observability.metrics import Metrics, prepare_multiprocess
prepare_multiprocess(Path(sys.argv[1]))
m = Metrics()
m.ingest_job("succeeded", 2.0)
m.embedded(int(sys.argv[2]))
m.request("GET", "/v1/jobs/{job_id}", 200, 0.01)
if len(sys.argv) > 3:
    sys.stdout.buffer.write(m.render()[0])
"""


def test_processes_sharing_a_multiprocess_dir_are_added_up(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    for chunks in ("5", "7"):  # two workers, each exits after its job
        subprocess.run([sys.executable, "-c", _WRITER, str(shared), chunks], check=True, env=env, cwd=REPO)
    api = subprocess.run(
        [sys.executable, "-c", _WRITER, str(shared), "1", "render"], check=True, env=env, cwd=REPO, capture_output=True
    )
    got = values(api.stdout.decode())
    assert got[("rag_chunks_embedded_total", ())] == 13
    assert got[("rag_ingest_jobs_total", (("outcome", "succeeded"),))] == 3
    assert got[("rag_ingest_job_seconds_count", (("outcome", "succeeded"),))] == 3
    assert got[("rag_http_requests_total", (("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "200")))] == 3


def test_each_text_the_redactor_changes_is_one_pii_event() -> None:
    from rag.observability.instruments import CountedRedactor
    from rag.observability.telemetry import Telemetry

    telemetry = Telemetry.quiet()
    redactor = CountedRedactor(telemetry)
    out = redactor.redact_many(["Write to jane.doe@example.com today.", "The bridge opened in 1937."])
    assert "<EMAIL>" in out[0] and out[1] == "The bridge opened in 1937."
    redactor.redact("Call me at jane.doe@example.com or john@example.org.")
    got = values(telemetry.metrics.render()[0].decode())
    assert got[("rag_guardrail_events_total", (("event", "redacted"), ("guard", "pii")))] == 2

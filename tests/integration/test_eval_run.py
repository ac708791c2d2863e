"""`rag eval run`: a dataset through the real pipeline, scored answers, ID-based metrics, reports and a gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evals.runner import DatasetError, Gate, load_dataset, run_eval, summarize, write_reports
from tests.conftest import REPO
from tests.integration.test_answers import (
    RECORDS,
    kb,  # noqa: F401  (the fixture)
)
from tests.support.service import ServiceProcess, import_records_sync

DATASET: list[dict] = [
    {
        "id": "q1",
        "question": "When did the Golden Gate Bridge open?",
        "reference": "The Golden Gate Bridge opened in 1937.",
        "gold_ids": ["bridge"],
    },
    {"id": "q2", "question": "How tall is the Eiffel Tower?", "gold_ids": ["tower"]},
    {"id": "q3", "question": "What is the airspeed velocity of an unladen swallow?"},
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


async def test_run_scores_every_answer_and_writes_reports(client, kb, tmp_path):  # noqa: F811
    items = load_dataset(_write(tmp_path / "set.jsonl", DATASET))
    report = await run_eval(client, items, kb, Gate(faithfulness=0.9, id_context_recall=0.9))
    rows = {r["id"]: r for r in report["items"]}
    assert all(r["score_status"] == "done" for r in rows.values()), rows
    assert rows["q1"]["faithfulness"] == 1.0 and rows["q1"]["context_recall"] == 1.0
    assert rows["q1"]["id_context_recall"] == 1.0 and rows["q1"]["id_context_precision"] == 1.0
    assert rows["q2"]["context_recall"] is None and "reference" in rows["q2"]["null_reasons"]["context_recall"]
    assert rows["q3"]["abstained"] and rows["q3"]["faithfulness"] is None and rows["q3"]["id_context_recall"] is None
    summary = report["summary"]
    assert summary["means"]["faithfulness"] == 1.0 and summary["abstention_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["passed"], summary

    json_path, html_path = write_reports(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["summary"]["passed"] is True
    page = html_path.read_text()
    assert "PASSED" in page and "When did the Golden Gate Bridge open?" in page

    strict = summarize(report["items"], Gate(context_recall=0.99, max_abstention_rate=0.1))
    assert not strict["passed"]
    assert any("abstention rate" in f for f in strict["gate_failures"])


def test_dataset_errors_name_the_lines(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok"}\n{"question": ""}\nnot json\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"2 bad line\(s\): line 2: question: .*; line 3"):
        load_dataset(bad)
    empty = _write(tmp_path / "empty.jsonl", [])
    with pytest.raises(DatasetError, match="no questions"):
        load_dataset(empty)


@pytest.mark.slow
def test_cli_gate_exit_codes(tmp_path: Path) -> None:
    svc = ServiceProcess(tmp_path / "data")
    svc.start()
    try:
        import_records_sync(svc.url, "kb", RECORDS)
        dataset = _write(tmp_path / "set.jsonl", DATASET)
        base = [sys.executable, "-m", "rag", "eval", "run", str(dataset), "--collection", "kb", "--url", svc.url]

        def run(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*base, *extra], capture_output=True, text=True, timeout=600, cwd=REPO)

        ok = run("--out", str(tmp_path / "ok"), "--min-faithfulness", "0.8")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "quality gate passed" in ok.stdout and (tmp_path / "ok" / "eval-report.html").exists()
        failed = run("--out", str(tmp_path / "failed"), "--max-abstention-rate", "0.1")
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "quality gate FAILED: abstention rate 0.3333 > 0.1" in failed.stderr
        missing = run("--collection", "nope")
        assert missing.returncode == 2 and "nope" in missing.stderr
    finally:
        svc.stop()

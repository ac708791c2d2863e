"""The quality gate `make test` runs: the fixed dataset (tests/data/gate, CLAP-NQ training half) through the real
pipeline and the real scorer, held to the thresholds committed beside it, for the shipped prompts and generators.

A change that lowers groundedness or raises abstention fails here. The extractive generator (the default) runs as
shipped. The LLM generator runs against a stand-in that follows its prompt's instructions
(tests/support/prompt_following.py: the one real LLM here, Gemma 3 270M, cites nothing and takes ~35 s a question),
so that a prompt change is judged by its effect on the answers: the shipped prompt passes, a deliberately worse one
(tests/data/gate/prompts/grounded_answer_worse.toml) fails. The worse prompt is tried the way an operator would try
a candidate: as a variant of a collection with a share of 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.runner import Gate, RunOptions, load_dataset, run_eval
from rag.cli import app
from tests.conftest import REPO
from tests.support.prompt_following import INVENTED, PromptFollowingServer
from tests.support.service import create_collection, import_records

GATE = REPO / "tests" / "data" / "gate"


def documents() -> list[dict]:
    return [json.loads(line) for line in (GATE / "documents.jsonl").read_text(encoding="utf-8").splitlines()]


def gate(name: str) -> Gate:
    return Gate.model_validate_json((GATE / f"{name}.json").read_text(encoding="utf-8"))


async def test_the_shipped_extractive_answers_pass_the_gate(client, collection):
    await import_records(client, collection, documents())
    report = await run_eval(
        client, load_dataset(GATE / "questions.jsonl"), collection, gate("extractive"), RunOptions("extractive", 2)
    )
    summary = report["summary"]
    assert summary["count"] == 12 and summary["errors"] == 0
    assert summary["passed"], summary["gate_failures"]


@pytest.fixture
def following():
    with PromptFollowingServer() as server:
        yield server


async def test_a_worse_prompt_fails_the_gate_and_the_shipped_one_passes(own_service, following):
    svc = await own_service(
        {
            "llm": {"base_url": following.base_url, "model": "prompt-following", "max_retries": 0},
            "prompts": {"directory": GATE / "prompts"},
            "variants": {"collections": {"candidate": {"prompt": "grounded_answer_worse", "share": 1.0}}},
        }
    )
    items = load_dataset(GATE / "questions.jsonl")
    reports = {}
    for name in ("shipped", "candidate"):
        await create_collection(svc.client, name)
        await import_records(svc.client, name, documents())
        reports[name] = await run_eval(svc.client, items, name, gate("llm"), RunOptions("llm", 2))

    shipped, worse = reports["shipped"]["summary"], reports["candidate"]["summary"]
    assert shipped["passed"], shipped["gate_failures"]
    assert not worse["passed"]
    assert any(f.startswith("faithfulness mean") for f in worse["gate_failures"]), worse["gate_failures"]
    assert worse["means"]["faithfulness"] < shipped["means"]["faithfulness"] - 0.2
    # The worse prompt really was the one sent for the candidate collection, and its invention is what was judged.
    systems = [r["messages"][0]["content"] for r in following.requests]
    assert sum("general knowledge" in s for s in systems) == len(items) == len(systems) // 2
    assert all(INVENTED in (r.get("answer") or "") for r in reports["candidate"]["items"] if not r["abstained"])
    stored = (await svc.client.get(f"/v1/answers/{reports['candidate']['items'][0]['answer_id']}")).json()
    assert stored["prompt_id"] == "grounded_answer_worse" and stored["variant"] == "candidate"


def test_cli_gate_file_is_read_and_a_bad_one_is_refused(tmp_path: Path):
    bad = tmp_path / "gate.json"
    bad.write_text('{"faithfulnes": 0.9}', encoding="utf-8")
    args = ["eval", "run", str(GATE / "questions.jsonl"), "-c", "kb", "--url", "http://127.0.0.1:9"]
    result = CliRunner().invoke(app, [*args, "--gate", str(bad)])
    assert result.exit_code == 2 and "faithfulnes" in result.output and "Extra inputs" in result.output
    good = CliRunner().invoke(app, [*args, "--gate", str(GATE / "extractive.json")])
    # A valid gate file gets as far as the service (nothing listens on port 9 here).
    assert good.exit_code == 2 and "cannot reach the service" in good.output

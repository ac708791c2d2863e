"""Prompt variants end to end: the split the pipeline records is the sticky hash of rag.variants, the candidate's
prompt is what the LLM receives, the report compares both variants, configuration changes are audited, and
GET /v1/prompts lists the templates to any key.

The split over 1,000 conversations is measured on the assignment function (tests/unit/test_variants.py); here the
service's answers are checked against that same function, conversation by conversation, so the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.records import AuditQuery
from kernel.settings import load_settings
from rag.storage.audit import AuditLog
from rag.storage.catalog import Catalog
from rag.variants import AUDIT_ACTION, CONTROL, assign, audit_changes, sticky_unit
from tests.integration.test_answers import RECORDS
from tests.support.chat_server import ChatServer
from tests.support.service import create_collection, import_records, start_service

CANDIDATE_MARKER = "CANDIDATE-PROMPT-7741"
CANDIDATE = f'''# A terser candidate of grounded_answer, for the variant tests.
id = "grounded_answer_terse"
system = """{CANDIDATE_MARKER}: answer in one sentence from the numbered sources, citing them like [1]."""
user = """Sources:
{{sources}}

Question: {{question}}"""
source = "[{{n}}] {{filename}}{{location}}\\n{{text}}"
'''
CANNED = "The Golden Gate Bridge opened to traffic in 1937 [1]."
QUESTIONS = ["When did the Golden Gate Bridge open?", "How tall is the Eiffel Tower?", "How long is the main span?"]


def write_candidate(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "grounded_answer_terse.toml").write_text(CANDIDATE, encoding="utf-8")
    return directory


@pytest.fixture
def chat_stub() -> Iterator[ChatServer]:
    with ChatServer([CANNED], model="stub") as server:
        yield server


def _overrides(prompts: Path, llm_url: str, share: float = 0.5) -> dict:
    return {
        "prompts": {"directory": prompts},
        "llm": {"base_url": llm_url, "model": "stub", "max_retries": 0},
        "variants": {"collections": {"kb": {"prompt": "grounded_answer_terse", "share": share}}},
    }


async def test_answers_record_the_sticky_variant_and_the_candidate_prompt_is_sent(own_service, tmp_path, chat_stub):
    svc = await own_service(_overrides(write_candidate(tmp_path / "prompts"), chat_stub.base_url))
    client, cfg = svc.client, svc.settings.variants
    await create_collection(client, "kb")
    await import_records(client, "kb", RECORDS)

    # Conversations of two turns (extractive: the turns are cheap): every turn in the variant the hash predicts.
    seen: dict[str, int] = {}
    for i in range(40):
        body = {"message": QUESTIONS[i % 3], "collections": ["kb"], "generator": "extractive"}
        first = await client.post("/v1/chat", json=body)
        assert first.status_code == 200, first.text
        conversation = first.json()["conversation_id"]
        expected = assign(cfg, ["kb"], sticky_unit(conversation, None, "")).name
        follow_up = {**body, "message": "And what colour is it?", "conversation_id": conversation}
        second = await client.post("/v1/chat", json=follow_up)
        assert second.status_code == 200, second.text
        assert first.json()["variant"] == second.json()["variant"] == expected
        for out in (first.json(), second.json()):
            stored = (await client.get(f"/v1/answers/{out['answer_id']}")).json()
            assert stored["variant"] == expected
            # The extractive generator ignores prompts, but the prompt recorded is the variant's.
            assert stored["prompt_id"] == ("grounded_answer_terse" if expected != CONTROL else "grounded_answer")
        seen[expected] = seen.get(expected, 0) + 1
    assert set(seen) == {CONTROL, "candidate"}, seen

    # Questions outside a conversation, answered by the LLM: the candidate's prompt is what it receives.
    chat_stub.exchanges.clear()
    variants = []
    for i in range(12):
        out = await client.post("/v1/query", json={"question": f"{QUESTIONS[0]} ({i})", "collections": ["kb"]})
        assert out.status_code == 200, out.text
        variants.append(out.json()["variant"])
        assert out.json()["prompt"]["id"] == ("grounded_answer_terse" if variants[-1] != CONTROL else "grounded_answer")
    systems = [e.request["messages"][0]["content"] for e in chat_stub.exchanges]
    assert len(systems) == 12
    assert [CANDIDATE_MARKER in s for s in systems] == [v == "candidate" for v in variants]
    assert set(variants) == {CONTROL, "candidate"}
    again = await client.post("/v1/query", json={"question": f"{QUESTIONS[0]} (3)", "collections": ["kb"]})
    assert again.json()["variant"] == variants[3]  # the same question of the same key stays in its variant

    report = (await client.get("/v1/reports/groundedness", params={"collection": "kb"})).json()
    by_variant = {v["variant"]: v for v in report["by_variant"]}
    assert list(by_variant) == [CONTROL, "candidate"]
    total = {name: 2 * seen[name] + variants.count(name) + (name == variants[3]) for name in by_variant}
    assert {name: v["count"] for name, v in by_variant.items()} == total
    assert by_variant["candidate"]["prompt_versions"] != by_variant[CONTROL]["prompt_versions"]
    assert set(by_variant["candidate"]["vs_control"]) >= {"faithfulness", "abstention", "latency_ms", "tokens"}
    assert by_variant[CONTROL]["abstention"]["n"] == total[CONTROL]

    # The start recorded the configuration in the audit log; the prompt listing marks what is in use.
    entries = (await client.get("/v1/audit", params={"action": AUDIT_ACTION})).json()["entries"]
    assert len(entries) == 1 and json.loads(entries[0]["detail"])["collections"]["kb"]["share"] == 0.5
    prompts = {p["id"]: p for p in (await client.get("/v1/prompts")).json()}
    assert prompts["grounded_answer_terse"]["roles"] == ["variant:kb"]
    assert prompts["grounded_answer_terse"]["source"] == "directory"
    assert prompts["grounded_answer"]["roles"] == ["answer"] and prompts["grounded_answer_guarded"]["roles"] == [
        "guarded"
    ]
    assert prompts["grounded_answer"]["variables"] == ["filename", "location", "n", "question", "sources", "text"]

    # Any key may list the prompts; a request without one may not, once keys exist.
    admin = (await client.post("/v1/keys", json={"role": "admin", "collections": ["*"]})).json()["key"]
    reader = await client.post(
        "/v1/keys", json={"role": "reader", "collections": ["kb"]}, headers={"Authorization": f"Bearer {admin}"}
    )
    listed = await client.get("/v1/prompts", headers={"Authorization": f"Bearer {reader.json()['key']}"})
    assert listed.status_code == 200 and {p["id"] for p in listed.json()} == set(prompts)
    assert "system" not in listed.json()[0] and CANDIDATE_MARKER not in listed.text  # no template text
    anonymous = await client.get("/v1/prompts")
    assert anonymous.status_code == 401 and "API key" in anonymous.json()["error"]


async def test_a_config_change_is_audited_once_per_change(tmp_path):
    """Promotion and roll-back are settings changes: each is one audit entry at the next start, and a restart
    without a change adds none."""
    prompts = write_candidate(tmp_path / "prompts")
    catalog = Catalog(f"sqlite+aiosqlite:///{tmp_path / 'rag.db'}")
    await catalog.prepare_schema()
    audit = AuditLog(catalog.engine)
    try:
        canary = load_settings(data_dir=tmp_path, **_overrides(prompts, "http://127.0.0.1:9/v1", share=0.1))
        assert await audit_changes(canary, audit) is True
        assert await audit_changes(canary, audit) is False  # a restart with the same settings
        rolled_back = load_settings(data_dir=tmp_path, **_overrides(prompts, "http://127.0.0.1:9/v1", share=0.0))
        assert await audit_changes(rolled_back, audit) is True
        promoted = load_settings(
            data_dir=tmp_path, prompts={"directory": prompts}, answer={"prompt": "grounded_answer_terse"}
        )
        assert await audit_changes(promoted, audit) is True
        entries = [json.loads(e.detail or "{}") for e in await audit.query(AuditQuery(action=AUDIT_ACTION))]
        assert [e["collections"].get("kb", {}).get("share") for e in entries] == [0.1, 0.0, None]
        assert entries[-1]["prompt"]["id"] == "grounded_answer_terse" and entries[-1]["collections"] == {}
        assert (await audit.verify()).ok
    finally:
        await catalog.close()


async def test_a_variant_naming_a_missing_prompt_stops_the_start(tmp_path):
    overrides = {"variants": {"collections": {"kb": {"prompt": "grounded_answr", "share": 0.2}}}}
    with pytest.raises(RuntimeError, match=r"RAG_VARIANTS__COLLECTIONS__kb__PROMPT: unknown prompt 'grounded_answr'"):
        async with start_service(tmp_path / "data", overrides):
            pass

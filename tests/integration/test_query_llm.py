"""/v1/query and /v1/chat with the OpenAI-compatible generator against the real llama.cpp server.

The model is a 270M base model: its answers are weak, so these tests check the plumbing (usage, prompt, lineage,
citation validation, abstention when it cites nothing, the follow-up rewrite), not the prose. The service talks to
llama.cpp through a forwarding endpoint on 127.0.0.1 that records each exchange: what the service asked and what the
model said, so every outcome can be checked against what the model really answered.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from rag.api.routes.answers import standalone_question
from rag.pipeline import ABSTAIN_TEXT
from rag.prompts.registry import load_prompt
from tests.llm_server import LlamaServer, llm_server  # noqa: F401
from tests.support.chat_server import ChatServer
from tests.support.service import RunningService, create_collection, import_records

MOON = {"id": "moon", "title": "Moon", "text": "The Moon orbits the Earth every 27.3 days."}


@pytest.fixture
async def with_llm(llm_server: LlamaServer, own_service) -> AsyncIterator[tuple[RunningService, ChatServer]]:  # noqa: F811
    """A service of its own whose "llm" generator is llama.cpp (through the recording endpoint)."""
    with ChatServer(upstream=llm_server.base_url) as seen:
        llm = {
            "base_url": seen.base_url,
            "model": llm_server.model,
            "timeout_seconds": 900,  # a hang guard: the model is slow on a loaded machine, never too slow
            "max_retries": 0,
            "max_tokens": 48,
            "temperature": 0.0,
        }
        svc = await own_service({"llm": llm})
        yield svc, seen


def cites_the_only_context(text: str) -> bool:
    """Whether a marker in `text` cites context 1 ([1], [1, 2], [1-2]): with one context, the only valid citation."""
    return any("1" in re.findall(r"\d+", marker) for marker in re.findall(r"\[([\d,\s\u2013-]+)\]", text))


@pytest.mark.slow
async def test_query_with_llm_records_usage_and_validates_citations(with_llm):
    svc, seen = with_llm
    client = svc.client
    await import_records(client, await create_collection(client, "moon"), [MOON])
    question = "How long does the Moon take to orbit the Earth?"
    resp = await client.post("/v1/query", json={"question": question, "collections": ["moon"], "generator": "llm"})
    assert resp.status_code == 200, resp.text
    out = resp.json()

    [asked] = seen.exchanges  # one call: the answer
    prompt = load_prompt("grounded_answer")
    assert asked.request["messages"][0] == {"role": "system", "content": prompt.system()}
    assert (
        MOON["text"] in asked.request["messages"][1]["content"] and question in asked.request["messages"][1]["content"]
    )
    assert out["generator"] == f"openai:{svc.settings.llm.model}"
    assert asked.usage is not None and asked.usage["prompt_tokens"] > 0 and asked.usage["completion_tokens"] > 0
    assert out["usage"] == {k: asked.usage[k] for k in ("prompt_tokens", "completion_tokens")}
    # What the model said decides the outcome: a valid citation makes an answer, none makes an abstention.
    if cites_the_only_context(asked.reply):
        assert not out["abstained"], (asked.reply, out)
        assert [c["filename"] for c in out["citations"]] == ["moon"] and "[1]" in out["answer"]
    else:
        assert out["abstained"] and out["citations"] == [], (asked.reply, out)
        declined = asked.reply.strip().rstrip(".").lower() == ABSTAIN_TEXT.rstrip(".").lower()
        assert out["abstain_reason"] == ("generator_declined" if declined else "no_citations")
    stored = (await client.get(f"/v1/answers/{out['answer_id']}")).json()
    assert stored["model"] == out["model"] == svc.settings.llm.model and stored["prompt_id"] == "grounded_answer"
    assert stored["usage"] == out["usage"]


@pytest.mark.slow
async def test_llm_is_not_called_without_evidence(with_llm):
    svc, seen = with_llm
    await create_collection(svc.client, "empty")
    resp = await svc.client.post(
        "/v1/query", json={"question": "Anything?", "collections": ["empty"], "generator": "llm"}
    )
    out = resp.json()
    assert out["abstained"] and out["abstain_reason"] == "no_results" and out["usage"]["prompt_tokens"] == 0
    assert seen.exchanges == []  # the model was never asked


@pytest.mark.slow
async def test_chat_follow_up_is_rewritten_by_the_llm(with_llm):
    svc, seen = with_llm
    client = svc.client
    await import_records(client, await create_collection(client, "moon"), [MOON])
    chat = {"collections": ["moon"], "generator": "extractive"}  # only the rewrite goes to the LLM
    first = (await client.post("/v1/chat", json={"message": "Tell me about the Moon", **chat})).json()
    assert seen.exchanges == []  # a first question has nothing to be rewritten against
    follow_up = "How long is its orbit?"
    second = await client.post(
        "/v1/chat", json={"message": follow_up, "conversation_id": first["conversation_id"], **chat}
    )
    assert second.status_code == 200, second.text
    out = second.json()

    # The service asked the model to rewrite the follow-up, with the conversation so far...
    [asked] = seen.exchanges
    condense = load_prompt("condense_question")
    system, user = asked.request["messages"]
    assert system == {"role": "system", "content": condense.system()}
    assert "user: Tell me about the Moon" in user["content"] and f"Last question: {follow_up}" in user["content"]
    # ...and searched with what the model answered, not with the heuristic it falls back to without one.
    assert out["standalone_question"] == asked.reply.strip().splitlines()[0].strip(), asked.reply
    heuristic = standalone_question([{"role": "user", "content": "Tell me about the Moon"}], follow_up)
    assert out["standalone_question"] not in (follow_up, heuristic)
    history = await svc.services.answers.history(first["conversation_id"])
    assert [t.role for t in history] == ["user", "assistant", "user", "assistant"]
    # The rewrite's tokens are the answer's cost too: a "rewrite" row of /v1/usage, the model's own counts.
    assert asked.usage and asked.usage["prompt_tokens"] > 0
    usage = (await client.get("/v1/usage")).json()
    [rewrite] = [r for r in usage["rows"] if r["role"] == "rewrite"]
    assert (rewrite["model"], rewrite["answers"]) == (svc.settings.llm.model, 1)
    assert (rewrite["prompt_tokens"], rewrite["completion_tokens"]) == (
        asked.usage["prompt_tokens"],
        asked.usage["completion_tokens"],
    )
    assert usage["totals"]["rewrite"]["prompt_tokens"] == usage["totals"]["prompt_tokens"] == rewrite["prompt_tokens"]

"""/v1/query, /v1/chat and /v1/chat/completions through the real stack with the extractive generator."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.service import import_records

RECORDS = [
    {
        "id": "bridge",
        "title": "Golden Gate Bridge",
        "text": "The Golden Gate Bridge is a suspension bridge in San Francisco. It opened to traffic in 1937. "
        "Its main span is 1,280 metres long. The bridge is painted in a colour called International Orange.",
    },
    {
        "id": "tower",
        "title": "Eiffel Tower",
        "text": "The Eiffel Tower is a wrought-iron lattice tower in Paris. It was completed in 1889 for the World's "
        "Fair. Gustave Eiffel's company designed and built it. It is 330 metres tall.",
    },
    {
        "id": "bread",
        "title": "Sourdough",
        "text": "Sourdough bread is leavened by wild yeast and lactic acid bacteria. The starter is fed flour and "
        "water daily. A long fermentation gives the bread its sour taste.",
    },
]


@pytest.fixture
async def kb(client, collection):
    await import_records(client, collection, RECORDS)
    return collection


async def ask(client, **body):
    resp = await client.post("/v1/query", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_answer_cites_real_chunks(client, services, kb):
    out = await ask(client, question="When did the Golden Gate Bridge open?", collections=[kb])
    assert not out["abstained"], out
    assert "1937" in out["answer"] and "[1]" in out["answer"]
    cited = out["citations"][0]
    assert cited["n"] == 1 and cited["filename"] == "bridge" and cited["version"] == 1
    doc = (await client.get(f"/v1/documents/{cited['document_id']}")).json()
    assert doc["key"] == "bridge" and doc["active_version"] == cited["version"]
    assert "1937" in cited["snippet"]
    assert out["prompt"]["id"] == "grounded_answer" and len(out["prompt"]["version"]) == 12
    assert out["generator"] == "extractive"
    assert set(out["timings_ms"]) >= {"embed", "search", "rerank", "generate", "total"}
    stored = (await client.get(f"/v1/answers/{out['answer_id']}")).json()
    assert stored["question"] == "When did the Golden Gate Bridge open?"
    assert stored["prompt_version"] == out["prompt"]["version"]
    assert stored["contexts"][0]["chunk_id"] == cited["chunk_id"]
    assert stored["contexts"][0]["scores"]["dense_rank"] is not None


async def test_empty_collection_abstains(client, collection):
    out = await ask(client, question="What is the main span?", collections=[collection])
    assert out["abstained"] and out["abstain_reason"] == "no_results"
    assert out["citations"] == [] and out["answer"] == "The documents don't say."


async def test_unrelated_question_abstains(client, kb):
    out = await ask(client, question="Who won the 1998 football world cup final?", collections=[kb])
    # The collection has documents, so something is retrieved: the extractive generator finds it too weak.
    assert out["abstained"] and out["abstain_reason"] == "weak_evidence" and out["citations"] == [], out


async def test_query_errors(client, kb):
    resp = await client.post("/v1/query", json={"question": "x", "collections": [kb], "generator": "gpt-9"})
    assert resp.status_code == 422 and "unknown generator" in resp.json()["error"]
    resp = await client.post("/v1/query", json={"question": "x" * 5000, "collections": [kb]})
    assert resp.status_code == 422 and "limit" in resp.json()["error"]
    resp = await client.post("/v1/query", json={"question": "x", "collections": ["nope"], "stream": True})
    assert resp.status_code == 404
    assert (await client.get("/v1/answers/nope")).status_code == 404


async def test_sse_stream(client, kb):
    body = {"question": "How tall is the Eiffel Tower?", "collections": [kb], "stream": True}
    events = []
    async with client.stream("POST", "/v1/query", json=body) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and kinds.count("token") >= 2
    final = events[-1][1]
    assert "".join(d["text"] for e, d in events if e == "token") == final["answer"]
    assert "330" in final["answer"] and final["citations"] and final["answer_id"]


async def test_chat_follow_up_is_made_standalone(client, kb):
    first = (
        await client.post("/v1/chat", json={"message": "Tell me about the Eiffel Tower", "collections": [kb]})
    ).json()
    conv = first["conversation_id"]
    second = (
        await client.post("/v1/chat", json={"message": "How tall is it?", "collections": [kb], "conversation_id": conv})
    ).json()
    assert "Eiffel" in second["standalone_question"]
    assert "330" in second["answer"] and second["conversation_id"] == conv
    resp = await client.post("/v1/chat", json={"message": "hi", "collections": [kb], "conversation_id": "nope"})
    assert resp.status_code == 422


async def test_openai_sdk_against_chat_completions(service, kb):
    from openai import AsyncOpenAI

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://rag.test")
    sdk = AsyncOpenAI(base_url="http://rag.test/v1", api_key="unused", http_client=http)
    completion = await sdk.chat.completions.create(
        model=kb, messages=[{"role": "user", "content": "What leavens sourdough bread?"}]
    )
    content = completion.choices[0].message.content
    assert "wild yeast" in content and "[1]" in content
    extra = completion.model_extra
    assert extra["citations"][0]["filename"] == "bread" and extra["answer_id"]
    pieces, final_extra = [], None
    stream = await sdk.chat.completions.create(
        model=kb, messages=[{"role": "user", "content": "What leavens sourdough bread?"}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason == "stop":
            final_extra = chunk.model_extra
    assert "".join(pieces) == content
    assert final_extra and final_extra["citations"][0]["filename"] == "bread"
    await http.aclose()

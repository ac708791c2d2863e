"""An LLM answer streamed over SSE never shows tokens that the final citation check then takes back.

The service's real OpenAI-compatible generator streams from an endpoint on 127.0.0.1 that sends a fixed answer in
pieces: a real small model cannot be made to omit or misplace citations on demand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.support.chat_server import ChatServer
from tests.support.service import RunningService, create_collection, import_records


@pytest.fixture
async def moon(own_service) -> AsyncIterator[tuple[RunningService, ChatServer]]:
    """A service of its own whose "llm" generator streams from the canned endpoint, with the Moon indexed."""
    with ChatServer([], model="scripted") as llm:
        svc = await own_service({"llm": {"base_url": llm.base_url, "model": "scripted", "max_retries": 0}})
        record = {"id": "moon", "title": "Moon", "text": "The Moon orbits the Earth every 27.3 days."}
        await import_records(svc.client, await create_collection(svc.client, "moon"), [record])
        yield svc, llm


async def _events(client, collection: str) -> list[tuple[str | None, dict]]:
    body = {
        "question": "How long is the Moon's orbit?",
        "collections": [collection],
        "generator": "llm",
        "stream": True,
    }
    out = []
    async with client.stream("POST", "/v1/query", json=body) as resp:
        assert resp.status_code == 200
        event = None
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
    return out


async def test_uncited_stream_shows_only_the_abstention(moon):
    svc, llm = moon
    llm.pieces = ["The Moon ", "is made ", "of cheese."]
    events = await _events(svc.client, "moon")
    assert [e.request["stream"] for e in llm.exchanges] == [True]  # the answer was streamed from the endpoint
    tokens = "".join(d["text"] for e, d in events if e == "token")
    done = next(d for e, d in events if e == "done")
    assert done["abstained"] and done["abstain_reason"] == "no_citations"
    assert tokens == done["answer"] == "The documents don't say."


async def test_cited_stream_shows_the_validated_answer(moon):
    svc, llm = moon
    llm.pieces = ["The Moon orbits ", "the Earth ", "every 27.3 days ", "[", "1", "]", " and has tides ", "[4]", "."]
    events = await _events(svc.client, "moon")
    assert [e.request["stream"] for e in llm.exchanges] == [True]
    tokens = [d["text"] for e, d in events if e == "token"]
    done = next(d for e, d in events if e == "done")
    assert not done["abstained"] and done["removed_citations"] == 1
    assert "[4]" not in "".join(tokens) and "[1]" in tokens[0]
    # What was shown is the final answer, up to the whitespace the final cleaning tidies.
    assert " ".join("".join(tokens).split()).replace(" .", ".") == done["answer"]

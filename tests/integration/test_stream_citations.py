"""An LLM answer streamed over SSE never shows tokens that the final citation check then takes back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import pytest

from kernel.types import Context, GeneratedAnswer
from tests.conftest import wait_job


class ScriptedLLM:
    """Stands in for an LLM endpoint: streams a fixed answer in pieces (a real small model cannot be made to omit
    or misplace citations on demand)."""

    name = "llm"

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.calls = 0

    async def generate(self, question: str, contexts: Sequence[Context], prompt: object) -> GeneratedAnswer:
        self.calls += 1
        return GeneratedAnswer(text="".join(self.pieces), model="scripted")

    async def stream(self, question: str, contexts: Sequence[Context], prompt: object) -> AsyncIterator:
        for piece in self.pieces:
            yield piece
        yield await self.generate(question, contexts, prompt)


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


@pytest.fixture
async def moon(client, collection):
    body = json.dumps({"id": "moon", "title": "Moon", "text": "The Moon orbits the Earth every 27.3 days."})
    res = (await client.post(f"/v1/collections/{collection}/documents/import", content=body.encode())).json()
    assert (await wait_job(client, res["job_id"]))["status"] == "succeeded"
    return collection


async def test_uncited_stream_shows_only_the_abstention(client, services, moon, monkeypatch):
    monkeypatch.setitem(services.generators, "llm", ScriptedLLM(["The Moon ", "is made ", "of cheese."]))
    events = await _events(client, moon)
    tokens = "".join(d["text"] for e, d in events if e == "token")
    done = next(d for e, d in events if e == "done")
    assert done["abstained"] and done["abstain_reason"] == "no_citations"
    assert tokens == done["answer"] == "The documents don't say."


async def test_cited_stream_shows_the_validated_answer(client, services, moon, monkeypatch):
    pieces = ["The Moon orbits ", "the Earth ", "every 27.3 days ", "[", "1", "]", " and has tides ", "[4]", "."]
    monkeypatch.setitem(services.generators, "llm", ScriptedLLM(pieces))
    events = await _events(client, moon)
    tokens = [d["text"] for e, d in events if e == "token"]
    done = next(d for e, d in events if e == "done")
    assert not done["abstained"] and done["removed_citations"] == 1
    assert "[4]" not in "".join(tokens) and "[1]" in tokens[0]
    # What was shown is the final answer, up to the whitespace the final cleaning tidies.
    assert " ".join("".join(tokens).split()).replace(" .", ".") == done["answer"]

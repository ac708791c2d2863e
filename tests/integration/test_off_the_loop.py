"""Blocking calls a request makes run in a worker thread, never on the event loop every other request shares.

`shard.info()` of Qdrant Edge (health check, collection creation with filterable fields) and the prompt file the
chat's condense step reads used to run on the loop: while the shard was busy (a large upsert holds its lock) or the
disk was slow, every request of the service waited. Each test records the thread the real call runs on.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence

import pytest

import rag.api.routes.answers as answer_routes
from kernel.types import Context, GeneratedAnswer


class Recorder:
    """Calls the real function and notes the thread each call ran on."""

    def __init__(self, real) -> None:
        self.real = real
        self.threads: list[int] = []

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.get_ident())
        return self.real(*args, **kwargs)


class RecordedShard:
    """The real Qdrant Edge shard, with its `info()` recorded."""

    def __init__(self, shard) -> None:
        self._shard = shard
        self.info = Recorder(shard.info)

    def __getattr__(self, name: str):
        return getattr(self._shard, name)


@pytest.fixture
def shard(services, monkeypatch) -> RecordedShard:
    if not hasattr(services.store, "_shard"):
        pytest.skip("the service runs on a Qdrant server, not Qdrant Edge")
    recorded = RecordedShard(services.store._shard)
    monkeypatch.setattr(services.store, "_shard", recorded)
    return recorded


async def test_the_health_check_reads_the_shard_off_the_loop(client, shard):
    loop_thread = threading.get_ident()  # the test runs on the loop that serves the requests
    resp = await client.get("/healthz")
    assert resp.status_code == 200 and resp.json()["checks"]["store"] == "ok", resp.text
    assert shard.info.threads, "the shard was not asked"
    assert loop_thread not in shard.info.threads, "shard.info() ran on the event loop's thread"


async def test_a_filterable_field_is_looked_up_off_the_loop(client, shard, request):
    loop_thread = threading.get_ident()
    body = {"name": f"offloop-{request.node.name[-8:].lower()}", "filterable": {"year": "integer"}}
    resp = await client.post("/v1/collections", json=body)
    assert resp.status_code == 201, resp.text
    assert shard.info.threads, "the shard was not asked"
    assert loop_thread not in shard.info.threads, "shard.info() ran on the event loop's thread"


class CondensingLLM:
    """Stands in for the LLM: rewrites the follow-up, and answers without a citation (so the answer abstains)."""

    name = "llm"

    async def generate(self, question: str, contexts: Sequence[Context], prompt: object) -> GeneratedAnswer:
        return GeneratedAnswer(text="How tall is the Eiffel Tower?", model="condensing-test")

    async def stream(self, question: str, contexts: Sequence[Context], prompt: object) -> AsyncIterator:
        yield await self.generate(question, contexts, prompt)


async def test_the_chat_reads_its_condense_prompt_off_the_loop(client, services, collection, monkeypatch):
    monkeypatch.setitem(services.generators, "llm", CondensingLLM())
    reads = Recorder(answer_routes.load_prompt)
    monkeypatch.setattr(answer_routes, "load_prompt", reads)
    loop_thread = threading.get_ident()
    opening = {"message": "Tell me about the Eiffel Tower", "collections": [collection]}
    first = await client.post("/v1/chat", json=opening)
    assert first.status_code == 200, first.text
    conversation_id = first.json()["conversation_id"]
    second = await client.post("/v1/chat", json={**opening, "message": "How tall?", "conversation_id": conversation_id})
    assert second.status_code == 200, second.text
    assert second.json()["standalone_question"] == "How tall is the Eiffel Tower?"  # the condense step ran
    assert reads.threads, "the condense prompt was not read"
    assert loop_thread not in reads.threads, "the condense prompt was read on the event loop's thread"

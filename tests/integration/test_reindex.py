"""Reindexing without downtime (`rag reindex`): a collection is rebuilt with another chunk size beside the live
index while queries run without a pause, on the real model and the real stores (Qdrant Edge, and the server store
on qdrant-client's local engine). No query fails, every response holds hits of one generation only, and once the
switch is made queries see the new generation alone; then the old one is gone from the store.

Bad input: an unknown collection, a reindex already running, chunk sizes out of range, an upload during a reindex:
each refused with what to do, and the collection works afterwards.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingestion.reindex import ChunkSizes
from kernel.errors import Conflict, InvalidInput, NotFound
from kernel.records import NewCollection
from kernel.types import ChunkSelector
from rag.reindex import reindex_collection
from rag.services import Services
from rag.storage.catalog import Catalog
from retrieval.search import SearchOptions
from tests.conftest import REPO
from tests.support.service import RunningService, create_collection, import_records, start_service

TOPICS = [
    ("bridge", "The Golden Gate Bridge opened in 1937 and spans the strait between San Francisco and Marin."),
    ("tower", "The Eiffel Tower was completed in 1889 as the entrance arch of the World's Fair in Paris."),
    ("bread", "Sourdough bread rises with wild yeast and lactic acid bacteria over many hours."),
    ("volcano", "Mount Etna in Sicily is one of the most active volcanoes on Earth, erupting often."),
    ("comet", "Halley's Comet returns to the inner solar system about every seventy-six years."),
    ("whale", "Blue whales are the largest animals known to have lived, longer than thirty metres."),
]
QUESTIONS = ["When did the bridge open?", "Who built the tower?", "How does bread rise?", "Which comet returns?"]


def records() -> list[dict]:
    """Documents of a few hundred tokens each: several chunks at one size, many more at a smaller one."""
    out = []
    for key, sentence in TOPICS:
        text = " ".join(f"{sentence} Part {i} of the notes on {key} adds detail number {i}." for i in range(12))
        out.append({"id": key, "title": key.title(), "text": text})
    return out


@dataclass
class Watch:
    """Queries asked without a pause while something else happens: what each response held, and any failure."""

    services: Services
    collection: str
    # Per response: its lane, and the (generation, model) of each hit.
    responses: list[tuple[int, list[tuple[int, str]]]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def until(self, count: int) -> None:
        """Until `count` responses have come (a failure counts: the test then reports it)."""
        async with self.answered:
            await self.answered.wait_for(lambda: len(self.responses) + len(self.failures) >= count)

    async def ask(self, lane: int) -> None:
        n = lane
        while not self.stop.is_set():
            question = QUESTIONS[n % len(QUESTIONS)]
            n += 1
            try:
                found = await self.services.retriever.retrieve(question, [self.collection], SearchOptions(top_k=5))
            except Exception as exc:  # any failure is what the test is about
                self.failures.append(exc)
            else:
                hits = [(int(h.payload.get("generation", 0)), str(h.payload["model_id"])) for h in found.hits]
                self.responses.append((lane, hits))
            async with self.answered:
                self.answered.notify_all()

    def generations(self, lane: int | None = None) -> list[set[int]]:
        return [{g for g, _ in hits} for n, hits in self.responses if lane is None or n == lane]


@asynccontextmanager
async def watching(services: Services, name: str, lanes: int = 2) -> AsyncIterator[Watch]:
    watch = Watch(services, name)
    tasks = [asyncio.create_task(watch.ask(lane)) for lane in range(lanes)]
    try:
        yield watch
    finally:
        watch.stop.set()
        await asyncio.gather(*tasks)


@pytest.fixture(params=["edge", "qdrant-client-local"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningService]:
    """A service of the test's own, on Qdrant Edge or on the server store over qdrant-client's local engine."""
    swapped: list = []

    def on_local_qdrant(svc: Services) -> None:
        from qdrant_client import AsyncQdrantClient

        from retrieval.stores.qdrant_server import QdrantServerStore

        local = QdrantServerStore("unused", "chunks", None, 30, client=AsyncQdrantClient(path=str(tmp_path / "ql")))
        swapped.append(svc.store)
        svc.store = svc.indexer.store = svc.retriever.store = local
        svc.indexer.stored_vectors = local

    prepare = on_local_qdrant if request.param == "qdrant-client-local" else None
    async with start_service(tmp_path / "data", prepare=prepare) as running:
        if swapped:
            await running.services.store.ensure(running.services.embedder.dim)
        try:
            yield running
        finally:
            for store in swapped:
                await store.close()


async def count_hits_by_generation(services: Services, name: str) -> dict[int, int]:
    return {g: await services.store.count(ChunkSelector(collection=name, generation=g)) for g in (0, 1, 2)}


async def test_queries_during_a_reindex_never_fail_nor_mix_generations(running: RunningService) -> None:
    services, client = running.services, running.client
    name = await create_collection(client, "reindexed")
    await import_records(client, name, records())
    before = await count_hits_by_generation(services, name)
    assert before[0] > 0 and before[1] == 0

    async with watching(services, name) as watch:
        await watch.until(4)  # queries are being answered before the reindex starts
        report = await reindex_collection(services, name, ChunkSizes(48, 8), drain_seconds=1.0)
        await watch.until(len(watch.responses) + 4)  # and after it ends

    assert watch.failures == []
    generations = watch.generations()
    assert all(len(g) == 1 for g in generations), "a response was empty or mixed generations"
    assert all(len({m for _, m in hits}) == 1 for _, hits in watch.responses), "a response mixed models"
    for lane in (0, 1):
        # A lane asks one question at a time: the old generation until the switch, the new one after, never back.
        order = [next(iter(g)) for g in watch.generations(lane)]
        assert order == sorted(order) and order[0] == 0 and order[-1] == 1, order

    assert report.generation == 1 and report.versions == len(TOPICS)
    after = await count_hits_by_generation(services, name)
    assert after[0] == 0, "the old generation was not dropped"
    assert after[1] == report.chunks > before[0]  # a smaller chunk size: more chunks
    assert await services.store.count(ChunkSelector(collection=name)) == after[1]
    listed = (await client.get(f"/v1/collections/{name}")).json()
    assert listed["chunk_count"] == report.chunks

    # The collection goes on as usual: a new document lands in the live generation and is found.
    await import_records(client, name, [{"id": "owl", "title": "Owls", "text": "Snowy owls hunt lemmings."}])
    found = await services.retriever.retrieve("What do snowy owls hunt?", [name], SearchOptions(top_k=3))
    assert found.hits[0].payload["document_id"] and "lemmings" in found.hits[0].payload["text"]
    assert {h.payload["generation"] for h in found.hits} == {1}


async def test_bad_reindex_requests_are_refused_and_the_collection_keeps_working(running: RunningService) -> None:
    services, client = running.services, running.client
    name = await create_collection(client, "refusals")
    await import_records(client, name, records()[:2])

    with pytest.raises(NotFound, match="'nope' does not exist"):
        await reindex_collection(services, "nope", drain_seconds=0)
    for sizes, message in [
        (ChunkSizes(8, 0), "chunk size 8 tokens is out of range"),
        (ChunkSizes(100_000, 0), "out of range"),
        (ChunkSizes(64, 40), "half the chunk size"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            await reindex_collection(services, name, sizes, drain_seconds=0)
    assert await services.catalog.generations.running(name) is None  # refused before claiming the collection

    # One at a time: a reindex holds the collection until it ends.
    ticket = await services.catalog.generations.begin(name, {})
    with pytest.raises(Conflict, match=r"already running.*--force"):
        await reindex_collection(services, name, drain_seconds=0)
    # Uploads wait for it: a version added now would miss the new generation.
    resp = await client.post(f"/v1/collections/{name}/documents/import", content=b'{"id": "x", "text": "late"}')
    assert resp.status_code == 409, resp.text
    assert "being reindexed" in resp.json()["error"]
    # A reindex whose process died is taken over with force; the one it replaced can no longer switch.
    report = await reindex_collection(services, name, ChunkSizes(64, 8), force=True, drain_seconds=0)
    assert report.generation == ticket.target == 1
    with pytest.raises(Conflict, match="taken over"):
        await services.catalog.generations.switch(ticket, [], "m")

    # Healthy afterwards: searches answer from the new generation, uploads are accepted again.
    found = await services.retriever.retrieve("When did the bridge open?", [name], SearchOptions(top_k=3))
    assert found.hits and {h.payload["generation"] for h in found.hits} == {1}
    await import_records(client, name, [{"id": "late", "text": "A late note about the Golden Gate Bridge."}])


async def test_a_reindex_that_fails_leaves_the_live_generation_whole(running: RunningService) -> None:
    services, client = running.services, running.client
    name = await create_collection(client, "failing")
    await import_records(client, name, records()[:2])
    before = await count_hits_by_generation(services, name)

    generations = services.catalog.generations
    real_switch = generations.switch

    async def switch_fails(*args: object) -> None:  # the database goes away once the new generation is built
        raise ConnectionError("the database went away (injected)")

    generations.switch = switch_fails  # type: ignore[method-assign, assignment]  # this service's own catalog, restored below
    try:
        with pytest.raises(ConnectionError):
            await reindex_collection(services, name, ChunkSizes(32, 0), drain_seconds=0)
    finally:
        generations.switch = real_switch  # type: ignore[method-assign]  # restored
    assert await count_hits_by_generation(services, name) == before  # the half-built generation was removed
    assert await services.catalog.generations.running(name) is None
    found = await services.retriever.retrieve("How does bread rise?", [name], SearchOptions(top_k=3))
    assert found.hits and {h.payload.get("generation", 0) for h in found.hits} == {0}
    # And the next reindex succeeds.
    assert (await reindex_collection(services, name, drain_seconds=0)).generation == 1


def test_the_command_reports_refusals_in_one_line_and_reindexes(tmp_path: Path) -> None:
    """`rag reindex` on a stopped embedded service's data directory: refusals exit 1 with the reason, a reindex of
    an existing collection exits 0 and names the live generation."""
    data = tmp_path / "data"
    data.mkdir()

    async def create() -> None:
        catalog = Catalog(f"sqlite+aiosqlite:///{data / 'rag.db'}")
        await catalog.prepare_schema()
        await catalog.collections.create(NewCollection(name="empty"))
        await catalog.close()

    asyncio.run(create())

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        environ.update(RAG_DATA_DIR=str(data), RAG_LOG_LEVEL="warning")
        cmd = [sys.executable, "-m", "rag", "reindex", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=environ, cwd=REPO)

    unknown = rag("--collection", "nope")
    assert unknown.returncode == 1 and "collection 'nope' does not exist" in unknown.stderr, unknown.stderr
    too_small = rag("--collection", "empty", "--chunk-tokens", "8")
    assert too_small.returncode == 1 and "chunk size 8 tokens is out of range" in too_small.stderr, too_small.stderr
    done = rag("--collection", "empty", "--drain-seconds", "0")
    assert done.returncode == 0, done.stderr
    assert "empty: generation 1 is live (0 versions, 0 chunks" in done.stdout

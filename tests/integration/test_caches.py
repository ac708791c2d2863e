"""The embedding, query-embedding and answer caches, through the real API, worker, Qdrant Edge and MiniLM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from kernel.cache_stats import ANSWERS, EMBEDDINGS, QUERY_EMBEDDINGS, CacheStats
from kernel.types import ChunkSelector
from tests.support.polling import wait_job
from tests.support.service import RunningService, create_collection, import_records, start_service

WORDS = ["amber", "basalt", "cedar", "delta", "ember", "fjord", "granite", "heron", "iris", "juniper", "kelp", "lark"]
# About 80 sentences of 25 word pieces: several chunks of at most 256; only the last sentence changes in version 2.
SENTENCES = [
    f"Survey note {i}: the {WORDS[i % 12]} trail climbs {i * 37 % 900 + 100} metres past the {WORDS[(i * 5) % 12]} "
    f"lake in {1900 + i * 3}."
    for i in range(80)
]
V1 = " ".join(SENTENCES)
V2 = " ".join([*SENTENCES[:-1], "Survey note 79: the lark trail was closed after the flood of 2021."])
BRIDGE = [
    {"id": "bridge", "text": "The Golden Gate Bridge opened to traffic in 1937. Its main span is 1,280 metres long."},
    {"id": "tower", "text": "The Eiffel Tower was completed in 1889. It is 330 metres tall and stands in Paris."},
]
QUESTION = "When did the Golden Gate Bridge open to traffic?"


@pytest.fixture(scope="module")
async def svc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningService]:
    """A service of this module's own: the answer cache on (the session's has it off), one collection opted out."""
    overrides = {"cache": {"answers": True, "answer_opt_out": ["optout"]}}
    async with start_service(tmp_path_factory.mktemp("caches"), overrides) as running:
        yield running


def _counts(stats: CacheStats, cache: str) -> tuple[int, int]:
    return stats.hits[cache], stats.misses[cache]


def _points(running: RunningService, document_id: str, version: int) -> list:
    import qdrant_edge as qe

    from retrieval.stores.qdrant_edge import QdrantEdgeStore, edge_filter

    store = running.services.store
    assert isinstance(store, QdrantEdgeStore)
    flt = edge_filter(ChunkSelector(document_id=document_id, version=version))
    request = qe.ScrollRequest(filter=flt, limit=10_000, with_payload=True, with_vector=True)
    points, _ = store.shard.scroll(request)
    return sorted(points, key=lambda p: p.payload["chunk_index"])


async def _upload(running: RunningService, collection: str, name: str, text: str) -> dict:
    files = {"files": (name, text.encode())}
    resp = await running.client.post(f"/v1/collections/{collection}/documents", files=files)
    assert resp.status_code == 202, resp.text
    out = resp.json()[0]
    assert (await wait_job(running.client, out["job_id"]))["status"] == "succeeded"
    return out


async def test_a_new_version_embeds_only_its_changed_chunks(svc: RunningService) -> None:
    stats = svc.services.cache_stats
    await create_collection(svc.client, "survey")
    first = await _upload(svc, "survey", "survey.txt", V1)
    hits0, misses0 = _counts(stats, EMBEDDINGS)
    second = await _upload(svc, "survey", "survey.txt", V2)
    assert second["version"] == 2
    hits1, misses1 = _counts(stats, EMBEDDINGS)

    old = {p.payload["text"] for p in _points(svc, first["document_id"], 1)}
    new = _points(svc, first["document_id"], 2)
    changed = [p for p in new if p.payload["text"] not in old]
    assert len(new) >= 4 and 1 <= len(changed) <= 2, (len(new), len(changed))
    # Exactly the changed chunks were encoded; every other one reused version 1's vector.
    assert misses1 - misses0 == len(changed)
    assert hits1 - hits0 == len(new) - len(changed)
    # A reused vector is the one the model makes for that text.
    texts = [p.payload["text"] for p in new]
    fresh = np.array(svc.services.embedder.embed_documents(texts))
    stored = np.array([p.vector["dense"] for p in new])
    assert np.allclose(stored, fresh, atol=1e-4)


async def test_reuse_requires_the_same_model(svc: RunningService) -> None:
    await create_collection(svc.client, "models")
    done = await _upload(svc, "models", "notes.txt", " ".join(SENTENCES[:5]))
    digests = [p.payload["text_sha256"] for p in _points(svc, done["document_id"], 1)]
    store = svc.services.store
    model = svc.services.embedder.model_id
    assert set(await store.dense_by_text(model, digests)) == set(digests)
    assert await store.dense_by_text("another/model", digests) == {}


async def test_the_same_text_in_another_collection_is_not_encoded_again(svc: RunningService) -> None:
    stats = svc.services.cache_stats
    await create_collection(svc.client, "copy-a")
    await create_collection(svc.client, "copy-b")
    await import_records(svc.client, "copy-a", [{"id": "x", "text": " ".join(SENTENCES[10:20])}])
    hits0, misses0 = _counts(stats, EMBEDDINGS)
    await import_records(svc.client, "copy-b", [{"id": "x", "text": " ".join(SENTENCES[10:20])}])
    hits1, misses1 = _counts(stats, EMBEDDINGS)
    assert misses1 == misses0 and hits1 > hits0


async def test_a_repeated_search_query_is_embedded_once(svc: RunningService) -> None:
    from retrieval.query_cache import CachingQueryEmbedder

    stats = svc.services.cache_stats
    await create_collection(svc.client, "queries")
    body = {"query": "a question asked twice about trails", "collections": ["queries"]}
    assert (await svc.client.post("/v1/search", json=body)).status_code == 200
    hits0, misses0 = _counts(stats, QUERY_EMBEDDINGS)
    assert (await svc.client.post("/v1/search", json=body)).status_code == 200
    assert _counts(stats, QUERY_EMBEDDINGS) == (hits0 + 1, misses0)

    # Bounded: the least recently used query goes first.
    own = CacheStats()
    lru = CachingQueryEmbedder(svc.services.embedder, 2, own)
    for text in ("one", "two", "one", "three", "one", "two"):
        lru.embed_query(text)
    assert len(lru) == 2
    # "two" was evicted by "three" (one was used more recently), so it was encoded twice.
    assert (own.hits[QUERY_EMBEDDINGS], own.misses[QUERY_EMBEDDINGS]) == (2, 4)


async def _ask(running: RunningService, headers: dict | None = None, **body: object) -> dict:
    payload = {"question": QUESTION, "collections": ["bridges"], **body}
    resp = await running.client.post("/v1/query", json=payload, headers=headers or {})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_a_repeated_question_is_served_from_cache_until_a_document_changes(svc: RunningService) -> None:
    client = svc.client
    await create_collection(client, "bridges")
    await import_records(client, "bridges", BRIDGE)
    first = await _ask(svc)
    assert not first["abstained"] and first["cached"] is False
    hits0, _ = _counts(svc.services.cache_stats, ANSWERS)

    again = await _ask(svc, question="  when did the golden gate bridge OPEN to traffic ")
    assert again["cached"] is True and again["cached_from"] == first["answer_id"]
    assert again["answer_id"] != first["answer_id"]
    assert (again["answer"], again["citations"]) == (first["answer"], first["citations"])
    assert again["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}
    assert _counts(svc.services.cache_stats, ANSWERS)[0] == hits0 + 1
    # Recorded as an answer of its own that names the original.
    stored = (await client.get(f"/v1/answers/{again['answer_id']}")).json()
    assert stored["answer"] == first["answer"]

    # Streamed: the same cached answer, word by word.
    resp = await client.post("/v1/query", json={"question": QUESTION, "collections": ["bridges"], "stream": True})
    assert resp.status_code == 200 and '"cached": true' in resp.text

    # Anything else in the key is another question.
    assert (await _ask(svc, top_k=2))["cached"] is False
    assert (await _ask(svc, filters={"filename": "bridge"}))["cached"] is False

    # A new document in the collection: answered afresh (it might now be retrieved), then cached again.
    await import_records(client, "bridges", [{"id": "dam", "text": "The Hoover Dam was finished in 1936."}])
    fresh = await _ask(svc)
    assert fresh["cached"] is False
    assert (await _ask(svc))["cached_from"] == fresh["answer_id"]

    # A new version of the document the answer rests on: answered afresh, from the new version.
    changed = [{"id": "bridge", "text": BRIDGE[0]["text"].replace("1937", "May 1937")}]
    await import_records(client, "bridges", changed)
    newest = await _ask(svc)
    assert newest["cached"] is False
    assert "May 1937" in newest["answer"] or any(c["version"] == 2 for c in newest["citations"])

    # The document it rests on deleted (which changes no other document): never served again.
    assert (await _ask(svc))["cached_from"] == newest["answer_id"]
    cited = newest["citations"][0]["document_id"]
    assert (await client.delete(f"/v1/documents/{cited}")).status_code == 204
    after = await _ask(svc)
    assert after["cached"] is False and cited not in {c["document_id"] for c in after["citations"]}


async def test_a_collection_can_opt_out(svc: RunningService) -> None:
    await create_collection(svc.client, "optout")
    await import_records(svc.client, "optout", BRIDGE)
    await _ask(svc, collections=["optout"])
    assert (await _ask(svc, collections=["optout"]))["cached"] is False


async def test_never_across_grants(tmp_path: Path) -> None:
    """Two keys with other grants never share an answer; two with the same grants do."""
    async with start_service(tmp_path / "grants", {"cache": {"answers": True}}) as running:
        client = running.client
        root = await client.post("/v1/keys", json={"role": "admin", "collections": ["*"], "name": "root"})
        admin = {"Authorization": f"Bearer {root.json()['key']}"}
        client.headers.update(admin)  # for the job polling; each question names its own key
        for name in ("bridges", "other"):
            assert (await client.post("/v1/collections", json={"name": name}, headers=admin)).status_code == 201
        body = "\n".join(f'{{"id": "{r["id"]}", "text": "{r["text"]}"}}' for r in BRIDGE).encode()
        resp = await client.post("/v1/collections/bridges/documents/import", content=body, headers=admin)
        assert (await wait_job(client, resp.json()["job_id"]))["status"] == "succeeded"

        async def key(collections: list[str]) -> dict[str, str]:
            made = await client.post("/v1/keys", json={"role": "reader", "collections": collections}, headers=admin)
            assert made.status_code == 201, made.text
            return {"Authorization": f"Bearer {made.json()['key']}"}

        narrow, wide, narrow_too = await key(["bridges"]), await key(["bridges", "other"]), await key(["bridges"])
        first = await _ask(running, narrow)
        assert first["cached"] is False
        assert (await _ask(running, wide))["cached"] is False  # other grants: never another's answer
        same = await _ask(running, narrow_too)
        assert same["cached"] is True and same["cached_from"] == first["answer_id"]
        # The copy is the asker's own answer: it may read it, the other key may not.
        assert (await client.get(f"/v1/answers/{same['answer_id']}", headers=narrow_too)).status_code == 200
        assert (await client.get(f"/v1/answers/{same['answer_id']}", headers=narrow)).status_code == 404

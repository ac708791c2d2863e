"""/v1/search: hybrid retrieval over the real store and model, filters, and one version per document."""

from __future__ import annotations

import json

import pytest

from tests.support.polling import FINISHED, poll, wait_job

RECORDS = [
    {
        "id": "bridge",
        "title": "Golden Gate Bridge",
        "text": "The Golden Gate Bridge opened in 1937 in San Francisco.",
        "metadata": {"year": 1937, "topic": "engineering", "published": "2020-05-01T00:00:00Z"},
    },
    {
        "id": "tower",
        "title": "Eiffel Tower",
        "text": "The Eiffel Tower was completed in 1889 for the World's Fair.",
        "metadata": {"year": 1889, "topic": "engineering", "published": "2019-01-01T00:00:00Z"},
    },
    {
        "id": "bread",
        "title": "Sourdough",
        "text": "Sourdough bread rises with wild yeast and lactic acid bacteria.",
        "metadata": {"year": 2000, "topic": "food", "published": "2021-07-15T00:00:00Z"},
    },
]


@pytest.fixture
async def indexed(client, collection):
    # A second collection with metadata fields declared filterable.
    name = collection + "-f"
    resp = await client.post(
        "/v1/collections",
        json={"name": name, "filterable": {"year": "integer", "topic": "keyword", "published": "datetime"}},
    )
    assert resp.status_code == 201, resp.text
    body = "\n".join(json.dumps(r) for r in RECORDS).encode()
    res = (await client.post(f"/v1/collections/{name}/documents/import", content=body)).json()
    assert (await wait_job(client, res["job_id"]))["status"] == "succeeded"
    return name


async def search(client, **body):
    resp = await client.post("/v1/search", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_hybrid_search_ranks_the_right_document(client, indexed):
    out = await search(client, query="When did the Golden Gate Bridge open?", collections=[indexed], top_k=3)
    top = out["hits"][0]
    assert top["metadata"]["year"] == 1937 and "1937" in top["text"]
    assert top["scores"]["dense_rank"] == 1 and top["scores"]["sparse_rank"] == 1
    assert set(out["timings_ms"]) >= {"embed", "search", "total"}
    dense = await search(client, query="wild yeast", collections=[indexed], top_k=1, mode="dense")
    sparse = await search(client, query="wild yeast", collections=[indexed], top_k=1, mode="sparse")
    assert dense["hits"][0]["document_id"] == sparse["hits"][0]["document_id"]
    assert sparse["hits"][0]["scores"]["dense"] is None


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"metadata.topic": "food"}, {"bread"}),
        ({"metadata.topic": {"any": ["food", "engineering"]}}, {"bread", "bridge", "tower"}),
        ({"metadata.year": {"gte": 1900, "lt": 2000}}, {"bridge"}),
        ({"metadata.published": {"gte": "2020-01-01"}}, {"bridge", "bread"}),
        ({"metadata.topic": "engineering", "metadata.year": {"lt": 1900}}, {"tower"}),
    ],
)
async def test_filters_restrict_results(client, indexed, filters, expected):
    out = await search(
        client, query="history of construction and food", collections=[indexed], top_k=10, filters=filters
    )
    docs = (await client.get(f"/v1/collections/{indexed}/documents")).json()
    keys = {d["document_id"]: d["key"] for d in docs}
    assert {keys[h["document_id"]] for h in out["hits"]} == expected


@pytest.mark.parametrize(
    ("filters", "status", "needle"),
    [
        ({"metadata.colour": "red"}, 422, "not an indexed field"),
        ({"metadata.year": {"near": 5}}, 422, "unknown operator"),
        ({"metadata.year": "nineteen"}, 422, "expected a number"),
        ({"metadata.published": {"gte": "yesterday"}}, 422, "ISO 8601"),
        ({"metadata.topic": {"gte": "a"}}, 422, "ranges work on numbers"),
    ],
)
async def test_bad_filters_are_422(client, indexed, filters, status, needle):
    resp = await client.post("/v1/search", json={"query": "x", "collections": [indexed], "filters": filters})
    assert resp.status_code == status and needle in resp.json()["error"], resp.text


async def test_bad_search_requests(client, indexed):
    resp = await client.post("/v1/search", json={"query": "x", "collections": ["no-such"]})
    assert resp.status_code == 404 and "no-such" in resp.json()["error"]
    resp = await client.post("/v1/search", json={"query": "", "collections": [indexed]})
    assert resp.status_code == 422
    resp = await client.post("/v1/search", json={"query": "x", "collections": [indexed], "top_k": 10_000})
    assert resp.status_code == 422 and "limit" in resp.json()["error"]
    assert (await client.get("/healthz")).status_code == 200


async def test_near_duplicates_are_collapsed(client, collection):
    text = "The reactor cooling loop uses two redundant pumps rated at 400 litres per minute each."
    body = "\n".join(json.dumps({"id": f"copy{i}", "text": text + ("" if i == 0 else " Copy.")}) for i in range(4))
    res = (await client.post(f"/v1/collections/{collection}/documents/import", content=body.encode())).json()
    await wait_job(client, res["job_id"])
    out = await search(client, query="reactor cooling pumps", collections=[collection], top_k=4)
    assert len(out["hits"]) == 1


async def test_only_the_active_version_is_searchable(client, collection):
    url = f"/v1/collections/{collection}/documents"
    v1 = (await client.post(url, files={"files": ("p.txt", b"The launch code is ALPHA.")})).json()[0]
    await wait_job(client, v1["job_id"])
    v2 = (await client.post(url, files={"files": ("p.txt", b"The launch code is BRAVO.")})).json()[0]
    await wait_job(client, v2["job_id"])
    out = await search(client, query="launch code", collections=[collection], top_k=10)
    assert [(h["version"], "BRAVO" in h["text"]) for h in out["hits"]] == [(2, True)]
    await client.post(f"/v1/documents/{v1['document_id']}/rollback")
    out = await search(client, query="launch code", collections=[collection], top_k=10)
    assert [(h["version"], "ALPHA" in h["text"]) for h in out["hits"]] == [(1, True)]


async def test_queries_during_reingestion_see_exactly_one_version(client, collection):
    def doc(tag: str) -> bytes:
        paras = [
            f"Section {i}. The maintenance schedule item {i} requires inspection by team {tag}." for i in range(60)
        ]
        return "\n\n".join(paras).encode()

    url = f"/v1/collections/{collection}/documents"
    v1 = (await client.post(url, files={"files": ("manual.txt", doc("RED"))})).json()[0]
    assert (await wait_job(client, v1["job_id"]))["status"] == "succeeded"
    v2 = (await client.post(url, files={"files": ("manual.txt", doc("BLUE"))})).json()[0]
    seen: list[set[int]] = []

    async def search_then_job() -> dict:
        """Search (what a user sees while version 2 is indexed), then read the job."""
        out = await search(client, query="maintenance inspection team", collections=[collection], top_k=20)
        seen.append({h["version"] for h in out["hits"]})
        return (await client.get(f"/v1/jobs/{v2['job_id']}")).json()

    job = await poll(search_then_job, lambda j: j["status"] in FINISHED, what="re-ingestion to finish", every_s=0.01)
    assert job["status"] == "succeeded"
    out = await search(client, query="maintenance inspection team", collections=[collection], top_k=20)
    seen.append({h["version"] for h in out["hits"]})
    assert all(len(versions) == 1 for versions in seen), seen
    assert seen[0] == {1} and seen[-1] == {2}

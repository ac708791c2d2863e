"""Every sample document through the real API, queue, worker, Qdrant Edge and model, with no outbound traffic."""

from __future__ import annotations

import qdrant_edge as qe

from kernel.types import ChunkSelector, ChunkState
from retrieval.stores.qdrant_edge import edge_filter
from tests.conftest import DOCS
from tests.support.polling import wait_job
from tests.unit.test_parse import FAILURES, SNIPPETS

# Rejected at upload, before any job: (status, what the message says).
REJECTED = {"CantinaBand3.wav": (415, "not a supported document type"), "empty.txt": (422, "is empty")}


def _norm(text: str) -> str:
    return " ".join(text.split())


async def test_every_sample_document(client, services, collection, netguard):
    assert sorted(p.name for p in DOCS.iterdir()) == sorted(set(SNIPPETS) | set(FAILURES))
    with netguard.watch() as outbound:
        uploads = {}
        for path in sorted(DOCS.iterdir()):
            resp = await client.post(
                f"/v1/collections/{collection}/documents", files={"files": (path.name, path.read_bytes())}
            )
            if path.name in REJECTED:
                status, needle = REJECTED[path.name]
                assert resp.status_code == status, (path.name, resp.text)
                assert needle in resp.json()["error"] and path.name in resp.json()["error"]
                continue
            assert resp.status_code == 202, (path.name, resp.text)
            uploads[path.name] = resp.json()[0]
        jobs = {name: await wait_job(client, up["job_id"]) for name, up in uploads.items()}
    assert outbound == [], f"ingestion tried to reach the network: {outbound}"

    for name, job in jobs.items():
        doc_id = uploads[name]["document_id"]
        if name in FAILURES:
            assert job["status"] == "failed", (name, job)
            assert FAILURES[name] in job["error"], (name, job["error"])
            assert job["attempts"] == 1, "a document error must not be retried"
            assert await services.store.count(ChunkSelector(document_id=doc_id)) == 0
            detail = (await client.get(f"/v1/documents/{doc_id}")).json()
            assert detail["versions"][0]["status"] == "failed" and FAILURES[name] in detail["versions"][0]["error"]
            continue
        assert job["status"] == "succeeded", (name, job)
        points, _ = services.store.shard.scroll(
            qe.ScrollRequest(
                filter=edge_filter(ChunkSelector(document_id=doc_id, state=ChunkState.active)),
                limit=5000,
                with_payload=True,
            )
        )
        assert len(points) == job["total"] > 0, name
        text = _norm(" ".join(p.payload["text"] for p in points))
        assert _norm(SNIPPETS[name]) in text, (name, text[:300])
        assert all(p.payload["filename"] == name and p.payload["version"] == 1 for p in points)

    docs = (await client.get(f"/v1/collections/{collection}/documents")).json()
    assert len(docs) == len(uploads)
    assert (await client.get("/healthz")).status_code == 200

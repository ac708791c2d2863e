"""Versions, idempotency, rollback and deletion through the real API, worker, Qdrant Edge and model."""

from __future__ import annotations

from kernel.types import ChunkSelector, ChunkState
from tests.support.polling import wait_job
from tests.support.service import create_collection

TEXT_V1 = (
    "Policy handbook\n\nEmployees accrue twenty vacation days per year. Unused days expire in March.\n\n"
    "Remote work is allowed two days per week with the approval of a manager."
)
TEXT_V2 = TEXT_V1.replace("twenty", "twenty-five") + "\n\nA new section about parental leave of sixteen weeks."


async def upload(client, collection, name, data, **form):
    resp = await client.post(f"/v1/collections/{collection}/documents", files={"files": (name, data)}, data=form)
    assert resp.status_code == 202, resp.text
    return resp.json()[0]


async def chunk_texts(services, document_id, version=None, state=None):
    from retrieval.stores.qdrant_edge import QdrantEdgeStore, edge_filter

    store = services.store
    assert isinstance(store, QdrantEdgeStore)
    import qdrant_edge as qe

    sel = ChunkSelector(document_id=document_id, version=version, state=state)
    points, _ = store.shard.scroll(qe.ScrollRequest(filter=edge_filter(sel), limit=10_000, with_payload=True))
    return [p.payload["text"] for p in points]


async def test_same_bytes_changed_bytes_rollback_and_delete(client, services, collection):
    first = await upload(client, collection, "handbook.txt", TEXT_V1.encode())
    assert (first["version"], first["status"]) == (1, "queued")
    job = await wait_job(client, first["job_id"])
    assert job["status"] == "succeeded", job
    doc_id = first["document_id"]

    # Same bytes again: no new version and no new job.
    same = await upload(client, collection, "handbook.txt", TEXT_V1.encode())
    assert same == {**first, "status": "unchanged"}
    detail = (await client.get(f"/v1/documents/{doc_id}")).json()
    assert [v["version"] for v in detail["versions"]] == [1]

    # Changed bytes: version 2 becomes active, version 1 is retired but kept for rollback.
    second = await upload(client, collection, "handbook.txt", TEXT_V2.encode())
    assert (second["version"], second["status"]) == (2, "queued")
    assert second["job_id"] != first["job_id"]
    assert (await wait_job(client, second["job_id"]))["status"] == "succeeded"
    detail = (await client.get(f"/v1/documents/{doc_id}")).json()
    assert detail["active_version"] == 2
    assert [(v["version"], v["status"]) for v in detail["versions"]] == [(1, "retired"), (2, "active")]
    assert all(len(v["sha256"]) == 64 and v["size_bytes"] > 0 for v in detail["versions"])
    active = await chunk_texts(services, doc_id, state=ChunkState.active)
    assert active and all("twenty-five" in t or "twenty" not in t for t in active)
    assert any("parental leave" in t for t in active)
    assert await chunk_texts(services, doc_id, version=1, state=ChunkState.retired)
    assert not await chunk_texts(services, doc_id, version=1, state=ChunkState.active)

    # Rollback re-activates version 1, in the catalog and in the store.
    resp = await client.post(f"/v1/documents/{doc_id}/rollback")
    assert resp.status_code == 200, resp.text
    assert resp.json()["active_version"] == 1
    active = await chunk_texts(services, doc_id, state=ChunkState.active)
    assert active and not any("parental leave" in t for t in active)
    assert await chunk_texts(services, doc_id, version=2, state=ChunkState.retired)

    # Deletion: no chunk of any version is left in Qdrant, and the document is gone.
    resp = await client.delete(f"/v1/documents/{doc_id}")
    assert resp.status_code == 204
    assert await services.store.count(ChunkSelector(document_id=doc_id)) == 0
    assert (await client.get(f"/v1/documents/{doc_id}")).status_code == 404
    assert (await client.post(f"/v1/documents/{doc_id}/rollback")).status_code == 404


async def test_old_versions_beyond_the_window_are_purged(own_service):
    # A window of one retired version: a service of its own, since the session's keeps the default for other tests.
    svc = await own_service({"ingestion": {"keep_versions": 1}})
    client, services = svc.client, svc.services
    collection = await create_collection(client, "notes")
    doc_id = None
    for n in range(1, 4):
        res = await upload(client, collection, "notes.md", f"# Notes\n\nRevision number {n} of the notes.".encode())
        assert (await wait_job(client, res["job_id"]))["status"] == "succeeded"
        doc_id = res["document_id"]
    detail = (await client.get(f"/v1/documents/{doc_id}")).json()
    assert [(v["version"], v["status"]) for v in detail["versions"]] == [(1, "purged"), (2, "retired"), (3, "active")]
    assert await services.store.count(ChunkSelector(document_id=doc_id, version=1)) == 0
    assert await services.store.count(ChunkSelector(document_id=doc_id, version=2)) > 0


async def test_given_id_and_metadata_travel_with_chunks(client, services, collection):
    res = await upload(
        client,
        collection,
        "a.txt",
        b"Quarterly revenue grew by 12 percent.",
        ids='["report-q3"]',
        metadata='{"a.txt": {"department": "finance", "year": 2024}}',
    )
    assert (await wait_job(client, res["job_id"]))["status"] == "succeeded"
    detail = (await client.get(f"/v1/documents/{res['document_id']}")).json()
    assert detail["key"] == "report-q3" and detail["metadata"] == {"department": "finance", "year": 2024}
    import qdrant_edge as qe

    from retrieval.stores.qdrant_edge import edge_filter

    points, _ = services.store.shard.scroll(
        qe.ScrollRequest(filter=edge_filter(ChunkSelector(document_id=res["document_id"])), limit=10, with_payload=True)
    )
    payload = points[0].payload
    assert payload["metadata"] == {"department": "finance", "year": 2024}
    assert payload["model_id"] == services.embedder.model_id
    assert payload["collection"] == collection and payload["version"] == 1 and payload["filename"] == "a.txt"
    assert len(payload["content_sha256"]) == 64


async def register_only(services, collection, name, data):
    """Register a version in the catalog without enqueueing it, so the test decides when its job runs."""
    from kernel.records import NewVersion
    from rag.blobs import sha256_hex

    item = NewVersion(
        key=name,
        filename=name,
        sha256=sha256_hex(data),
        size_bytes=len(data),
        kind="txt",
        blob=services.blobs.put(data),
        metadata={},
    )
    return await services.catalog.versions.register_upload(collection, item)


async def test_an_older_version_finishing_last_does_not_win(client, services, collection):
    first = await register_only(services, collection, "memo.txt", b"First draft of the memo.")
    second = await register_only(services, collection, "memo.txt", b"Second draft of the memo, final.")
    await services.indexer.run(second.job_id)
    await services.indexer.run(first.job_id)
    detail = (await client.get(f"/v1/documents/{first.document_id}")).json()
    assert detail["active_version"] == 2
    assert [(v["version"], v["status"]) for v in detail["versions"]] == [(1, "retired"), (2, "active")]
    active = await chunk_texts(services, first.document_id, state=ChunkState.active)
    assert active == ["Second draft of the memo, final."]


async def test_deleting_a_collection_with_a_queued_job(client, services, collection):
    other = collection + "-x"
    assert (await client.post("/v1/collections", json={"name": other})).status_code == 201
    result = await register_only(services, other, "gone.txt", b"Text that will never be indexed.")
    assert (await client.delete(f"/v1/collections/{other}")).status_code == 204
    await services.indexer.run(result.job_id)  # the job is gone with its collection: a quiet no-op
    assert await services.store.count(ChunkSelector(collection=other)) == 0

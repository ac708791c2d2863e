from __future__ import annotations

import json

from tests.support.polling import wait_job


async def test_import_indexes_records(client, services, collection):
    lines = [
        {"id": "a", "title": "Cats", "text": "Cats sleep sixteen hours a day. They are crepuscular hunters."},
        {"id": "b", "title": "Dogs", "text": "Dogs were domesticated from wolves.", "metadata": {"year": 2020}},
    ]
    body = "\n".join(json.dumps(x) for x in lines).encode()
    resp = await client.post(f"/v1/collections/{collection}/documents/import", content=body)
    assert resp.status_code == 202, resp.text
    result = resp.json()
    assert result["new_versions"] == 2
    job = await wait_job(client, result["job_id"])
    assert job["status"] == "succeeded", job
    assert job["done"] == job["total"] == 2
    docs = (await client.get(f"/v1/collections/{collection}/documents")).json()
    assert {d["key"]: d["active_version"] for d in docs} == {"a": 1, "b": 1}
    from kernel.types import ChunkSelector, ChunkState

    assert await services.store.count(ChunkSelector(collection=collection, state=ChunkState.active)) == 2
    again = await client.post(f"/v1/collections/{collection}/documents/import", content=body)
    assert again.json()["status"] == "unchanged"

"""POST /v1/answers/{id}/replay: the same question, prompt, generator and filters again, against the document
versions the original rested on while they are kept (or the current ones, said so), both answers side by side."""

from __future__ import annotations

from tests.integration.test_answers import RECORDS
from tests.support.polling import wait_scored
from tests.support.service import create_collection, import_records

QUESTION = "When did the Golden Gate Bridge open?"
NEW_BRIDGE = {
    "id": "bridge",
    "title": "Golden Gate Bridge",
    "text": "The Golden Gate Bridge crosses the Golden Gate strait. Its first traffic crossed it on 27 May 1937 "
    "after four years of construction. Its towers are 227 metres tall.",
}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_replay_compares_both_answers_across_a_new_version_and_a_deletion(own_service):
    svc = await own_service()
    client = svc.client
    await create_collection(client, "kb")
    await import_records(client, "kb", RECORDS)
    original = (await client.post("/v1/query", json={"question": QUESTION, "collections": ["kb"]})).json()
    assert not original["abstained"], original
    await wait_scored(client, original["answer_id"])
    before = (await client.get("/v1/reports/groundedness", params={"collection": "kb"})).json()["count"]

    # Nothing changed: the same contexts, the same text, the same scores.
    same = await client.post(f"/v1/answers/{original['answer_id']}/replay")
    assert same.status_code == 200, same.text
    r = same.json()
    assert r["evidence"] == "original_versions" and "still kept" in r["evidence_note"]
    assert r["prompt"]["same"] and r["prompt"]["id"] == "grounded_answer" and r["generator"] == "extractive"
    assert r["original"]["id"] == original["answer_id"] and r["replay"]["replay_of"] == original["answer_id"]
    changes = r["changes"]
    assert not changes["text_changed"] and changes["contexts"]["same"] and changes["citations"]["same"]
    assert r["replay"]["scores"]["status"] == "done"
    assert changes["scores"]["faithfulness"] == {"original": 1.0, "replay": 1.0, "diff": 0.0}
    assert all(d["kept"] and d["status"] == "active" for d in r["documents"])
    # A replay is not traffic: the report does not count it.
    after = (await client.get("/v1/reports/groundedness", params={"collection": "kb"})).json()["count"]
    assert after == before

    # A new version of the bridge document: the original's version 1 is retired but kept, so the replay still
    # answers from it; asked for the current versions, it answers from version 2 and says what changed.
    await import_records(client, "kb", [NEW_BRIDGE])
    kept = (await client.post(f"/v1/answers/{original['answer_id']}/replay", json={"versions": "original"})).json()
    assert kept["evidence"] == "original_versions" and not kept["changes"]["text_changed"]
    bridge = next(d for d in kept["documents"] if d["active_version"] == 2)
    assert bridge["status"] == "retired" and bridge["kept"] and bridge["version"] == 1
    current = (await client.post(f"/v1/answers/{original['answer_id']}/replay", json={"versions": "current"})).json()
    assert current["evidence"] == "current_versions" and "as asked" in current["evidence_note"]
    assert current["changes"]["text_changed"] and "27 May 1937" in current["replay"]["answer"]
    assert {"document_id": bridge["document_id"], "original": 1, "replay": 2} in current["changes"][
        "document_versions"
    ]
    removed = {(c["document_id"], c["version"]) for c in current["changes"]["citations"]["removed"]}
    assert (bridge["document_id"], 1) in removed

    # The bridge document deleted: its text must not come back from the answer's record.
    assert (await client.delete(f"/v1/documents/{bridge['document_id']}")).status_code == 204
    gone = (await client.post(f"/v1/answers/{original['answer_id']}/replay")).json()
    assert gone["evidence"] == "current_versions"
    assert f"{bridge['document_id']} version 1 (deleted)" in gone["evidence_note"]
    assert all(c["document_id"] != bridge["document_id"] for c in gone["replay"]["contexts"])

    bad = await client.post(f"/v1/answers/{original['answer_id']}/replay", json={"versions": "yesterday"})
    assert bad.status_code == 422 and "versions" in bad.text
    assert (await client.post("/v1/answers/nope/replay")).status_code == 404

    # Access: analysts and admins of the answer's collections; a key without the collection gets a 404.
    admin = (await client.post("/v1/keys", json={"role": "admin", "collections": ["*"]})).json()["key"]
    await client.post("/v1/collections", json={"name": "other"}, headers=auth(admin))
    keys = {}
    wanted = (("analyst", "analyst", ["kb"]), ("outsider", "analyst", ["other"]), ("reader", "reader", ["kb"]))
    for who, role, grants in wanted:
        made = await client.post("/v1/keys", json={"role": role, "collections": grants}, headers=auth(admin))
        keys[who] = made.json()["key"]
    path = f"/v1/answers/{original['answer_id']}/replay"
    assert (await client.post(path, headers=auth(keys["analyst"]))).status_code == 200
    outsider = await client.post(path, headers=auth(keys["outsider"]))
    assert outsider.status_code == 404 and "does not exist" in outsider.json()["error"]
    reader = await client.post(path, headers=auth(keys["reader"]))
    assert reader.status_code == 403 and "review" in reader.json()["error"]
    assert (await client.post(path)).status_code == 401
    audit = (await client.get("/v1/audit", params={"action": "replay_answer"}, headers=auth(admin))).json()
    assert any("replayed as answer" in (e["detail"] or "") for e in audit["entries"])

"""The audit log: every request leaves an entry, questions as configured, and any edit or deletion of an entry makes
`rag audit verify` fail at that entry."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from typer.testing import CliRunner

from kernel.settings import load_settings
from rag.api.app import create_app
from rag.cli import app as cli
from rag.storage.audit import entry_hash
from tests.support.polling import wait_job

RECORDS = [{"id": "tower", "text": "The Eiffel Tower was completed in 1889. It is 330 metres tall."}]
QUESTION = "When was the Eiffel Tower completed?"


async def rag(data_dir: Path, *args: str) -> tuple[int, str]:
    """The real `rag` command, in a thread: it runs its own event loop, as it does from a shell."""
    env = {"RAG_DATA_DIR": str(data_dir)}
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    app = create_app(load_settings(data_dir=tmp_path))
    async with LifespanManager(app, startup_timeout=300, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rag.test", timeout=120) as client:
            yield client, tmp_path


async def test_every_request_is_audited_and_the_first_key_comes_from_the_cli(session) -> None:
    client, data_dir = session
    code, out = await rag(data_dir, "keys", "create", "--role", "admin", "--collections", "*", "--name", "root")
    assert code == 0, out
    key = out.strip().splitlines()[-1]  # the key is the last line, and only there
    admin = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/collections")).status_code == 401  # a key exists: no more single-user mode

    assert (await client.post("/v1/collections", json={"name": "kb"}, headers=admin)).status_code == 201
    body = "\n".join(json.dumps(r) for r in RECORDS).encode()
    job = (await client.post("/v1/collections/kb/documents/import", content=body, headers=admin)).json()
    async with httpx.AsyncClient(transport=client._transport, base_url="http://rag.test", headers=admin) as auth:
        assert (await wait_job(auth, job["job_id"]))["status"] == "succeeded"
    answer = (await client.post("/v1/query", json={"question": QUESTION, "collections": ["kb"]}, headers=admin)).json()
    reader = (await client.post("/v1/keys", json={"role": "reader", "collections": ["kb"]}, headers=admin)).json()
    assert (await client.delete(f"/v1/keys/{reader['id']}", headers=admin)).status_code == 200
    assert (await client.delete("/v1/collections/kb", headers={"Authorization": "Bearer rag_nope"})).status_code == 401

    entries = (await client.get("/v1/audit", params={"limit": 1000}, headers=admin)).json()["entries"]
    by_action: dict[str, list[dict]] = {}
    for e in entries:
        by_action.setdefault(e["action"], []).append(e)
    for action in ("create_collection", "import_documents", "query", "create_key", "revoke_key", "delete_collection"):
        assert action in by_action, (action, sorted(by_action))
    asked = by_action["query"][0]
    assert asked["collection"] == "kb" and asked["answer_id"] == answer["answer_id"] and asked["key_id"] == key[4:16]
    assert asked["question"].startswith("sha256:") and QUESTION not in json.dumps(entries)  # hashed by default
    refused = by_action["delete_collection"][0]
    assert (refused["outcome"], refused["status"], refused["collection"]) == ("refused", 401, "kb")

    jsonl = await client.get("/v1/audit", params={"format": "jsonl"}, headers=admin)
    assert [json.loads(line)["seq"] for line in jsonl.text.splitlines()][:3] == [1, 2, 3]
    csv = await client.get("/v1/audit", params={"format": "csv", "action": "query"}, headers=admin)
    assert csv.text.splitlines()[0].startswith("action,") and len(csv.text.splitlines()) == 1 + len(by_action["query"])
    assert (await rag(data_dir, "audit", "verify"))[0] == 0


@pytest.mark.parametrize("tamper", ["edit", "delete", "delete-newest", "insert"])
async def test_tampering_with_any_entry_breaks_the_chain_there(session, tamper: str) -> None:
    client, data_dir = session
    for name in ("a", "b", "c", "d"):
        await client.post("/v1/collections", json={"name": name})
    code, out = await rag(data_dir, "audit", "verify")
    assert code == 0 and "ok: 4 entries" in out, out
    db = sqlite3.connect(data_dir / "rag.db")
    with db:
        if tamper == "edit":
            db.execute("UPDATE audit_log SET collection = 'z' WHERE seq = 2")
        elif tamper == "delete":
            db.execute("DELETE FROM audit_log WHERE seq = 2")
        elif tamper == "delete-newest":
            db.execute("DELETE FROM audit_log WHERE seq = 4")
        else:
            # A forged entry slipped in after entry 1, with a correct hash of its own: the next link breaks.
            db.execute("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 2")
            db.execute("UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100")
            first = db.execute("SELECT hash FROM audit_log WHERE seq = 1").fetchone()[0]
            forged = {"action": "create_collection", "method": "POST", "path": "/v1/collections", "outcome": "ok"}
            empty = ("key_id", "role", "collection", "document_id", "answer_id", "question")
            fields: dict[str, object] = dict.fromkeys(empty)
            fields |= {**forged, "status": 201, "detail": None}
            at = "2026-01-01T00:00:00.000000+00:00"
            digest = entry_hash(first, 2, at, fields)
            columns = ", ".join(fields)
            db.execute(
                f"INSERT INTO audit_log (seq, at, prev_hash, hash, {columns}) VALUES (?, ?, ?, ?{', ?' * len(fields)})",
                (2, at, first, digest, *fields.values()),
            )
    db.close()
    code, out = await rag(data_dir, "audit", "verify")
    assert code == 1, out
    broken = {"edit": 2, "delete": 2, "delete-newest": 4, "insert": 3}[tamper]
    assert f"BROKEN at entry {broken}" in out, out


async def test_the_run_wide_audit_check_names_a_request_that_left_no_entry(own_service) -> None:
    """The session service's teardown compares every state-changing request of the run with the audit log; this
    shows the comparison fails when requests go unrecorded (audit off) and holds when they are recorded."""
    audited = await own_service()
    unaudited = await own_service({"audit": {"enabled": False}})
    for running in (audited, unaudited):
        assert (await running.client.post("/v1/collections", json={"name": "kb"})).status_code == 201
        assert (await running.client.post("/v1/collections", json={"name": "kb"})).status_code == 409
        assert (await running.client.delete("/v1/collections/kb")).status_code == 204
    assert await audited.sent.unaudited(audited.services) == []
    missing = await unaudited.sent.unaudited(unaudited.services)
    assert sorted(missing) == [
        ("DELETE", "/v1/collections/kb"),
        ("POST", "/v1/collections"),
        ("POST", "/v1/collections"),
    ]

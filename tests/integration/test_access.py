"""Keys, roles and grants: every endpoint x every role x a granted and a forbidden collection, and no byte of the
forbidden collection in any response (planted canary strings)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from kernel.settings import load_settings
from rag.api.app import create_app
from tests.support.polling import wait_job

CANARY = "ZQXJ-CANARY-7731"  # only in collection "beta": its text, its document id, its title
ALPHA = [
    {"id": "bridge", "text": "The Golden Gate Bridge opened to traffic in 1937. Its main span is 1,280 metres long."},
    {"id": "tower", "text": "The Eiffel Tower was completed in 1889. It is 330 metres tall and stands in Paris."},
]
BETA = [
    {
        "id": f"secret-{CANARY}",
        "title": f"Plan {CANARY}",
        "text": f"The merger code name is {CANARY}. The Golden Gate Bridge budget for 1937 was secret.",
    }
]


@dataclass
class World:
    client: httpx.AsyncClient
    keys: dict[str, str]  # role name -> key
    answers: dict[str, str]  # who asked -> answer id
    documents: dict[str, str]  # collection -> a document id


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def _import(admin: httpx.AsyncClient, name: str, records: list[dict]) -> str:
    assert (await admin.post("/v1/collections", json={"name": name})).status_code == 201
    body = "\n".join(json.dumps(r) for r in records).encode()
    resp = await admin.post(f"/v1/collections/{name}/documents/import", content=body)
    assert resp.status_code == 202, resp.text
    assert (await wait_job(admin, resp.json()["job_id"]))["status"] == "succeeded"
    return (await admin.get(f"/v1/collections/{name}/documents")).json()[0]["document_id"]


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    app = create_app(load_settings(data_dir=tmp_path_factory.mktemp("access")))
    async with LifespanManager(app, startup_timeout=300, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rag.test", timeout=120) as client:
            # Single-user mode until the first key: the admin key is made without one.
            first = await client.post("/v1/keys", json={"role": "admin", "collections": ["*"], "name": "root"})
            assert first.status_code == 201, first.text
            keys = {"admin": first.json()["key"]}
            grants = {"reader": ["alpha"], "owner": ["alpha"], "analyst": ["alpha"], "beta_reader": ["beta"]}
            for who, collections in grants.items():
                role = "reader" if who == "beta_reader" else who
                made = await client.post(
                    "/v1/keys", json={"role": role, "collections": collections}, headers=auth(keys["admin"])
                )
                assert made.status_code == 201, made.text
                keys[who] = made.json()["key"]
            async with httpx.AsyncClient(
                transport=transport, base_url="http://rag.test", timeout=120, headers=auth(keys["admin"])
            ) as admin:
                documents = {"alpha": await _import(admin, "alpha", ALPHA), "beta": await _import(admin, "beta", BETA)}
            answers = {}
            for who, collection in (("reader", "alpha"), ("beta_reader", "beta")):
                out = await client.post(
                    "/v1/query",
                    json={"question": "When did the Golden Gate Bridge open?", "collections": [collection]},
                    headers=auth(keys[who]),
                )
                assert out.status_code == 200, out.text
                answers[who] = out.json()["answer_id"]
            yield World(client, keys, answers, documents)


ROLES = ("none", "reader", "owner", "analyst", "admin")


def matrix(w: World) -> list[tuple[str, str, dict | None, dict[str, int]]]:
    """(method, path, json body, expected status per role) for the granted collection "alpha" and the forbidden
    "beta". 404 where admitting that a forbidden thing exists would leak; 403 where the route itself is public."""
    a_doc, b_doc = w.documents["alpha"], w.documents["beta"]
    mine, theirs = w.answers["reader"], w.answers["beta_reader"]
    ask_a = {"question": "When did the Golden Gate Bridge open?", "collections": ["alpha"]}
    ask_b = {"question": "When did the Golden Gate Bridge open?", "collections": ["beta"]}
    item = {"question": "How tall?", "answer": "It is 330 metres tall.", "contexts": ["It is 330 metres tall."]}

    def row(reader: int, owner: int, analyst: int, admin: int) -> dict[str, int]:
        return {"none": 401, "reader": reader, "owner": owner, "analyst": analyst, "admin": admin}

    return [
        ("GET", "/v1/collections", None, row(200, 200, 200, 200)),
        ("GET", "/v1/collections/alpha", None, row(200, 200, 200, 200)),
        ("GET", "/v1/collections/beta", None, row(404, 404, 404, 200)),
        ("POST", "/v1/collections", {"name": "gamma"}, row(403, 403, 403, 201)),
        ("GET", "/v1/collections/alpha/documents", None, row(403, 200, 200, 200)),
        ("GET", "/v1/collections/beta/documents", None, row(403, 404, 404, 200)),
        ("GET", f"/v1/documents/{a_doc}", None, row(403, 200, 200, 200)),
        ("GET", f"/v1/documents/{b_doc}", None, row(403, 404, 404, 200)),
        ("POST", "/v1/search", {"query": "bridge", "collections": ["alpha"]}, row(200, 200, 403, 200)),
        ("POST", "/v1/search", {"query": "bridge", "collections": ["beta"]}, row(404, 404, 403, 200)),
        ("POST", "/v1/search", {"query": "bridge", "collections": ["alpha", "beta"]}, row(404, 404, 403, 200)),
        ("POST", "/v1/query", ask_a, row(200, 200, 403, 200)),
        ("POST", "/v1/query", ask_b, row(404, 404, 403, 200)),
        ("POST", "/v1/chat", {"message": "bridge?", "collections": ["beta"]}, row(404, 404, 403, 200)),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "beta", "messages": [{"role": "user", "content": "bridge?"}]},
            row(404, 404, 403, 200),
        ),
        ("GET", f"/v1/answers/{mine}", None, row(200, 404, 200, 200)),
        ("GET", f"/v1/answers/{theirs}", None, row(404, 404, 404, 200)),
        ("POST", f"/v1/answers/{mine}/feedback", {"rating": "up"}, row(201, 404, 201, 201)),
        ("POST", f"/v1/answers/{theirs}/feedback", {"rating": "up"}, row(404, 404, 404, 201)),
        ("POST", f"/v1/answers/{mine}/rescore", None, row(403, 403, 202, 202)),
        ("POST", f"/v1/answers/{theirs}/rescore", None, row(403, 403, 404, 202)),
        ("GET", "/v1/reports/groundedness", None, row(403, 403, 200, 200)),
        ("GET", "/v1/reports/groundedness?collection=beta", None, row(403, 403, 404, 200)),
        ("GET", "/v1/reports/groundedness?format=csv", None, row(403, 403, 200, 200)),
        # A browser without a key is sent to sign in; /login itself is open.
        ("GET", "/reports", None, {**row(403, 403, 200, 200), "none": 303}),
        ("GET", "/login", None, {**row(200, 200, 200, 200), "none": 200}),
        ("GET", "/metrics", None, row(403, 403, 200, 200)),
        ("GET", "/v1/ops/summary", None, row(403, 403, 200, 200)),
        ("GET", "/v1/ops/summary?collection=beta", None, row(403, 403, 404, 200)),
        ("GET", "/v1/ops/drift", None, row(403, 403, 200, 200)),
        ("GET", "/v1/ops/drift?collection=beta", None, row(403, 403, 404, 200)),
        ("POST", "/v1/ops/alerts/evaluate", None, row(403, 403, 200, 200)),
        ("GET", "/ops", None, {**row(403, 403, 200, 200), "none": 303}),
        ("POST", "/v1/evaluate", item, row(403, 403, 200, 200)),
        ("GET", "/v1/usage", None, row(403, 403, 200, 200)),
        ("GET", "/v1/usage?collection=beta", None, row(403, 403, 404, 200)),
        ("GET", "/v1/budgets", None, row(403, 403, 403, 200)),
        ("PUT", "/v1/budgets/collection/alpha/month", {"tokens": 10**9}, row(403, 403, 403, 200)),
        ("GET", "/v1/keys", None, row(403, 403, 403, 200)),
        ("GET", "/v1/audit", None, row(403, 403, 403, 200)),
        ("GET", "/openapi.json", None, row(200, 200, 200, 200)),
        ("GET", "/docs", None, row(200, 200, 200, 200)),
    ]


async def test_permission_matrix_and_no_canary_outside_its_collection(world: World) -> None:
    w = world
    table, wrong = [], []
    for method, path, body, expected in matrix(w):
        got = {}
        for role in ROLES:
            resp = await w.client.request(method, path, json=body, headers=auth(w.keys.get(role)))
            got[role] = resp.status_code
            if role != "admin" and CANARY in resp.text:
                wrong.append(f"{role} {method} {path}: the canary of 'beta' is in the response")
            # A 404 names the id the caller sent, exactly as for an id that does not exist: not a leak.
            if role != "admin" and w.documents["beta"] not in path and w.documents["beta"] in resp.text:
                wrong.append(f"{role} {method} {path}: beta's document id is in the response")
        table.append(f"{method:6} {path[:60]:60} " + " ".join(f"{r}={got[r]}" for r in ROLES))
        wrong += [f"{method} {path} as {r}: {got[r]}, expected {expected[r]}" for r in ROLES if got[r] != expected[r]]
    print("\n".join(table))
    assert not wrong, "\n".join(wrong)


async def test_a_reader_sees_only_what_its_grants_allow_in_answers_and_streams(world: World) -> None:
    w = world
    reader = auth(w.keys["reader"])
    ask = {"question": "What is the budget of the Golden Gate Bridge for 1937?", "collections": ["alpha"]}
    out = await w.client.post("/v1/query", json=ask, headers=reader)
    assert out.status_code == 200 and CANARY not in out.text
    stream = await w.client.post("/v1/query", json={**ask, "stream": True}, headers=reader)
    assert stream.status_code == 200 and CANARY not in stream.text
    hits = await w.client.post(
        "/v1/search", json={"query": f"merger {CANARY}", "collections": ["alpha"]}, headers=reader
    )
    assert hits.status_code == 200 and hits.json()["hits"] and CANARY not in hits.text
    # The same question from beta's reader finds the canary: the data is there, the grant is what hides it.
    beta = await w.client.post(
        "/v1/search", json={"query": f"merger {CANARY}", "collections": ["beta"]}, headers=auth(w.keys["beta_reader"])
    )
    assert beta.status_code == 200 and CANARY in beta.text
    report = await w.client.get("/v1/reports/groundedness", headers=auth(w.keys["analyst"]))
    assert report.status_code == 200 and w.answers["beta_reader"] not in report.text


async def test_a_conversation_continues_only_with_the_key_that_started_it(world: World) -> None:
    w = world
    first = await w.client.post(
        "/v1/chat",
        json={"message": "When was the Eiffel Tower completed?", "collections": ["alpha"]},
        headers=auth(w.keys["reader"]),
    )
    assert first.status_code == 200, first.text
    follow = {
        "message": "How tall is it?",
        "collections": ["alpha"],
        "conversation_id": first.json()["conversation_id"],
    }
    assert (await w.client.post("/v1/chat", json=follow, headers=auth(w.keys["owner"]))).status_code == 422
    assert (await w.client.post("/v1/chat", json=follow, headers=auth(w.keys["reader"]))).status_code == 200


async def test_unknown_malformed_and_revoked_keys_get_401(world: World) -> None:
    w = world
    made = await w.client.post(
        "/v1/keys", json={"role": "reader", "collections": ["alpha"]}, headers=auth(w.keys["admin"])
    )
    key, key_id = made.json()["key"], made.json()["id"]
    assert key.startswith("rag_") and key_id in key
    listed = await w.client.get("/v1/keys", headers=auth(w.keys["admin"]))
    assert key not in listed.text and key.split("_", 2)[2] not in listed.text  # the secret is never shown again
    assert (await w.client.get("/v1/collections", headers=auth(key))).status_code == 200
    assert (await w.client.delete(f"/v1/keys/{key_id}", headers=auth(w.keys["admin"]))).status_code == 200
    revoked = await w.client.get("/v1/collections", headers=auth(key))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    assert revoked.headers["www-authenticate"] == "Bearer"
    for bad in ("nonsense", "rag_000000000000_x", key[:-1] + ("A" if key[-1] != "A" else "B")):
        resp = await w.client.get("/v1/collections", headers=auth(bad))
        assert resp.status_code == 401, (bad, resp.text)
    assert (await w.client.get("/healthz")).json()["mode"] == "api-keys"


async def test_bad_key_requests_are_clear_4xx(world: World) -> None:
    w = world
    admin = auth(w.keys["admin"])
    for body in (
        {"role": "king", "collections": ["alpha"]},
        {"role": "reader", "collections": []},
        {"role": "reader", "collections": ["alpha"], "expires_at": "2027-01-01T00:00:00"},
        {"role": "reader", "collections": ["no spaces allowed"]},
        # A number was read as seconds since 1970 (found by schemathesis: the schema says an ISO string).
        {"role": "reader", "collections": ["alpha"], "expires_at": 1893456000},
    ):
        resp = await w.client.post("/v1/keys", json=body, headers=admin)
        assert resp.status_code == 422 and resp.json()["error"].startswith("invalid request"), (body, resp.text)
    # Half a surrogate pair in the name was a 500; now a 422 that names the field.
    raw = b'{"role": "reader", "collections": ["alpha"], "name": "\\udfff"}'
    resp = await w.client.post("/v1/keys", content=raw, headers={**admin, "content-type": "application/json"})
    assert resp.status_code == 422 and "name: contains an unpaired UTF-16 surrogate" in resp.json()["error"]
    assert (await w.client.delete("/v1/keys/doesnotexist", headers=admin)).status_code == 404
    expired = await w.client.post(
        "/v1/keys",
        json={"role": "reader", "collections": ["alpha"], "expires_at": "2020-01-01T00:00:00Z"},
        headers=admin,
    )
    late = await w.client.get("/v1/collections", headers=auth(expired.json()["key"]))
    assert late.status_code == 401 and "expired" in late.json()["error"]


async def test_without_keys_the_service_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    app = create_app(load_settings(data_dir=tmp_path, host="0.0.0.0"))
    with pytest.raises(RuntimeError, match="rag keys create --role admin"):
        async with LifespanManager(app, startup_timeout=300, shutdown_timeout=60):
            pass


async def test_a_browser_signs_in_with_a_cookie_that_reads_but_never_writes(world: World) -> None:
    w = world
    transport = w.client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://rag.test", timeout=120) as browser:
        page = await browser.get("/reports")
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=/reports")
        assert 'id="signin"' in (await browser.get("/login")).text

        wrong = await browser.post("/v1/session", json={"key": "rag_nope.nope"})
        assert wrong.status_code == 401 and "rag_key" not in browser.cookies, wrong.text
        signed = await browser.post("/v1/session", json={"key": w.keys["analyst"]})
        assert signed.status_code == 200, signed.text
        assert signed.json() == {"role": "analyst", "collections": ["alpha"]}
        set_cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie

        assert (await browser.get("/reports")).status_code == 200
        report = await browser.get("/v1/reports/groundedness")
        assert report.status_code == 200 and CANARY not in report.text
        assert (await browser.get("/v1/reports/groundedness?collection=beta")).status_code == 404
        # The cookie never writes: the same analyst's evaluate and rescore need the bearer header.
        item = {"question": "How tall?", "answer": "It is 330 metres tall.", "contexts": ["It is 330 metres tall."]}
        assert (await browser.post("/v1/evaluate", json=item)).status_code == 401
        assert (await browser.post(f"/v1/answers/{w.answers['reader']}/rescore")).status_code == 401

        assert (await browser.delete("/v1/session")).status_code == 204
        assert "rag_key" not in browser.cookies
        assert (await browser.get("/reports")).status_code == 303

        reader = await browser.post("/v1/session", json={"key": w.keys["reader"]})
        assert reader.status_code == 200
        assert (await browser.get("/reports")).status_code == 403  # a reader's key opens no report
        browser.cookies.clear()


async def test_a_signed_in_browser_loses_access_when_its_key_is_revoked(world: World) -> None:
    w = world
    made = await w.client.post(
        "/v1/keys", json={"role": "analyst", "collections": ["alpha"]}, headers=auth(w.keys["admin"])
    )
    assert made.status_code == 201, made.text
    async with httpx.AsyncClient(transport=w.client._transport, base_url="http://rag.test", timeout=120) as browser:
        assert (await browser.post("/v1/session", json={"key": made.json()["key"]})).status_code == 200
        assert (await browser.get("/v1/reports/groundedness")).status_code == 200
        revoked = await w.client.delete(f"/v1/keys/{made.json()['id']}", headers=auth(w.keys["admin"]))
        assert revoked.status_code == 200, revoked.text
        assert (await browser.get("/v1/reports/groundedness")).status_code == 401
        assert (await browser.get("/reports")).status_code == 303

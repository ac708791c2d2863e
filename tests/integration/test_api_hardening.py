"""Faults found by attacking the service (by hand and with schemathesis, tests/integration/test_fuzz_api.py), each
with the request that found it: every one was a 500, a status the schema did not declare, or a bad value taken
silently. Now each is a clear 4xx that names what is wrong, and the service stays healthy."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_api_errors import assert_error


@pytest.fixture(autouse=True)
async def healthy_afterwards(client):
    yield
    assert (await client.get("/healthz")).status_code == 200


async def test_integers_beyond_the_database_range_are_refused(client, collection):
    url = f"/v1/collections/{collection}/documents"
    # 2**63 overflowed the database driver's 64-bit integer: a 500.
    await assert_error(await client.get(url, params={"offset": 2**63}), 422, "offset")
    assert (await client.get(url, params={"offset": 2**62})).json() == []
    await assert_error(await client.get(url, params={"limit": 2**63}), 422, "limit")
    await assert_error(await client.get("/v1/audit", params={"after_seq": 2**63}), 422, "after_seq")
    await assert_error(await client.get("/v1/reports/groundedness", params={"worst": 2**63}), 422, "worst")
    body = {"query": "x", "collections": [collection], "top_k": 2**63}
    await assert_error(await client.post("/v1/search", json=body), 422, "top_k")


# JSON can escape half of a UTF-16 surrogate pair; each of these was a 500 (the tokenizer, the database, or the
# 422's own rendering failed on it). Written as raw JSON: a JSON encoder would not send it.
SURROGATES = [
    ("/v1/query", '{"question": "\\udfff", "collections": ["c"]}', "question"),
    ("/v1/search", '{"query": "a\\udfffb", "collections": ["c"]}', "query"),
    ("/v1/search", '{"query": "a", "collections": ["c"], "filters": {"kind": "\\ud800"}}', "filters.kind"),
    ("/v1/chat", '{"message": "\\udfff", "collections": ["c"]}', "message"),
    (
        "/v1/chat/completions",
        '{"model": "c", "messages": [{"role": "user", "content": "\\udfff"}]}',
        "messages.0.content",
    ),
    ("/v1/collections", '{"name": "s1", "description": "\\udfff"}', "description"),
    ("/v1/collections", '{"name": "s2", "metadata": {"\\udfff": 1}}', "metadata"),
    ("/v1/answers/some-answer/feedback", '{"rating": "up", "comment": "\\udfff"}', "comment"),
    ("/v1/answers/some-answer/reference", '{"reference": "\\udfff"}', "reference"),
    ("/v1/evaluate", '{"question": "q", "answer": "a", "contexts": ["ok", "\\udfff"]}', "contexts.1"),
]


@pytest.mark.parametrize(("path", "raw", "field"), SURROGATES)
async def test_an_unpaired_surrogate_is_a_422_naming_the_field(client, path, raw, field):
    resp = await client.post(path, content=raw.encode(), headers={"content-type": "application/json"})
    await assert_error(resp, 422, f"{field}: contains an unpaired UTF-16 surrogate (\\u")
    assert json.loads(resp.content)  # the error itself is valid UTF-8 JSON


async def test_surrogates_in_imports_and_upload_forms_are_refused(client, collection):
    url = f"/v1/collections/{collection}/documents"
    line = b'{"id": "a", "text": "fine"}\n{"id": "b", "text": "bad \\udc00 text"}'
    await assert_error(await client.post(url + "/import", content=line), 422, "line 2: text: contains an unpaired")
    form = {"metadata": '{"team": "\\ud801"}'}
    resp = await client.post(url, files={"files": ("a.txt", b"alpha")}, data=form)
    await assert_error(resp, 422, "form field 'metadata'['team'] contains an unpaired UTF-16 surrogate")
    assert (await client.get(url)).json() == []


async def test_bodies_that_are_not_utf8_or_too_deep_are_a_422(client, collection):
    # Both were an undeclared 400 ("There was an error parsing the body").
    json_type = {"content-type": "application/json"}
    resp = await client.post("/v1/search", content=b'{"query": "\xff\xfe"}', headers=json_type)
    await assert_error(resp, 422, "not UTF-8")
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    await assert_error(await client.post("/v1/search", content=deep, headers=json_type), 422, "nested too deeply")
    # A multipart body that cannot be parsed: an undeclared 400, found by schemathesis.
    broken = b"--xyz\r\nTrue--xyz--\r\n"
    resp = await client.post(
        f"/v1/collections/{collection}/documents",
        content=broken,
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    # The upload route parses multipart as it streams (bounded memory) and says what is wrong with it.
    await assert_error(resp, 422, "multipart body is malformed")


async def test_json_bodies_over_the_limit_are_a_413(client, collection, services, monkeypatch):
    monkeypatch.setattr(services.settings.limits, "max_json_bytes", 1024)
    big = {"query": "x" * 2000, "collections": [collection]}
    await assert_error(await client.post("/v1/search", json=big), 413, "RAG_LIMITS__MAX_JSON_BYTES")

    async def chunks():  # no Content-Length: the limit holds while the body streams in
        for _ in range(8):
            yield b" " * 256

    resp = await client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    await assert_error(resp, 413, "larger than 1,024 bytes")
    small = await client.post("/v1/search", json={"query": "x", "collections": [collection]})
    assert small.status_code == 200, small.text


async def test_booleans_and_numbers_are_taken_only_as_json_writes_them(client, collection):
    # The schema says boolean/integer/number; pydantic's lax mode also read 0 as false, "5" as 5 and false as 0.0
    # (found by schemathesis): a client's mistake went unnoticed.
    ask = {"question": "x", "collections": [collection]}
    for path, body, field in (
        ("/v1/search", {"query": "x", "collections": [collection], "rerank": 0}, "rerank"),
        ("/v1/search", {"query": "x", "collections": [collection], "top_k": "5"}, "top_k"),
        ("/v1/query", {**ask, "stream": 0}, "stream"),
        ("/v1/chat", {"message": "x", "collections": [collection], "top_k": True}, "top_k"),
        (
            "/v1/chat/completions",
            {"model": collection, "messages": [{"role": "user", "content": "x"}], "temperature": False},
            "temperature",
        ),
    ):
        await assert_error(await client.post(path, json=body), 422, field)


async def test_unsupported_methods_get_405_with_every_allowed_method(client, collection):
    # The Allow header was missing; Starlette's own named only the first route that matched the path.
    for method, path, allowed in (
        ("TRACE", "/v1/collections", "GET, POST"),
        ("PATCH", "/v1/collections", "GET, POST"),
        ("PUT", f"/v1/collections/{collection}", "GET, DELETE"),
        ("TRACE", "/v1/keys/k1", "DELETE"),
    ):
        resp = await client.request(method, path)
        await assert_error(resp, 405, "Method Not Allowed")
        assert resp.headers["allow"] == allowed, (method, path)


async def test_time_bounds_outside_the_calendar_or_the_format_are_a_422(client):
    report = "/v1/reports/groundedness"
    # Both overflowed Python's calendar: a 500.
    await assert_error(await client.get(report, params={"until": "9999-12-31"}), 422, "out of range")
    await assert_error(await client.get(report, params={"since": "0001-01-01T00:00:00+14:00"}), 422, "out of range")
    # datetime.fromisoformat takes it, the schema's pattern does not: the server holds to the pattern.
    await assert_error(await client.get(report, params={"since": "20261127"}), 422, "is not a date")
    assert (await client.get(report, params={"since": "", "until": ""})).status_code == 200
    # The audit log compared the text as it came: "garbage" silently matched nothing.
    await assert_error(await client.get("/v1/audit", params={"since": "garbage"}), 422, "since='garbage'")
    entries = (await client.get("/v1/audit", params={"since": "2000-01-01T00:00+02:00"})).json()["entries"]
    assert entries, "a bound with a zone compares as the instant it names"


async def test_an_authorization_header_that_is_not_a_bearer_key_is_refused(client):
    # Taken for no key at all, so in single-user mode it was served as the admin (found by schemathesis).
    for value in ("Basic dXNlcjpwYXNz", "rag_abc", "Bearer"):
        resp = await client.get("/v1/collections", headers={"Authorization": value})
        await assert_error(resp, 401, "Bearer")
    assert (await client.get("/v1/collections")).status_code == 200


async def test_in_single_user_mode_the_schema_says_a_key_is_optional(client):
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/collections"]["get"]
    assert {} in operation["security"] and {"HTTPBearer": []} in operation["security"]
    assert operation["responses"]["429"]["headers"]["Retry-After"]["required"] is True

"""Cost (issue 11): token usage stored with every answer, summed and priced by GET /v1/usage, and budgets that
refuse (429) or fall back to the extractive generator at exactly the answer that would pass them.

The LLM is a real OpenAI-compatible HTTP server on loopback (tests/support/chat_server.py) that reports 100 prompt
and 30 completion tokens for every answer: what each answer will use is known, so "exactly" can be checked.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.test_answers import RECORDS
from tests.support.chat_server import ChatServer
from tests.support.metrics import samples, value
from tests.support.service import RunningService, import_records, start_service

LLM_SAYS = "The Golden Gate Bridge opened to traffic in 1937 [1]."
QUESTION = "When did the Golden Gate Bridge open?"
PRICES = {"canned": {"input": 1.0, "output": 2.0}}  # per 1,000 tokens: 100 in + 30 out cost 0.16
PER_ANSWER_TOKENS, PER_ANSWER_COST = 130, 0.16


@dataclass
class World:
    running: RunningService
    llm: ChatServer
    keys: dict[str, str]  # who -> the key
    ids: dict[str, str]  # who -> the key id
    unaudited: list[str] = field(default_factory=list)  # answers whose id the audit log does not hold

    def client(self, who: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.running.client._transport,
            base_url=str(self.running.client.base_url),
            timeout=120,
            headers={"Authorization": f"Bearer {self.keys[who]}"},
        )


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    settings: dict[str, dict[str, Any]] = {
        "llm": {"base_url": "", "model": "canned", "max_retries": 0},
        "cost": {"prices": PRICES, "currency": "EUR"},
        "scoring": {"enabled": False},  # nothing here is about scores: the worker stays idle
    }
    with ChatServer([LLM_SAYS], model="canned") as llm:
        settings["llm"]["base_url"] = llm.base_url
        async with start_service(tmp_path_factory.mktemp("budgets"), settings) as running:
            client = running.client
            # Collections first, in single-user mode; "fb"'s owner chose the extractive fallback over a refusal.
            for name, policy in (("kb", {}), ("fb", {"over_budget": "extractive"}), ("other", {})):
                made = await client.post("/v1/collections", json={"name": name, "policy": policy})
                assert made.status_code == 201, made.text
                await import_records(client, name, RECORDS)
            keys: dict[str, str] = {}
            ids: dict[str, str] = {}
            grants = {"admin": ["*"], "reader": ["kb", "fb"], "analyst": ["fb"], "other_reader": ["other"]}
            for who, collections in grants.items():
                role = "reader" if who == "other_reader" else who
                headers = {"Authorization": f"Bearer {keys['admin']}"} if keys else {}
                made = await client.post("/v1/keys", json={"role": role, "collections": collections}, headers=headers)
                assert made.status_code == 201, made.text
                keys[who], ids[who] = made.json()["key"], made.json()["id"]
            yield World(running, llm, keys, ids)


async def ask(client: httpx.AsyncClient, collection: str, generator: str = "llm") -> httpx.Response:
    return await client.post(
        "/v1/query", json={"question": QUESTION, "collections": [collection], "generator": generator}
    )


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def next_midnight() -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


async def metric(world: World, name: str, **labels: str) -> float:
    async with world.client("admin") as admin:
        return value(samples((await admin.get("/metrics")).text), name, **labels)


async def test_a_token_budget_refuses_exactly_the_answer_that_would_pass_it(world: World) -> None:
    calls = len(world.llm.exchanges)
    refusals = await metric(world, "rag_budget_refusals_total", scope="collection")
    async with world.client("admin") as admin, world.client("reader") as reader:
        # 400 tokens a day for "kb": three answers of 130 fit (390); a fourth would make 520.
        put = await admin.put("/v1/budgets/collection/kb/day", json={"tokens": 400})
        assert put.status_code == 200, put.text
        assert put.json()["used_tokens"] == 0 and put.json()["resets_at"] == iso(next_midnight())
        outs = [await ask(reader, "kb") for _ in range(3)]
        assert [o.status_code for o in outs] == [200, 200, 200], [o.text for o in outs]
        assert all(o.json()["usage"] == {"prompt_tokens": 100, "completion_tokens": 30} for o in outs)
        assert all(not o.json()["abstained"] and o.json()["fallback"] is None for o in outs)
        refused = await ask(reader, "kb")
        assert refused.status_code == 429, refused.text
        body = refused.json()
        # The body names the budget, what was used, what the answer would need, and when it resets.
        assert "collection/kb/day" in body["error"] and iso(next_midnight()) in body["error"]
        assert body["detail"] == {
            "budget": "collection/kb/day",
            "scope": "collection",
            "target": "kb",
            "period": "day",
            "unit": "tokens",
            "limit": 400.0,
            "used": 390.0,
            "expected": 130.0,
            "resets_at": iso(next_midnight()),
        }
        wait = int(refused.headers["Retry-After"])
        assert abs(wait - math.ceil((next_midnight() - datetime.now(UTC)).total_seconds())) <= 60
        # The refused answer never reached the LLM; an extractive answer (no tokens) is still given.
        assert len(world.llm.exchanges) == calls + 3
        free = await ask(reader, "kb", "extractive")
        assert free.status_code == 200 and free.json()["generator"] == "extractive"
        assert (await ask(reader, "kb")).status_code == 429  # the streaming path is refused alike:
        streamed = await reader.post(
            "/v1/query", json={"question": QUESTION, "collections": ["kb"], "generator": "llm", "stream": True}
        )
        assert streamed.status_code == 429 and "collection/kb/day" in streamed.json()["error"]
        listed = (await admin.get("/v1/budgets")).json()
        [kb] = [b for b in listed if b["id"] == "collection/kb/day"]
        assert (kb["tokens"], kb["used_tokens"], kb["resets_at"]) == (400, 390, iso(next_midnight()))
        # Raised by an admin: the next answer fits again (390 + 130 <= 520).
        assert (await admin.put("/v1/budgets/collection/kb/day", json={"tokens": 520})).status_code == 200
        assert (await ask(reader, "kb")).status_code == 200
        assert (await ask(reader, "kb")).status_code == 429
        assert (await admin.delete("/v1/budgets/collection/kb/day")).status_code == 204
        assert (await ask(reader, "kb")).status_code == 200
        audit = (await admin.get("/v1/audit", params={"action": "put_budget"})).json()["entries"]
        assert [e["detail"] for e in audit][-2:] == [
            "budget collection/kb/day set tokens=400 cost=None",
            "budget collection/kb/day set tokens=520 cost=None",
        ]
        assert [e["collection"] for e in audit][-1] == "kb"
    assert len(world.llm.exchanges) == calls + 5
    assert await metric(world, "rag_budget_refusals_total", scope="collection") == refusals + 4


async def test_a_cost_budget_of_a_key_falls_back_to_extractive_where_the_collection_says_so(world: World) -> None:
    async with world.client("admin") as admin, world.client("reader") as reader:
        kid = world.ids["reader"]
        spent = (await admin.put(f"/v1/budgets/key/{kid}/month", json={"cost": 1000.0})).json()["used_cost"]
        # Exactly one more LLM answer fits: a limit of what the month spent plus one answer's cost.
        limit = round(spent + PER_ANSWER_COST, 6)
        assert (await admin.put(f"/v1/budgets/key/{kid}/month", json={"cost": limit})).status_code == 200
        fits = await ask(reader, "fb")
        assert fits.status_code == 200 and fits.json()["generator"] == "openai:canned", fits.text
        calls = len(world.llm.exchanges)
        fallback = await ask(reader, "fb")
        assert fallback.status_code == 200, fallback.text
        out = fallback.json()
        assert (out["generator"], out["fallback"], out["fallback_budget"]) == (
            "extractive",
            "budget",
            f"key/{kid}/month",
        )
        assert (
            not out["abstained"] and out["citations"] and out["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}
        )
        assert len(world.llm.exchanges) == calls  # the LLM was not asked
        stored = (await admin.get(f"/v1/answers/{out['answer_id']}")).json()
        assert stored["fallback"] == f"budget:key/{kid}/month" and stored["generator"] == "extractive"
        # The OpenAI-compatible endpoint says so too.
        messages = [{"role": "user", "content": QUESTION}]
        completion = await reader.post("/v1/chat/completions", json={"model": "fb", "messages": messages})
        assert completion.status_code == 200, completion.text
        assert (completion.json()["fallback"], completion.json()["fallback_budget"]) == ("budget", f"key/{kid}/month")
        world.unaudited.append(completion.json()["answer_id"])
        streamed = await reader.post("/v1/chat/completions", json={"model": "fb", "messages": messages, "stream": True})
        last = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")][-1]
        assert (last["fallback"], last["fallback_budget"]) == ("budget", f"key/{kid}/month"), last
        world.unaudited.append(last["answer_id"])
        # A chat follow-up is not rewritten by the LLM while over budget either (a rewrite spends tokens too).
        first = await reader.post("/v1/chat", json={"message": QUESTION, "collections": ["fb"]})
        calls = len(world.llm.exchanges)
        body = {
            "message": "And who built it?",
            "conversation_id": first.json()["conversation_id"],
            "collections": ["fb"],
        }
        follow = await reader.post("/v1/chat", json=body)
        assert follow.status_code == 200 and follow.json()["fallback"] == "budget", follow.text
        assert len(world.llm.exchanges) == calls  # neither the rewrite nor the answer asked the LLM
        world.unaudited += [first.json()["answer_id"], follow.json()["answer_id"]]  # audited as "chat", not "query"
        # The same key over a collection without the fallback is refused by the same budget.
        refused = await ask(reader, "kb")
        assert refused.status_code == 429 and refused.json()["detail"]["budget"] == f"key/{kid}/month"
        assert refused.json()["detail"]["unit"] == "EUR"
        # Another key is not held by this key's budget.
        async with world.client("other_reader") as other:
            assert (await ask(other, "other")).status_code == 200
        assert (await admin.delete(f"/v1/budgets/key/{kid}/month")).status_code == 204


async def test_usage_sums_match_the_answers_stored_usage_and_cost(world: World) -> None:
    async with world.client("reader") as reader:
        assert (await ask(reader, "fb")).status_code == 200  # at least one LLM answer of a collection of the analyst
    async with world.client("admin") as admin, world.client("analyst") as analyst:
        # Answers of a day of this module's own: every answer the service stored, by collection.
        today = datetime.now(UTC).date().isoformat()
        report = await admin.get("/v1/usage", params={"since": today, "until": today})
        assert report.status_code == 200, report.text
        usage = report.json()
        assert usage["currency"] == "EUR" and usage["unpriced_models"] == [] and not usage["truncated"]
        ids = await _answer_ids(world)
        stored = [(await admin.get(f"/v1/answers/{i}")).json() for i in ids]
        assert usage["totals"]["answers"] == len(stored) > 0
        assert usage["totals"]["prompt_tokens"] == sum(a["usage"]["prompt_tokens"] for a in stored)
        assert usage["totals"]["completion_tokens"] == sum(a["usage"]["completion_tokens"] for a in stored)
        llm_answers = [a for a in stored if a["model"] == "canned"]
        assert usage["totals"]["prompt_tokens"] == 100 * len(llm_answers) > 0
        assert usage["totals"]["cost"] == pytest.approx(PER_ANSWER_COST * len(llm_answers))
        for row in usage["rows"]:
            mine = [
                a
                for a in stored
                if a["collections"] == [row["collection"]]
                and a["key_id"] == row["key_id"]
                and a["model"] == row["model"]
                and a["prompt_version"] == row["prompt_version"]
            ]
            assert row["answers"] == len(mine) and row["day"] == today, row
            assert row["prompt_tokens"] == sum(a["usage"]["prompt_tokens"] for a in mine), row
        # An analyst sees the collections it is granted, and only those.
        seen = (await analyst.get("/v1/usage")).json()
        assert {r["collection"] for r in seen["rows"]} == {"fb"}
        fb = (await admin.get("/v1/usage", params={"collection": "fb"})).json()
        assert seen["totals"] == fb["totals"]
        assert (await analyst.get("/v1/usage", params={"collection": "kb"})).status_code == 404
    async with world.client("reader") as reader:
        refused = await reader.get("/v1/usage")
        assert refused.status_code == 403 and "review" in refused.json()["error"]
        assert (await reader.get("/v1/budgets")).status_code == 403
        assert (await reader.put("/v1/budgets/collection/kb/day", json={"tokens": 1})).status_code == 403


async def _answer_ids(world: World) -> list[str]:
    """Every answer id the service stored, from the audit log of the answering requests."""
    async with world.client("admin") as admin:
        entries = (await admin.get("/v1/audit", params={"action": "query", "outcome": "ok"})).json()["entries"]
    return [e["answer_id"] for e in entries if e["answer_id"]] + world.unaudited


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("PUT", "/v1/budgets/team/kb/day", {"tokens": 1}, 422, "unknown budget scope 'team'"),
        ("PUT", "/v1/budgets/collection/kb/week", {"tokens": 1}, 422, "unknown budget period 'week'; use 'day' or"),
        ("PUT", "/v1/budgets/collection/kb/day", {"tokens": -1}, 422, "tokens: Input should be greater than or"),
        ("PUT", "/v1/budgets/collection/kb/day", {"cost": -0.5}, 422, "cost: Input should be greater than or equal"),
        ("PUT", "/v1/budgets/collection/kb/day", {}, 422, 'give a limit: "tokens", "cost" or both'),
        ("PUT", "/v1/budgets/collection/kb/day", {"tokens": "5"}, 422, "tokens: Input should be a valid integer"),
        ("PUT", "/v1/budgets/collection/nope/day", {"tokens": 1}, 404, "collection 'nope' does not exist"),
        ("PUT", "/v1/budgets/key/nokey/day", {"tokens": 1}, 404, "key 'nokey' does not exist"),
        ("DELETE", "/v1/budgets/collection/kb/month", None, 404, "there is no budget collection/kb/month"),
        ("DELETE", "/v1/budgets/galaxy/kb/day", None, 422, "unknown budget scope 'galaxy'"),
        ("GET", "/v1/usage?since=yesterday", None, 422, "since='yesterday' is not a date"),
        ("GET", "/v1/usage?until=2026-13-01", None, 422, "until='2026-13-01' is not a date"),
        ("GET", "/v1/usage?since=2026-12-02&until=2026-12-01", None, 422, "since must be before until"),
        ("GET", "/v1/usage?collection=Bad%20Name", None, 422, "collection"),
    ],
)
async def test_bad_budget_and_usage_input_is_refused_with_what_to_do(
    world: World, method: str, path: str, body: Any, status: int, says: str
) -> None:
    async with world.client("admin") as admin:
        resp = await admin.request(method, path, json=body)
        assert resp.status_code == status, resp.text
        assert says in resp.json()["error"], resp.json()
        # Nothing changed, and the service answers as before.
        assert [b["id"] for b in (await admin.get("/v1/budgets")).json()] == []
        assert (await admin.get("/v1/usage")).status_code == 200

"""The model gateway (issue 11) against real servers on loopback: the llama.cpp server, OpenAI-compatible chat
servers made to fail on demand (5xx, too slow), and ports where nothing listens.

Fallback (down, timeout, 5xx, then extractive), the circuit breaker opening (the failing server stops receiving
requests) and closing after its recovery period, routing by collection and question length, the attempts on the
stored answer and in /metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kernel.errors import TransientError
from kernel.protocols import Embedder
from kernel.settings import load_settings
from kernel.types import Context, GeneratedAnswer
from rag.generation.gateway import BudgetExhausted, GatewayGenerator
from rag.generation.openai_compat import OpenAICompatibleGenerator
from rag.observability.metrics import Metrics
from rag.prompts.registry import load_prompt
from rag.services import make_embedder, make_generators
from tests.llm_server import LlamaServer, llm_server  # noqa: F401
from tests.support.chat_server import ChatServer
from tests.support.polling import poll
from tests.support.ports import free_port
from tests.support.service import create_collection, import_records

MOON_ANSWER = "The Moon orbits the Earth every 27.3 days [1]."


PROMPT = load_prompt("grounded_answer")
MOON_TEXT = "The Moon orbits the Earth every 27.3 days. It is the only natural satellite of the Earth."
CONTEXTS = [Context(n=1, chunk_id="c1", document_id="d1", version=1, filename="moon.txt", score=0.9, text=MOON_TEXT)]
QUESTION = "How long does the Moon take to orbit the Earth?"


def down_url() -> str:
    """An OpenAI base URL on a loopback port where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/v1"


def endpoint(base_url: str, model: str = "canned", **extra: Any) -> dict[str, Any]:
    return {"base_url": base_url, "model": model, "timeout_seconds": 60, **extra}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The real embedding model, for the extractive last resort."""
    return make_embedder(load_settings())


def gateway(embedder: Embedder, metrics: Metrics | None = None, **cfg: Any) -> GatewayGenerator:
    """The service's own "llm" generator, built from settings as the service builds it."""
    settings = load_settings(gateway=cfg)
    gen = make_generators(settings, embedder, None, metrics)["llm"]
    assert isinstance(gen, GatewayGenerator)
    return gen


def outcomes(answer: GeneratedAnswer) -> list[tuple[str, str]]:
    return [(a.endpoint, a.outcome) for a in answer.attempts]


async def collect(gen: GatewayGenerator) -> tuple[str, GeneratedAnswer]:
    text, final = [], None
    async for item in gen.stream(QUESTION, CONTEXTS, PROMPT):
        if isinstance(item, GeneratedAnswer):
            final = item
        else:
            text.append(item)
    assert final is not None
    return "".join(text), final


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


# ----- fallback ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
async def test_primary_down_falls_back_to_the_llama_cpp_server(embedder, llm_server: LlamaServer):  # noqa: F811
    llama = endpoint(llm_server.base_url, llm_server.model, max_tokens=16, timeout_seconds=900)
    gen = gateway(embedder, endpoints={"primary": endpoint(down_url()), "llama": llama})

    answer = await gen.generate(QUESTION, CONTEXTS, PROMPT)
    assert outcomes(answer) == [("primary", "error"), ("llama", "ok")]
    assert answer.model == llm_server.model and answer.attempts[1].model == llm_server.model
    assert answer.usage.completion_tokens > 0  # the model wrote it

    # Streaming falls back the same way, before the first token.
    text, final = await collect(gen)
    assert outcomes(final) == [("primary", "error"), ("llama", "ok")]
    assert text == final.text and final.model == llm_server.model


async def test_primary_timeout_falls_back(embedder):
    with ChatServer([MOON_ANSWER], delay_s=120) as slow, ChatServer([MOON_ANSWER], model="second") as second:
        cfg = {"primary": endpoint(slow.base_url, timeout_seconds=2), "second": endpoint(second.base_url)}
        gen = gateway(embedder, endpoints=cfg)
        # The SDK's first request in a process builds its models (seconds on a busy machine): done before the
        # short timeout is measured, so that the primary's attempt times out waiting for the server, not for that.
        warm = gateway(embedder, endpoints={"second": endpoint(second.base_url)})
        await warm.generate(QUESTION, CONTEXTS, PROMPT)
        second.requests = 0

        answer = await gen.generate(QUESTION, CONTEXTS, PROMPT)
        assert outcomes(answer) == [("primary", "timeout"), ("second", "ok")]
        assert answer.text == MOON_ANSWER and answer.model == "second"
        text, final = await collect(gen)
        assert outcomes(final) == [("primary", "timeout"), ("second", "ok")] and text == MOON_ANSWER
        assert slow.requests == 2 and second.requests == 2


@pytest.mark.parametrize("status", [500, 503])
async def test_primary_5xx_falls_back(embedder, status: int):
    with ChatServer([MOON_ANSWER], status=status) as failing, ChatServer([MOON_ANSWER], model="second") as second:
        cfg = {"primary": endpoint(failing.base_url), "second": endpoint(second.base_url)}
        gen = gateway(embedder, endpoints=cfg)

        answer = await gen.generate(QUESTION, CONTEXTS, PROMPT)
        assert outcomes(answer) == [("primary", "5xx"), ("second", "ok")] and answer.text == MOON_ANSWER
        text, final = await collect(gen)
        assert outcomes(final) == [("primary", "5xx"), ("second", "ok")] and text == MOON_ANSWER
        assert failing.requests == 2


async def test_no_fallback_once_the_first_token_is_sent(embedder):
    with ChatServer(["The Moon ", "orbits [1]."]) as cut, ChatServer([MOON_ANSWER], model="second") as second:
        cut.cut_stream = True
        gen = gateway(embedder, endpoints={"primary": endpoint(cut.base_url), "second": endpoint(second.base_url)})
        shown: list[str] = []
        with pytest.raises(TransientError, match="dropped the connection"):
            async for item in gen.stream(QUESTION, CONTEXTS, PROMPT):
                assert isinstance(item, str)
                shown.append(item)
        assert shown == ["The Moon "]  # what was sent stays the primary's: no other endpoint's answer follows it
        assert second.requests == 0 and cut.requests == 1


async def test_all_down_answers_extractively_and_says_so(embedder):
    with ChatServer([MOON_ANSWER], status=502) as failing:
        metrics = Metrics()
        cfg = {"primary": endpoint(down_url()), "second": endpoint(failing.base_url)}
        gen = gateway(embedder, metrics, endpoints=cfg)

        answer = await gen.generate(QUESTION, CONTEXTS, PROMPT)
        assert outcomes(answer) == [("primary", "error"), ("second", "5xx"), ("extractive", "ok")]
        assert answer.model.startswith("extractive:") and "[1]" in answer.text
        assert answer.evidence_method is not None  # the pipeline judges it as an extractive answer
        text, final = await collect(gen)
        assert outcomes(final) == [("primary", "error"), ("second", "5xx"), ("extractive", "ok")]
        assert text.strip() == final.text == answer.text

    found = samples(metrics)
    for name, outcome in (("primary", "error"), ("second", "5xx"), ("extractive", "ok")):
        assert found[("rag_gateway_attempts_total", frozenset({("endpoint", name), ("outcome", outcome)}))] == 2


async def test_without_the_extractive_fallback_a_failed_chain_is_a_503(embedder):
    gen = gateway(embedder, endpoints={"primary": endpoint(down_url())}, extractive_fallback=False)
    with pytest.raises(TransientError, match="primary: error"):
        await gen.generate(QUESTION, CONTEXTS, PROMPT)


async def test_an_endpoint_over_budget_is_skipped_and_not_held_against_it(embedder):
    with ChatServer([MOON_ANSWER], model="primary") as primary, ChatServer([MOON_ANSWER], model="second") as second:
        cfg = {"primary": endpoint(primary.base_url), "second": endpoint(second.base_url)}
        gen = gateway(embedder, endpoints=cfg, breaker_threshold=1, breaker_recovery_seconds=3600)
        spent = {"primary"}

        async def admit(name: str) -> None:  # the hook a budget plugs into
            if name in spent:
                raise BudgetExhausted(f"{name} is over its budget")

        gen.admit_with(admit)
        for _ in range(2):
            answer = await gen.generate(QUESTION, CONTEXTS, PROMPT)
            assert outcomes(answer) == [("primary", "budget"), ("second", "ok")] and answer.model == "second"
        _, streamed = await collect(gen)
        assert outcomes(streamed) == [("primary", "budget"), ("second", "ok")]
        assert primary.requests == 0

        spent.clear()  # a budget refusal is not the endpoint's failure: its breaker (threshold 1) stayed closed
        assert outcomes(await gen.generate(QUESTION, CONTEXTS, PROMPT)) == [("primary", "ok")]

        spent.update({"primary", "second"})
        gen = gateway(embedder, endpoints=cfg, extractive_fallback=False)
        gen.admit_with(admit)
        with pytest.raises(BudgetExhausted, match="every endpoint of the chain is over its budget"):
            await gen.generate(QUESTION, CONTEXTS, PROMPT)


# ----- the circuit breaker ----------------------------------------------------------------------------------------
async def test_breaker_opens_and_the_failing_endpoint_is_no_longer_called(embedder):
    with ChatServer([MOON_ANSWER], status=500) as failing, ChatServer([MOON_ANSWER], model="second") as second:
        metrics = Metrics()
        cfg = {"primary": endpoint(failing.base_url), "second": endpoint(second.base_url)}
        # A recovery period longer than the test: the breaker stays open throughout.
        gen = gateway(embedder, metrics, endpoints=cfg, breaker_threshold=3, breaker_recovery_seconds=3600)

        seen = [outcomes(await gen.generate(QUESTION, CONTEXTS, PROMPT)) for _ in range(6)]
        assert seen[:3] == [[("primary", "5xx"), ("second", "ok")]] * 3
        assert seen[3:] == [[("primary", "breaker_open"), ("second", "ok")]] * 3
        _, streamed = await collect(gen)
        assert outcomes(streamed) == [("primary", "breaker_open"), ("second", "ok")]
        assert failing.requests == 3  # the threshold's failures, then not one more request
        assert second.requests == 7

    found = samples(metrics)
    assert found[("rag_gateway_breaker_transitions_total", frozenset({("endpoint", "primary"), ("state", "opened")}))]
    assert found[("rag_gateway_attempts_total", frozenset({("endpoint", "primary"), ("outcome", "breaker_open")}))]


async def test_breaker_on_a_stopped_port_keeps_off_it_when_it_comes_back(embedder):
    port = free_port()
    with ChatServer([MOON_ANSWER], model="second") as second:
        cfg = {"primary": endpoint(f"http://127.0.0.1:{port}/v1"), "second": endpoint(second.base_url)}
        gen = gateway(embedder, endpoints=cfg, breaker_threshold=2, breaker_recovery_seconds=3600)
        for _ in range(2):
            assert outcomes(await gen.generate(QUESTION, CONTEXTS, PROMPT))[0] == ("primary", "error")
        with ChatServer([MOON_ANSWER], model="primary", port=port) as back:
            for _ in range(3):
                assert outcomes(await gen.generate(QUESTION, CONTEXTS, PROMPT))[0] == ("primary", "breaker_open")
            assert back.requests == 0  # open: the endpoint is not called, though it would answer now


async def test_breaker_closes_after_its_recovery_period_when_the_endpoint_is_back(embedder):
    with (
        ChatServer([MOON_ANSWER], status=503, model="primary") as flaky,
        ChatServer([MOON_ANSWER], model="second") as s,
    ):
        metrics = Metrics()
        cfg = {"primary": endpoint(flaky.base_url), "second": endpoint(s.base_url)}
        gen = gateway(embedder, metrics, endpoints=cfg, breaker_threshold=2, breaker_recovery_seconds=0.2)
        for _ in range(2):
            await gen.generate(QUESTION, CONTEXTS, PROMPT)
        flaky.status = None  # the endpoint is back

        async def ask() -> list[tuple[str, str]]:
            return outcomes(await gen.generate(QUESTION, CONTEXTS, PROMPT))

        # Open, then (after the recovery period) one probe that succeeds and closes it.
        await poll(ask, lambda seen: seen == [("primary", "ok")], what="the primary to be called again and answer")
        assert await ask() == [("primary", "ok")]  # closed: every request goes to it again
        assert flaky.requests >= 3

    found = samples(metrics)
    for state in ("opened", "half-opened", "closed"):
        key = ("rag_gateway_breaker_transitions_total", frozenset({("endpoint", "primary"), ("state", state)}))
        assert found[key] >= 1, state


async def test_a_refusal_of_one_request_does_not_open_the_breaker(embedder):
    with ChatServer([MOON_ANSWER], status=400) as refusing, ChatServer([MOON_ANSWER], model="second") as second:
        cfg = {"primary": endpoint(refusing.base_url), "second": endpoint(second.base_url)}
        gen = gateway(embedder, endpoints=cfg, breaker_threshold=1, breaker_recovery_seconds=3600)
        for _ in range(3):  # refused (a prompt too long for it, say): the next endpoint answers this request
            assert outcomes(await gen.generate(QUESTION, CONTEXTS, PROMPT)) == [("primary", "error"), ("second", "ok")]
        assert refusing.requests == 3  # still called: a 400 says nothing about the endpoint's health


async def test_a_failed_probe_opens_the_breaker_again(embedder):
    with ChatServer([MOON_ANSWER], status=500) as failing, ChatServer([MOON_ANSWER], model="second") as second:
        cfg = {"primary": endpoint(failing.base_url), "second": endpoint(second.base_url)}
        gen = gateway(embedder, endpoints=cfg, breaker_threshold=2, breaker_recovery_seconds=0.2)
        for _ in range(2):
            await gen.generate(QUESTION, CONTEXTS, PROMPT)

        async def ask() -> list[tuple[str, str]]:
            return outcomes(await gen.generate(QUESTION, CONTEXTS, PROMPT))

        # The probe after the recovery period reaches the server (one request), fails, and the breaker re-opens.
        await poll(ask, lambda seen: seen[0] == ("primary", "5xx"), what="the breaker to let a probe through")
        assert failing.requests == 3
        assert (await ask())[0] == ("primary", "breaker_open")


# ----- routing ----------------------------------------------------------------------------------------------------
@pytest.fixture
def three() -> Iterator[tuple[ChatServer, ChatServer, ChatServer]]:
    with ChatServer(["a [1]."], model="a") as a, ChatServer(["b [1]."], model="b") as b:
        with ChatServer(["c [1]."], model="c") as c:
            yield a, b, c


async def test_routes_by_collection_and_question_length(embedder, three):
    a, b, c = three
    routes = [
        {"collections": ["legal", "hr"], "chain": ["b", "a"]},
        {"min_question_chars": 60, "chain": ["c"]},
        {"max_question_chars": 5, "chain": ["b"]},
    ]
    endpoints = {name: endpoint(s.base_url, name) for name, s in zip("abc", three, strict=True)}
    gen = gateway(embedder, endpoints=endpoints, chain=["a"], routes=routes)

    async def model(collections: list[str], question: str) -> str:
        return (await gen.route(collections, question).generate(question, CONTEXTS, PROMPT)).model

    assert await model(["legal"], "x" * 100) == "b"  # the first route that matches wins
    assert await model(["news", "hr"], "When?") == "b"  # any one of its collections
    assert await model(["news"], "x" * 60) == "c"
    assert await model(["news"], "x" * 59) == "a"  # no route: the default chain
    assert await model(["news"], "Why?") == "b"
    assert await model(["news"], "Why?!") == "b" and await model(["news"], "Why?!!") == "a"
    assert (await gen.generate(QUESTION, CONTEXTS, PROMPT)).model == "a"  # unrouted: the default chain
    assert (a.requests, b.requests, c.requests) == (3, 4, 1)


# ----- backward compatible (the settings refused at start: tests/unit/test_gateway_settings.py) ------------------
def test_single_endpoint_settings_work_as_before(embedder):
    only_llm = load_settings(llm={"base_url": "http://127.0.0.1:1/v1", "model": "m"})
    assert isinstance(make_generators(only_llm, embedder)["llm"], OpenAICompatibleGenerator)
    assert "llm" not in make_generators(load_settings(), embedder)

    both = load_settings(
        llm={"base_url": "http://127.0.0.1:1/v1", "model": "m"}, gateway={"endpoints": {"b": endpoint("http://x/v1")}}
    )
    gen = make_generators(both, embedder)["llm"]
    assert isinstance(gen, GatewayGenerator) and gen.chain == ["llm", "b"]  # RAG_LLM's endpoint comes first


# ----- through the service: routed, stored with its attempts, counted -------------------------------------------
MOON = {"id": "moon", "title": "Moon", "text": "The Moon orbits the Earth every 27.3 days."}


@pytest.fixture
async def gateway_service(own_service) -> AsyncIterator[tuple[Any, ChatServer, ChatServer]]:
    with ChatServer([MOON_ANSWER], status=503) as failing, ChatServer([MOON_ANSWER], model="legal-model") as legal:
        cfg = {
            "endpoints": {"primary": endpoint(down_url()), "second": endpoint(failing.base_url)}
            | {"legal": endpoint(legal.base_url, "legal-model")},
            "chain": ["primary", "second"],
            "routes": [{"collections": ["legal"], "chain": ["primary", "legal"]}],
        }
        svc = await own_service({"gateway": cfg})
        for name in ("moon", "legal"):
            await import_records(svc.client, await create_collection(svc.client, name), [MOON])
        yield svc, failing, legal


async def test_the_service_routes_stores_and_counts_attempts(gateway_service):
    svc, failing, legal = gateway_service
    client = svc.client
    ask = {"question": "How long does the Moon take to orbit the Earth?", "generator": "llm"}

    routed = (await client.post("/v1/query", json={**ask, "collections": ["legal"]})).json()
    assert [(a["endpoint"], a["outcome"]) for a in routed["attempts"]] == [("primary", "error"), ("legal", "ok")]
    assert routed["fallback"] == "gateway" and not routed["abstained"] and routed["model"] == "legal-model"
    assert routed["generator"] == "gateway" and routed["answer"] == MOON_ANSWER and legal.requests == 1

    # The default chain is all down: the extractive last resort answers, marked as such.
    resp = await client.post("/v1/query", json={**ask, "collections": ["moon"]})
    assert resp.status_code == 200, resp.text
    last = resp.json()
    assert [(a["endpoint"], a["outcome"]) for a in last["attempts"]] == [
        ("primary", "error"),
        ("second", "5xx"),
        ("extractive", "ok"),
    ]
    assert last["fallback"] == "gateway" and last["model"].startswith("extractive:") and not last["abstained"]
    assert "27.3 days [1]" in last["answer"]

    stored = (await client.get(f"/v1/answers/{last['answer_id']}")).json()
    assert stored["attempts"] == last["attempts"] and stored["fallback"] == "gateway"
    assert all(a["duration_ms"] >= 0 and a["model"] for a in stored["attempts"])

    # Streamed: the same fallback before the first token; the tokens are the answer.
    async with client.stream("POST", "/v1/query", json={**ask, "collections": ["moon"], "stream": True}) as r:
        body = "".join([chunk async for chunk in r.aiter_text()])
    assert '"extractive"' in body and "event: done" in body

    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families((await client.get("/metrics")).text)
        for s in family.samples
    }
    expected = {("primary", "error"): 3, ("second", "5xx"): 2, ("legal", "ok"): 1, ("extractive", "ok"): 2}
    for (name, outcome), count in expected.items():
        key = ("rag_gateway_attempts_total", frozenset({("endpoint", name), ("outcome", outcome)}))
        assert found[key] == count, (name, outcome)
    assert failing.requests == 2

    # Bad input still gets its 4xx, and the service keeps answering afterwards.
    assert (
        await client.post("/v1/query", json={**ask, "collections": ["moon"], "generator": "nope"})
    ).status_code == 422
    again = await client.post("/v1/query", json={**ask, "collections": ["legal"]})
    assert again.status_code == 200 and again.json()["model"] == "legal-model"

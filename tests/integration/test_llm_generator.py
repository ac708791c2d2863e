"""OpenAICompatibleGenerator against a real llama.cpp server (llama-cpp-python + Gemma 3 270M, CPU)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import pytest

from kernel.errors import TransientError
from kernel.llm import Endpoint
from kernel.types import Context, GeneratedAnswer
from rag.generation.openai_compat import GeneratorError, OpenAICompatibleGenerator
from tests.llm_server import LlamaServer, llm_server  # noqa: F401
from tests.support.chat_server import ChatServer
from tests.support.ports import free_port


class TinyPrompt:
    id = "test-tiny"
    version = "1"

    def system(self) -> str:
        return "Answer the question using the numbered contexts. Cite them as [n]."

    def user(self, question: str, contexts: Sequence[Context]) -> str:
        blocks = "\n".join(f"[{c.n}] {c.text}" for c in contexts)
        return f"{blocks}\n\nQuestion: {question}\nAnswer:"


PROMPT = TinyPrompt()
CONTEXTS = [
    Context(
        n=1,
        chunk_id="c1",
        document_id="d1",
        version=1,
        filename="paris.txt",
        text="Paris is the capital and most populous city of France.",
        score=0.9,
    )
]
QUESTION = "What is the capital of France?"
USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}


def make_generator(server: LlamaServer, **overrides: Any) -> OpenAICompatibleGenerator:
    args: dict[str, Any] = {
        "base_url": server.base_url,
        "model": server.model,
        "api_key": None,
        "timeout_seconds": 120.0,
        "max_retries": 0,
        "max_tokens": 32,
        "temperature": 0.0,
    }
    args.update(overrides)
    return OpenAICompatibleGenerator(Endpoint(**args))


@pytest.fixture
async def generator(llm_server: LlamaServer) -> AsyncIterator[OpenAICompatibleGenerator]:  # noqa: F811
    gen = make_generator(llm_server)
    yield gen
    await gen.aclose()


@pytest.mark.slow
async def test_generate_returns_text_usage_and_model(
    generator: OpenAICompatibleGenerator,
    llm_server: LlamaServer,  # noqa: F811
) -> None:
    answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)

    assert isinstance(answer, GeneratedAnswer)
    assert answer.text.strip(), answer
    assert answer.usage.prompt_tokens > 0
    assert 0 < answer.usage.completion_tokens <= 32
    assert answer.model == llm_server.model
    assert generator.name == f"openai:{llm_server.model}"


@pytest.mark.slow
async def test_stream_yields_deltas_then_one_final_answer(llm_server: LlamaServer) -> None:  # noqa: F811
    # Through a recording endpoint: the usage the server really sent decides what the final answer must carry.
    with ChatServer(upstream=llm_server.base_url) as seen:
        generator = make_generator(llm_server, base_url=seen.base_url)
        items = [item async for item in generator.stream(QUESTION, CONTEXTS, PROMPT)]
        await generator.aclose()

    deltas, final = items[:-1], items[-1]
    assert deltas, items
    assert all(isinstance(d, str) and d for d in deltas), items
    assert isinstance(final, GeneratedAnswer)
    assert final.text == "".join(d for d in deltas if isinstance(d, str))
    assert final.text.strip()
    assert final.model == llm_server.model
    [sent] = seen.exchanges
    assert sent.request["stream"] is True and final.text == sent.reply
    # llama-cpp-python's server (0.3.x) ignores stream_options.include_usage: no usage chunk, so the counts are
    # estimated from the text and marked so. A server that sends one must have its counts carried
    # (test_stream_reads_usage_from_the_include_usage_chunk below).
    if sent.usage:
        told = (sent.usage["prompt_tokens"], sent.usage["completion_tokens"])
        assert (final.usage.prompt_tokens, final.usage.completion_tokens) == told, (final.usage, sent.usage)
        assert not final.usage.estimated
    else:
        assert final.usage.estimated and final.usage.prompt_tokens > 0 and final.usage.completion_tokens > 0


@pytest.mark.slow
async def test_stream_and_generate_agree_at_temperature_zero(generator: OpenAICompatibleGenerator) -> None:
    answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)
    streamed = [item async for item in generator.stream(QUESTION, CONTEXTS, PROMPT)][-1]

    assert isinstance(streamed, GeneratedAnswer)
    assert streamed.text == answer.text


@pytest.mark.slow
async def test_stream_closed_early_does_not_break_the_next_request(generator: OpenAICompatibleGenerator) -> None:
    stream = generator.stream(QUESTION, CONTEXTS, PROMPT)
    assert isinstance(stream, AsyncGenerator)  # aclose() is not part of the AsyncIterator it is declared as
    first = await anext(stream)
    assert isinstance(first, str)
    await stream.aclose()

    answer = await generator.generate(QUESTION, CONTEXTS, PROMPT)
    assert answer.text.strip()


async def test_unreachable_endpoint_is_transient() -> None:
    port = free_port()  # nobody listens here
    gen = OpenAICompatibleGenerator(
        Endpoint(
            base_url=f"http://127.0.0.1:{port}/v1",
            model="any",
            api_key=None,
            timeout_seconds=3.0,
            max_retries=0,
            max_tokens=8,
            temperature=0.0,
        ),
    )
    # A refused connection, not the 3 s timeout: the message says unreachable (no wall-clock assertion here).
    with pytest.raises(TransientError) as excinfo:
        await gen.generate(QUESTION, CONTEXTS, PROMPT)
    assert f"127.0.0.1:{port}" in excinfo.value.message
    assert "unreachable" in excinfo.value.message
    assert excinfo.value.status == 503

    with pytest.raises(TransientError):
        [item async for item in gen.stream(QUESTION, CONTEXTS, PROMPT)]
    await gen.aclose()


@pytest.mark.slow
async def test_prompt_longer_than_context_is_a_generator_error(llm_server: LlamaServer) -> None:  # noqa: F811
    gen = make_generator(llm_server)
    huge = [CONTEXTS[0].model_copy(update={"text": "Paris is in France. " * 1500})]  # ~9000 tokens > n_ctx 2048

    with pytest.raises(GeneratorError) as excinfo:
        await gen.generate(QUESTION, huge, PROMPT)
    message = excinfo.value.message
    assert excinfo.value.status == 502
    assert llm_server.base_url in message
    assert "HTTP 400" in message
    assert "context" in message.lower()  # the server's own text: "maximum context length is 2048 tokens..."

    with pytest.raises(GeneratorError) as excinfo:
        [item async for item in gen.stream(QUESTION, huge, PROMPT)]
    # llama-cpp-python answers 200 and then sends nothing: the generator must not turn that into an empty answer.
    assert "context" in excinfo.value.message.lower()
    await gen.aclose()


@pytest.mark.slow
async def test_wrong_path_is_a_generator_error(llm_server: LlamaServer) -> None:  # noqa: F811
    gen = make_generator(llm_server, base_url=f"http://127.0.0.1:{llm_server.port}/not-v1")

    with pytest.raises(GeneratorError) as excinfo:
        await gen.generate(QUESTION, CONTEXTS, PROMPT)
    assert "HTTP 404" in excinfo.value.message
    assert "/not-v1" in excinfo.value.message
    await gen.aclose()


# --- Responses a real server may give that llama.cpp cannot be made to give: scripted with httpx.MockTransport.


class ScriptedGenerator(OpenAICompatibleGenerator):
    requests: list[dict[str, object]]  # the request bodies the scripted server received


def scripted(status: int, body: Any, *, sse: bool = False) -> ScriptedGenerator:
    import httpx

    requests: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(json.loads(request.content))
        if sse:
            events = "".join(f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n" for e in body)
            return httpx.Response(status, content=events.encode(), headers={"content-type": "text/event-stream"})
        return httpx.Response(status, json=body)

    gen = ScriptedGenerator(
        Endpoint(
            base_url="http://llm.test/v1",
            model="m",
            api_key="k",
            timeout_seconds=5.0,
            max_retries=0,
            max_tokens=8,
            temperature=0.0,
        ),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    gen.requests = requests
    return gen


def chunk(content: str | None, *, usage: dict[str, int] | None = None, finish: str | None = None) -> dict:
    choices = [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    return {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "served-model",
        "choices": choices,
        "usage": usage,
    }


async def test_stream_reads_usage_from_the_include_usage_chunk() -> None:
    gen = scripted(
        200,
        [chunk("Par"), chunk("is [1]"), chunk(None, finish="stop"), chunk(None, usage=USAGE), "[DONE]"],
        sse=True,
    )
    items = [item async for item in gen.stream(QUESTION, CONTEXTS, PROMPT)]

    assert items[:-1] == ["Par", "is [1]"]
    final = items[-1]
    assert isinstance(final, GeneratedAnswer)
    assert final.text == "Paris [1]"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (11, 3)
    assert final.model == "served-model"
    assert gen.requests[0]["stream_options"] == {"include_usage": True}


async def test_stream_with_no_chunk_at_all_is_a_generator_error() -> None:
    gen = scripted(200, ["[DONE]"], sse=True)
    with pytest.raises(GeneratorError, match="closed the stream"):
        [item async for item in gen.stream(QUESTION, CONTEXTS, PROMPT)]


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, TransientError), (502, TransientError), (503, TransientError), (429, TransientError)],
)
async def test_server_side_failures_are_transient(status: int, error: type[Exception]) -> None:
    gen = scripted(status, {"error": {"message": "model is loading", "type": "server_error"}})
    with pytest.raises(error) as excinfo:
        await gen.generate(QUESTION, CONTEXTS, PROMPT)
    assert "model is loading" in str(excinfo.value)
    assert "http://llm.test/v1" in str(excinfo.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_refusals_are_generator_errors_quoting_the_server(status: int) -> None:
    gen = scripted(status, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
    with pytest.raises(GeneratorError) as excinfo:
        await gen.generate(QUESTION, CONTEXTS, PROMPT)
    message = excinfo.value.message
    assert excinfo.value.status == 502
    assert f"HTTP {status}" in message
    assert "Incorrect API key provided" in message
    assert "http://llm.test/v1" in message


async def test_stream_retries_without_stream_options_when_the_server_rejects_them() -> None:
    import httpx

    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        seen.append(payload)
        if "stream_options" in payload:
            return httpx.Response(400, json={"error": {"message": "Unrecognized request argument: stream_options"}})
        events = f"data: {json.dumps(chunk('Paris'))}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, content=events.encode(), headers={"content-type": "text/event-stream"})

    gen = OpenAICompatibleGenerator(
        Endpoint(
            base_url="http://llm.test/v1",
            model="m",
            api_key=None,
            timeout_seconds=5.0,
            max_retries=0,
            max_tokens=8,
            temperature=0.0,
        ),
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    items = [item async for item in gen.stream(QUESTION, CONTEXTS, PROMPT)]

    assert items[0] == "Paris"
    final = items[-1]
    assert isinstance(final, GeneratedAnswer) and (final.text, final.model) == ("Paris", "served-model")
    # No usage: estimated from the text (about 4 characters a token), and marked so.
    assert final.usage.estimated and final.usage.completion_tokens == 2 and final.usage.prompt_tokens > 0
    assert len(seen) == 2
    assert "stream_options" not in seen[1]

"""A generator for any OpenAI-compatible chat endpoint (OpenAI, llama.cpp, vLLM, Ollama, LM Studio, ...).

The `openai` SDK is imported on first use, not at import time: it costs about a second to import and a
service that answers extractively never needs it.

Failures are split by who can fix them: an endpoint that is down, slow, overloaded or failing (connection
errors, timeouts, 429, 5xx) raises `TransientError` (503, worth retrying); an endpoint that refuses the request
(400, 401, 403, 404, 422: wrong model, wrong key, prompt too long) raises `GeneratorError` (502), whose message
names the endpoint and quotes the server's own error text.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from kernel.errors import RagError, TransientError
from kernel.llm import Endpoint
from kernel.types import Context, GeneratedAnswer, Usage
from rag.generation.base import Prompt

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

# Sent when no key is configured: local servers ignore it, and the SDK would otherwise read OPENAI_API_KEY
# from the environment (or refuse to start without one).
_NO_KEY = "no-key"
_MAX_ERROR_TEXT = 500


class GeneratorError(RagError):
    """The LLM endpoint refused the request; retrying the same request will not help."""

    status = 502


class OpenAICompatibleGenerator:
    def __init__(self, endpoint: Endpoint, http_client: Any = None) -> None:
        """`http_client`: an optional `httpx.AsyncClient` for the SDK to use (proxies, custom TLS, tests)."""
        self.endpoint = endpoint
        self.base_url = endpoint.base_url
        self.model = endpoint.model
        self._http_client = http_client
        self._client: AsyncOpenAI | None = None

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                base_url=self.base_url,
                api_key=self.endpoint.api_key or _NO_KEY,
                timeout=self.endpoint.timeout_seconds,
                max_retries=self.endpoint.max_retries,
                http_client=self._http_client,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _messages(self, question: str, contexts: Sequence[Context], prompt: Prompt) -> list[ChatCompletionMessageParam]:
        return [
            {"role": "system", "content": prompt.system()},
            {"role": "user", "content": prompt.user(question, contexts)},
        ]

    async def generate(self, question: str, contexts: Sequence[Context], prompt: Prompt) -> GeneratedAnswer:
        client = self._get_client()
        messages = self._messages(question, contexts, prompt)
        try:
            response = await client.chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=self.endpoint.max_tokens,
                temperature=self.endpoint.temperature,
            )
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from exc
        text = ""
        if response.choices:
            text = response.choices[0].message.content or ""
        usage = _usage(response.usage) if response.usage is not None else _estimate(messages, text)
        return GeneratedAnswer(text=text, usage=usage, model=response.model or self.model)

    async def stream(
        self, question: str, contexts: Sequence[Context], prompt: Prompt
    ) -> AsyncIterator[str | GeneratedAnswer]:
        client = self._get_client()
        messages = self._messages(question, contexts, prompt)
        parts: list[str] = []
        usage: Usage | None = None
        model = self.model
        received = 0
        try:
            try:
                chunks = await self._open_stream(client, messages, include_usage=True)
            except Exception as exc:
                # A server that rejects stream_options outright (rather than ignoring it): stream without usage.
                if not _is_status(exc, 400) or "stream_options" not in _server_text(exc):
                    raise
                chunks = await self._open_stream(client, messages, include_usage=False)
            async with chunks:
                async for chunk in chunks:
                    received += 1
                    if chunk.model:
                        model = chunk.model
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices:
                        delta = choice.delta.content if choice.delta is not None else None
                        if delta:
                            parts.append(delta)
                            yield delta
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            raise translated from exc
        if received == 0:
            # Not one chunk, not even the role or the finish reason: the server failed after answering 200 (as
            # llama-cpp-python's server does when the prompt does not fit its context). Never a valid answer.
            raise GeneratorError(
                f"LLM endpoint {self.base_url} (model {self.model!r}) closed the stream without sending anything"
                " (for llama.cpp: the prompt may not fit the server's context; see the server's log)"
            )
        text = "".join(parts)
        yield GeneratedAnswer(text=text, usage=usage if usage is not None else _estimate(messages, text), model=model)

    async def _open_stream(
        self, client: AsyncOpenAI, messages: list[ChatCompletionMessageParam], *, include_usage: bool
    ) -> Any:
        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
        return await client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=self.endpoint.max_tokens,
            temperature=self.endpoint.temperature,
            stream=True,
            **extra,
        )

    def _translate(self, exc: Exception) -> RagError | None:
        """Map an SDK (or transport) exception to TransientError or GeneratorError; None for anything else."""
        import openai

        timeouts, transports = transport_errors()
        where = f"LLM endpoint {self.base_url} (model {self.model!r})"
        if isinstance(exc, openai.APITimeoutError):
            return TransientError(f"{where} did not answer within {self.endpoint.timeout_seconds:g} s")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return TransientError(f"{where} is unreachable: {_describe(cause)}")
        if isinstance(exc, openai.RateLimitError):
            return TransientError(f"{where} is rate limiting requests (429): {_server_text(exc)}")
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            if code >= 500 or code in (408, 409):
                return TransientError(f"{where} failed with HTTP {code}: {_server_text(exc)}")
            return GeneratorError(f"{where} refused the request with HTTP {code}: {_server_text(exc)}")
        if isinstance(exc, timeouts):
            return TransientError(
                f"{where} stopped answering mid-stream (no data for {self.endpoint.timeout_seconds:g} s)"
            )
        if isinstance(exc, transports):
            return TransientError(f"{where} dropped the connection: {_describe(exc)}")
        if isinstance(exc, openai.APIError):
            # E.g. an error event inside the stream, or a response that is not the OpenAI shape.
            return GeneratorError(f"{where} returned an unusable response: {_server_text(exc)}")
        return None


def transport_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """(timeouts, transport errors) of the HTTP clients under the SDK: openai 3 speaks httpx2, older ones httpx. A
    stream that stalls or drops mid-answer raises these, not the SDK's own errors."""
    import httpx

    timeouts: list[type[Exception]] = [httpx.TimeoutException]
    transports: list[type[Exception]] = [httpx.TransportError]
    try:
        import httpx2
    except ImportError:
        pass
    else:
        timeouts.append(httpx2.TimeoutException)
        transports.append(httpx2.TransportError)
    return tuple(timeouts), tuple(transports)


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


# Characters per token of English text for GPT-style tokenizers: an estimate, marked as one, for endpoints that
# report no usage (llama.cpp's server streams none), so budgets and /v1/usage still see what they were sent.
_CHARS_PER_TOKEN = 4


def _estimate(messages: list[ChatCompletionMessageParam], text: str) -> Usage:
    sent = sum(len(str(m.get("content") or "")) for m in messages)
    return Usage(
        prompt_tokens=math.ceil(sent / _CHARS_PER_TOKEN),
        completion_tokens=math.ceil(len(text) / _CHARS_PER_TOKEN),
        estimated=True,
    )


def _is_status(exc: BaseException, code: int) -> bool:
    return getattr(exc, "status_code", None) == code


def _server_text(exc: BaseException) -> str:
    """The server's own error message: `{"error": {"message": ...}}`, `{"message": ...}`, or the raw text."""
    body = getattr(exc, "body", None)
    text: str | None = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            text = inner.get("message") or inner.get("detail") or None
            if text is None and inner:
                text = str(inner)
        elif inner:
            text = str(inner)
    elif isinstance(body, str) and body.strip():
        text = body
    if not text:
        response = getattr(exc, "response", None)
        try:
            text = response.text if response is not None else None
        except Exception:  # a streamed response whose body was not read
            text = None
    if not text:
        text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 3] + "..."


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""The model gateway: several OpenAI-compatible endpoints behind one `Generator`, with routes and a fallback chain.

A question goes to the first endpoint of its chain (the first route in RAG_GATEWAY__ROUTES that matches its
collections and length, else the default chain). An endpoint that fails, does not answer within its timeout,
answers 5xx, is over budget, or whose circuit breaker is open hands the question to the next endpoint; when the
whole chain failed, the extractive generator answers (unless switched off). Streaming falls back the same way, but
only until the first token is sent: from then on the answer is that endpoint's, and its failure is the answer's.

Every attempt is recorded on the answer (`GeneratedAnswer.attempts`) and reported to `on_attempt` (the metrics).

The breakers are purgatory's: after `breaker_threshold` failures in a row an endpoint is not called for
`breaker_recovery_seconds`; then it is called again (half-open), and a success closes the breaker while a failure
opens it again at once.
Failures that say nothing about the endpoint's health are not counted: a cancelled request, a budget refusal, and a
refusal of this one request (HTTP 400, 413, 422: e.g. a prompt too long for its context).

Budget hook: `admit(endpoint)` runs before each endpoint is called; it, or anything the endpoint's generator runs,
may raise `BudgetExhausted`, and the gateway records the outcome `budget` and goes on to the next endpoint. Budgets
themselves are built elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import RagError, TransientError
from kernel.gateway_settings import GatewayRoute
from kernel.types import Attempt, AttemptOutcome, Context, GeneratedAnswer
from rag.generation.base import Generator, Prompt

log = logging.getLogger(__name__)

EXTRACTIVE = "extractive"
GATEWAY = "gateway"
# Refusals of one request, not signs of a failing endpoint: they do not count towards its breaker.
_REQUEST_SPECIFIC = (400, 413, 422)


class BudgetExhausted(RagError):
    """A budget forbids calling this endpoint now: the gateway tries the next one (outcome `budget`)."""

    status = 429


@dataclass(frozen=True)
class GatewayEndpoint:
    name: str
    generator: Generator
    model: str
    timeout_seconds: float


OnAttempt = Callable[[Attempt], None]
Admit = Callable[[str], Awaitable[None]]
OnBreaker = Callable[[str, str], None]


def _status(exc: BaseException) -> int | None:
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "status_code", None)
        if isinstance(code, int):
            return code
        seen = seen.__cause__
    return None


def _is_timeout(exc: BaseException) -> bool:
    from rag.generation.openai_compat import transport_errors

    timeouts: tuple[type[Exception], ...] = (TimeoutError, *transport_errors()[0])
    seen: BaseException | None = exc
    while seen is not None:
        # openai.APITimeoutError derives from APIConnectionError; its name is the stable part of its API.
        if isinstance(seen, timeouts) or type(seen).__name__ == "APITimeoutError":
            return True
        seen = seen.__cause__
    return False


def outcome_of(exc: BaseException) -> AttemptOutcome:
    from purgatory.domain.model import OpenedState

    if isinstance(exc, BudgetExhausted):
        return "budget"
    if isinstance(exc, OpenedState):
        return "breaker_open"
    if _is_timeout(exc):
        return "timeout"
    code = _status(exc)
    if code is not None and code >= 500:
        return "5xx"
    return "error"


def _not_the_endpoints_fault(exc: BaseException) -> bool:
    return isinstance(exc, BudgetExhausted) or _status(exc) in _REQUEST_SPECIFIC


class Breakers:
    """One purgatory circuit breaker per endpoint name, in this process's memory."""

    def __init__(self, threshold: int, recovery_seconds: float, on_change: OnBreaker | None = None) -> None:
        from purgatory import AsyncCircuitBreakerFactory

        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=recovery_seconds,
            exclude=[asyncio.CancelledError, GeneratorExit, (Exception, _not_the_endpoints_fault)],
        )
        if on_change is not None:
            callback = on_change

            def hook(name: str, kind: str, event: Any) -> None:
                if kind == "state_changed":
                    callback(name, str(event.state))

            self._factory.add_listener(hook)

    async def get(self, name: str) -> Any:
        return await self._factory.get_breaker(name)


@dataclass
class GatewayCore:
    """What every routed view of the gateway shares: endpoints, routes, breakers, the last resort and the hooks."""

    endpoints: dict[str, GatewayEndpoint]
    chain: list[str]
    breakers: Breakers
    routes: list[GatewayRoute] = field(default_factory=list)
    # The last resort, and whether its answer has the evidence to be shown (an insufficient one is not streamed:
    # the pipeline abstains on it, and nothing shown is ever taken back).
    fallback: Generator | None = None
    sufficient: Callable[[GeneratedAnswer], bool] = lambda answer: True
    on_attempt: OnAttempt | None = None
    admit: Admit | None = None


class GatewayGenerator:
    def __init__(self, core: GatewayCore, chain: list[str] | None = None) -> None:
        self._core = core
        self.chain = list(chain if chain is not None else core.chain)

    @property
    def name(self) -> str:
        return GATEWAY

    def route(self, collections: list[str], question: str) -> GatewayGenerator:
        """The gateway with the chain of the first route that matches, else the default chain."""
        for route in self._core.routes:
            if route.matches(collections, question):
                return GatewayGenerator(self._core, route.chain)
        return GatewayGenerator(self._core, self._core.chain)

    def admit_with(self, admit: Admit | None) -> None:
        """The budget hook (see the module's doc): called with each endpoint's name before it is called."""
        self._core.admit = admit

    async def aclose(self) -> None:
        for endpoint in self._core.endpoints.values():
            closer = getattr(endpoint.generator, "aclose", None)
            if closer is not None:
                await closer()

    def _record(self, attempts: list[Attempt], name: str, model: str, outcome: AttemptOutcome, t0: float) -> None:
        attempt = Attempt(
            endpoint=name, model=model, outcome=outcome, duration_ms=round((time.perf_counter() - t0) * 1000, 2)
        )
        attempts.append(attempt)
        if self._core.on_attempt is not None:
            self._core.on_attempt(attempt)

    def _failed(self, attempts: list[Attempt], endpoint: GatewayEndpoint, exc: Exception, t0: float) -> None:
        outcome = outcome_of(exc)
        self._record(attempts, endpoint.name, endpoint.model, outcome, t0)
        why = str(exc) or (f"no answer within {endpoint.timeout_seconds:g} s" if outcome == "timeout" else repr(exc))
        log.warning("gateway: endpoint %s failed (%s): %s", endpoint.name, outcome, why)

    async def _admit(self, name: str) -> None:
        if self._core.admit is not None:
            await self._core.admit(name)

    async def generate(self, question: str, contexts: Sequence[Context], prompt: Prompt) -> GeneratedAnswer:
        attempts: list[Attempt] = []
        for name in self.chain:
            endpoint = self._core.endpoints[name]
            t0 = time.perf_counter()
            try:
                await self._admit(name)
                async with await self._core.breakers.get(name):
                    # Inside the breaker: it sees the TimeoutError (a failure), not the cancellation behind it.
                    async with asyncio.timeout(endpoint.timeout_seconds):
                        out = await endpoint.generator.generate(question, contexts, prompt)
            except Exception as exc:
                self._failed(attempts, endpoint, exc, t0)
                continue
            self._record(attempts, name, out.model or endpoint.model, "ok", t0)
            return out.model_copy(update={"attempts": attempts})
        return await self._last_resort(question, contexts, prompt, attempts)

    async def _last_resort(
        self, question: str, contexts: Sequence[Context], prompt: Prompt, attempts: list[Attempt]
    ) -> GeneratedAnswer:
        if self._core.fallback is None:
            raise _chain_failed(attempts)
        t0 = time.perf_counter()
        out = await self._core.fallback.generate(question, contexts, prompt)
        self._record(attempts, EXTRACTIVE, out.model, "ok", t0)
        return out.model_copy(update={"attempts": attempts})

    async def _endpoint_stream(
        self, endpoint: GatewayEndpoint, question: str, contexts: Sequence[Context], prompt: Prompt
    ) -> AsyncGenerator[str | GeneratedAnswer, None]:
        async with await self._core.breakers.get(endpoint.name):
            async with asyncio.timeout(endpoint.timeout_seconds) as deadline:
                first = True
                items = endpoint.generator.stream(question, contexts, prompt)
                try:
                    async for item in items:
                        if first:
                            # The timeout bounds the wait for the first token; a deadline left running would
                            # cancel whatever the caller does between tokens.
                            deadline.reschedule(None)
                            first = False
                        yield item
                finally:
                    await _close(items)

    async def stream(
        self, question: str, contexts: Sequence[Context], prompt: Prompt
    ) -> AsyncIterator[str | GeneratedAnswer]:
        attempts: list[Attempt] = []
        for name in self.chain:
            endpoint = self._core.endpoints[name]
            t0 = time.perf_counter()
            items = self._endpoint_stream(endpoint, question, contexts, prompt)
            async with aclosing(items):
                try:
                    await self._admit(name)
                    first = await anext(items)
                except Exception as exc:
                    self._failed(attempts, endpoint, exc, t0)
                    continue
                # Committed: the first token goes out, so a failure from here on is the answer's.
                try:
                    item = first
                    while not isinstance(item, GeneratedAnswer):
                        yield item
                        item = await anext(items)
                except Exception as exc:
                    self._failed(attempts, endpoint, exc, t0)
                    raise
                self._record(attempts, name, item.model or endpoint.model, "ok", t0)
                yield item.model_copy(update={"attempts": attempts})
                return
        answer = await self._last_resort(question, contexts, prompt, attempts)
        if self._core.sufficient(answer):
            for word in _words(answer.text):
                yield word
        yield answer


async def _close(items: AsyncIterator[Any]) -> None:
    closer = getattr(items, "aclose", None)  # an async generator: its HTTP stream is released now, not at GC
    if closer is not None:
        await closer()


def fallback_reason(attempts: Sequence[Attempt]) -> str | None:
    """`gateway` when an attempt before the one that answered failed or was skipped (the answer's `fallback`)."""
    return GATEWAY if any(a.outcome != "ok" for a in attempts) else None


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)


def _chain_failed(attempts: list[Attempt]) -> RagError:
    tried = ", ".join(f"{a.endpoint}: {a.outcome}" for a in attempts) or "no endpoint"
    if attempts and all(a.outcome == "budget" for a in attempts):
        return BudgetExhausted(f"every endpoint of the chain is over its budget ({tried})")
    return TransientError(f"no endpoint of the model gateway answered ({tried}); retry later")

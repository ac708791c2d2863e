"""The answer pipeline's measurements: a span and a timing per stage, the answer's counters. Called from
rag/pipeline.py at the points where each is known, so that the pipeline itself stays about answering."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from kernel.types import GeneratedAnswer
from rag.guarded import Screened
from rag.observability.context import current_request_id, current_trace
from rag.observability.tracing import now_ns, stage_spans
from retrieval.search import Retrieval

if TYPE_CHECKING:
    from rag.services import Services

RETRIEVAL_STAGES = ("embed", "search", "rerank")


async def observed_retrieval(svc: Services, call: Awaitable[Retrieval]) -> Retrieval:
    """The retriever's call inside a `retrieve` span, with a span and a timing for each of its stages."""
    telemetry = svc.telemetry
    with telemetry.tracer.start_as_current_span("retrieve"):
        retrieval = await call
        stage_spans(telemetry.tracer, retrieval.timings_ms, RETRIEVAL_STAGES, now_ns())
    for stage in RETRIEVAL_STAGES:
        telemetry.metrics.stage(stage, retrieval.timings_ms.get(stage, 0.0) / 1000)
    return retrieval


def count_screened(svc: Services, screened: Screened) -> None:
    """Chunks flagged at ingestion as addressing the model, left out or quoted as data."""
    svc.guard.chunks_excluded += screened.excluded
    svc.guard.chunks_quoted += screened.quoted
    svc.telemetry.metrics.guardrail("injection", "chunk_excluded", screened.excluded)
    svc.telemetry.metrics.guardrail("injection", "chunk_quoted", screened.quoted)


def observe_answer(
    svc: Services, generator: str, timings_ms: dict[str, float], answer: GeneratedAnswer | None, reason: str | None
) -> None:
    """Once the answer is decided: the generation's span and timing (if the generator ran), the answer and its
    abstention reason, the tokens the model used. The generation just ended, so its span ends now."""
    telemetry = svc.telemetry
    metrics = telemetry.metrics
    if answer is not None:
        stage_spans(telemetry.tracer, timings_ms, ("generate",), now_ns())
        metrics.stage("generate", timings_ms.get("generate", 0.0) / 1000)
        metrics.tokens(answer.model, answer.usage.prompt_tokens, answer.usage.completion_tokens)
    metrics.answer(generator, reason)
    if reason == "injection_followed":
        metrics.guardrail("injection", "answer_withheld")


def trace_fields() -> dict[str, str | None]:
    """What the answer row keeps of its request: the request id and the trace id (returned as X-Trace-Id)."""
    return {"request_id": current_request_id(), "trace_id": current_trace()[0]}

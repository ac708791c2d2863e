"""OpenTelemetry traces: a TracerProvider owned by the service (never the process-wide global one, so that two
services in one process keep their spans apart), with an OTLP exporter only when an endpoint is configured.

A trace is one request: the middleware's server span, with a span per pipeline stage below it. A job is a trace of
its own, linked to the trace of the request that enqueued it (its `traceparent` travels in the job's arguments).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Link, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kernel.ops_settings import ObservabilitySettings
from rag.observability.context import current_request_id

TRACER_NAME = "rag"
_PROPAGATOR = TraceContextTextMapPropagator()


class Tracing:
    """`tracer` makes spans; with tracing off it is a no-op tracer (spans cost nearly nothing and have no id)."""

    def __init__(self, settings: ObservabilitySettings) -> None:
        self.provider: TracerProvider | None = None
        self.tracer: Tracer = trace.NoOpTracer()
        if not settings.tracing:
            return
        self.provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
        if settings.otlp_endpoint:
            self.provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(settings.otlp_endpoint)))
        self.tracer = self.provider.get_tracer(TRACER_NAME)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def _otlp_exporter(endpoint: str) -> SpanExporter:
    try:
        # The optional extra `otlp`: not installed where traces stay on the machine.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]  # extra
            OTLPSpanExporter,
        )
    except ImportError:
        raise RuntimeError(
            f"RAG_OBSERVABILITY__OTLP_ENDPOINT is set ({endpoint}) but the OTLP exporter is not installed: "
            "pip install 'rag-service[otlp]', or unset the endpoint"
        ) from None
    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint)
    return exporter


def job_carrier() -> dict[str, str]:
    """What a job needs to continue the story of the request that enqueues it: its trace context and request id."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if (request_id := current_request_id()) is not None:
        carrier["request_id"] = request_id
    return carrier


def links_from(carrier: Mapping[str, str] | None) -> list[Link]:
    """A link to the span that enqueued the job, if its context came along."""
    if not carrier:
        return []
    ctx = trace.get_current_span(_PROPAGATOR.extract(dict(carrier))).get_span_context()
    return [Link(ctx)] if ctx.is_valid else []


def stage_spans(tracer: Tracer, timings_ms: Mapping[str, float], stages: tuple[str, ...], ended_ns: int) -> None:
    """Spans for stages that ran back to back inside a component that reports their durations (the retriever):
    laid end to end, the last ending at `ended_ns`. Their durations are measured; their start times derived."""
    durations = [(s, int(float(timings_ms.get(s, 0.0)) * 1e6)) for s in stages]
    start = ended_ns - sum(d for _, d in durations)
    for name, duration in durations:
        span = tracer.start_span(name, start_time=start, attributes={"rag.timing": "derived"})
        start += duration
        span.end(end_time=start)


def now_ns() -> int:
    return time.time_ns()

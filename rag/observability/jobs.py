"""A job's span and log context: the request id of the request that enqueued it (from the job's `meta`
argument) on every log line of the job, and a span of its own linked to that request's trace."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry.trace import Span, SpanKind

from rag.observability.context import bind_request_id, reset_request_id
from rag.observability.telemetry import Telemetry
from rag.observability.tracing import links_from


@contextlib.contextmanager
def job_scope(
    telemetry: Telemetry, name: str, meta: Mapping[str, str] | None, attributes: dict[str, str]
) -> Iterator[Span]:
    token = bind_request_id((meta or {}).get("request_id"))
    try:
        with telemetry.tracer.start_as_current_span(
            name, kind=SpanKind.CONSUMER, links=links_from(meta), attributes=attributes
        ) as span:
            yield span
    finally:
        reset_request_id(token)

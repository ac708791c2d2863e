"""The request id of the work in progress, in a context variable: set by the API middleware for each request and
by the worker for each job (from the job's arguments), read by every log line and carried into enqueued jobs."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

from opentelemetry import trace

# A context variable is a key, not state: each task sees its own value, so concurrent requests never mix.
REQUEST_ID: ContextVar[str | None] = ContextVar("rag_request_id", default=None)

# What a client may send as its own X-Request-Id: short and printable, so it is safe in logs and headers.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id(sent: str | None = None) -> str:
    """The client's id when it is a sane one, else a fresh one."""
    return sent if sent and _CLIENT_ID.match(sent) else uuid.uuid4().hex


def bind_request_id(request_id: str | None) -> Token[str | None]:
    return REQUEST_ID.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    REQUEST_ID.reset(token)


def current_request_id() -> str | None:
    return REQUEST_ID.get()


def current_trace() -> tuple[str | None, str | None]:
    """The trace id and span id (hex) of the current span, or None when no span is recording."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

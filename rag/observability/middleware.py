"""Every HTTP request: a request id (the client's `X-Request-Id` if it sent a sane one), a server span that is the
root of the request's trace, the request counted and timed by route template, and one log line. The response says
`X-Request-Id` and `X-Trace-Id`.

Plain ASGI rather than a `BaseHTTPMiddleware`: the span and the timing then cover a streamed body to its last
byte, and the context (request id, current span) is the one the routes run in.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.observability.context import bind_request_id, current_trace, new_request_id, reset_request_id

if TYPE_CHECKING:
    from rag.services import Services

log = logging.getLogger("rag.access")

REQUEST_ID_HEADER = "X-Request-Id"
TRACE_ID_HEADER = "X-Trace-Id"
UNMATCHED = "unmatched"  # paths no route has: one label, whatever was asked, so that scanners add no series


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        svc: Services | None = scope["app"].state.services if scope["type"] == "http" else None
        if svc is None:  # not HTTP, or the service is still starting
            await self.app(scope, receive, send)
            return
        telemetry = svc.telemetry
        method = scope["method"]
        sent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = new_request_id(sent)
        token = bind_request_id(request_id)
        status = 500
        started = time.perf_counter()
        attributes = {"http.request.method": method, "url.path": scope["path"], "rag.request_id": request_id}
        try:
            with telemetry.tracer.start_as_current_span(
                method, kind=SpanKind.SERVER, attributes=attributes, set_status_on_exception=True
            ) as span:
                trace_id = current_trace()[0]

                async def send_with_ids(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        headers = MutableHeaders(scope=message)
                        headers[REQUEST_ID_HEADER] = request_id
                        if trace_id is not None:
                            headers[TRACE_ID_HEADER] = trace_id
                    await send(message)

                try:
                    await self.app(scope, receive, send_with_ids)
                finally:
                    route = route_template(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    seconds = time.perf_counter() - started
                    telemetry.metrics.request(method, route, status, seconds)
                    # Inside the span: the line carries the trace id too.
                    _log_request(scope, method, route, status, seconds, svc.settings.observability.log_text)
        finally:
            reset_request_id(token)


def _log_request(scope: Scope, method: str, route: str, status: int, seconds: float, with_text: bool) -> None:
    state: dict[str, Any] = scope.get("state") or {}
    caller = state.get("principal")
    extra: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "key_id": getattr(caller, "key_id", None) or state.get("audit_key_id"),
    }
    if (answer_id := state.get("audit_answer_id")) is not None:
        extra["answer_id"] = answer_id
    if with_text and (question := state.get("audit_question")) is not None:
        extra["question"] = question
    log.info("%s %s %d", method, route, status, extra=extra)

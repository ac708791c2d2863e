"""Every request into the audit log, after its response: who, what, on which collection, document or answer, and
how it ended (refused requests included). Routes add what only they know through `note()`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from kernel.access import Principal
from kernel.records import NewAuditEntry
from kernel.settings import AuditSettings

log = logging.getLogger(__name__)

# Probes and the browser's own requests say nothing about anyone's data.
UNAUDITED = frozenset({"/healthz", "/readyz", "/favicon.ico"})
REFUSED = frozenset({401, 403, 429})


def note(
    request: Request,
    *,
    collection: str | None = None,
    answer_id: str | None = None,
    question: str | None = None,
    detail: str | None = None,
) -> None:
    """What a route knows that its path does not say (the collection of a query, the answer it made, a guardrail
    event such as a detected injection attempt, in `detail`)."""
    if collection is not None:
        request.state.audit_collection = collection
    if answer_id is not None:
        request.state.audit_answer_id = answer_id
    if question is not None:
        request.state.audit_question = question
    if detail is not None:
        request.state.audit_detail = detail


def outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in REFUSED:
        return "refused"
    return "error" if status >= 500 else "invalid"


def recorded_question(question: str | None, policy: str) -> str | None:
    if question is None or policy == "none":
        return None
    if policy == "hash":
        return "sha256:" + hashlib.sha256(question.encode()).hexdigest()
    return question


def entry(request: Request, status: int, policy: str) -> NewAuditEntry:
    state = request.state
    caller: Principal | None = getattr(state, "principal", None)
    route = request.scope.get("route")
    params = request.path_params
    return NewAuditEntry(
        action=getattr(route, "name", None) or "unknown",
        method=request.method,
        path=request.url.path[:512],
        outcome=outcome(status),
        status=status,
        key_id=caller.key_id if caller else getattr(state, "audit_key_id", None),
        role=caller.role.value if caller else None,
        collection=params.get("name") or getattr(state, "audit_collection", None),
        document_id=params.get("document_id"),
        answer_id=params.get("answer_id") or getattr(state, "audit_answer_id", None),
        question=recorded_question(getattr(state, "audit_question", None), policy),
        detail=getattr(state, "audit_detail", None),
    )


def add_audit(app: FastAPI, settings: AuditSettings) -> None:
    if not settings.enabled:
        return

    @app.middleware("http")
    async def audit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            await _record(request, 500, settings.questions)
            raise
        await _record(request, response.status_code, settings.questions)
        return response


async def _record(request: Request, status: int, policy: str) -> None:
    svc = request.app.state.services
    if svc is None or request.url.path in UNAUDITED:
        return
    try:
        await svc.audit.append(entry(request, status, policy))
    except Exception:
        # The response is already made; losing its record is logged loudly rather than failing the caller.
        log.exception("could not write the audit entry for %s %s", request.method, request.url.path)

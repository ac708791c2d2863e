"""Every error is JSON `{"error": "..."}`: the handlers that make it, and the OpenAPI entries that say which
statuses each route can answer with, so that a client (or a fuzzer) can trust the schema."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from kernel.errors import RagError
from kernel.text import without_surrogates
from kernel.types import ErrorBody

log = logging.getLogger(__name__)

_WHY = {
    401: "No API key, or one that is unknown, revoked or expired.",
    403: "The key's role does not allow this.",
    404: "No such thing, or one this key may not see (the two are not told apart).",
    409: "A conflict with the current state; the message says whether retrying helps.",
    413: "The request body is larger than the configured limit.",
    415: "The upload is not a document the service can read.",
    422: "Invalid input; the message names the field.",
    429: "Over the key's rate limit, or too many evaluations at once: retry after Retry-After seconds.",
    502: "The configured LLM refused the request.",
    503: "The service is starting, or a backend (database, queue, vector store, LLM) is unavailable.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait.", "required": True, "schema": {"type": "integer"}}},
}
# Every route behind the key check can answer these.
COMMON = (401, 422, 429, 503)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the error body."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {"model": ErrorBody, "description": _WHY[code]}
        if code in _HEADERS:
            out[code]["headers"] = _HEADERS[code]
    return out


class ErrorResponse(JSONResponse):
    """A JSON error that renders whatever it quotes: an unpaired surrogate in echoed input is written out as its
    escape instead of failing the UTF-8 encoding (which turned a 422 into a 500)."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return without_surrogates(text).encode("utf-8")


def error(message: str, status: int, headers: dict[str, str] | None = None, **extra: Any) -> ErrorResponse:
    return ErrorResponse({"error": message, **extra}, status_code=status, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route serves at this path. Starlette names only the first route that matches the path,
    so `POST /v1/collections` would be left out of the answer to `TRACE /v1/collections`."""
    routes = request.app.router.routes
    return [m for m in METHODS if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)]


def install(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def rag_error(_request: Request, exc: RagError) -> ErrorResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        # A guardrail refusal says what it found (`detail`), so the person can rephrase or ask the owner.
        extra = {"detail": detail} if (detail := getattr(exc, "detail", None)) is not None else {}
        return error(exc.message, exc.status, headers or None, **extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> ErrorResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
            problems.append(f"{where}: {err.get('msg')}")
        return error("invalid request: " + "; ".join(problems), 422, detail=jsonable_encoder(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> ErrorResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        if exc.status_code == 400:
            # Starlette's word for a body it cannot parse (broken multipart): invalid input, a 422 like all others.
            return error(f"invalid request body: {exc.detail}", 422, headers or None)
        return error(str(exc.detail), exc.status_code, headers or None)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> ErrorResponse:
        log.exception("unhandled error", exc_info=exc)
        return error("internal error; the service logged the details", 500)

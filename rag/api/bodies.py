"""JSON request bodies are read within a size limit and checked before FastAPI validates them: text that JSON
can carry but UTF-8 cannot (an unpaired surrogate, `"\\udfff"`) is refused with a 422 naming the field, where it
used to pass validation and fail deep inside (a 500 from the tokenizer, the database or the response encoder).

The FastAPI way to change how a route reads its request: a custom `APIRoute` with a `Request` subclass
(https://fastapi.tiangolo.com/how-to/custom-request-and-route/). Every router of the API uses `CheckedRoute`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from kernel.errors import InvalidInput, PayloadTooLarge
from kernel.text import lone_surrogate
from rag.api.errors import errors

# Used when the app did not say (a router mounted on a bare FastAPI app in a test).
DEFAULT_MAX_JSON_BYTES = 4 * 1024 * 1024


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class LimitedRequest(Request):
    """A request whose body is read at most up to the app's `max_json_bytes`."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            settings = getattr(self.app.state, "settings", None)
            limit = settings.limits.max_json_bytes if settings else DEFAULT_MAX_JSON_BYTES
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(_too_large(limit))
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(_too_large(limit))
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes (RAG_LIMITS__MAX_JSON_BYTES)"


async def check_json(request: Request) -> None:
    """Reads and decodes the body (FastAPI reuses both), and refuses what it cannot safely hand on."""
    if not await request.body() or not _is_json(request.headers.get("content-type")):
        return
    try:
        value = await request.json()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the request body is not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise InvalidInput("the request body is nested too deeply") from None
    except ValueError:
        return  # not JSON: FastAPI answers with its own 422 that says where
    found = lone_surrogate(value)
    if found is not None:
        path, escape = found
        message = f"contains an unpaired UTF-16 surrogate ({escape}), which is not text; send valid Unicode"
        raise RequestValidationError([{"type": "string_unicode", "loc": ("body", *path), "msg": message}])


class CheckedRoute(APIRoute):
    """An API route whose JSON body is size-limited and checked; its OpenAPI entry says so (413, 422)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self._has_json_body():
            self.responses = {**errors(413, 422), **self.responses}

    def _has_json_body(self) -> bool:
        return self.body_field is not None and not isinstance(self.body_field.field_info, params.Form)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()  # called by APIRoute.__init__, once body_field is known
        if not self._has_json_body():
            return handler

        async def checked(request: Request) -> Response:
            request = LimitedRequest(request.scope, request.receive)
            await check_json(request)
            return await handler(request)

        return checked

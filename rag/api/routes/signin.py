"""Signing in a browser: the analyst pages (/reports) are opened by a browser, which cannot send a bearer header.

`POST /v1/session` checks a key and returns it in an HttpOnly, SameSite=Strict cookie; the key check then accepts
that cookie on GET and HEAD requests only, so a cookie can read pages and reports but never change anything (no
cross-site request can use it to write). `GET /login` is the form that posts the key; `DELETE /v1/session` forgets it.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from kernel.errors import Unauthorized
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import errors
from rag.api.limits import caller_id, request_limits
from rag.security import KEY_COOKIE
from rag.services import Services

router = APIRouter(tags=["session"], route_class=CheckedRoute)
Svc = Annotated[Services, Depends(get_services)]
# A working day: an analyst signs in again the next morning.
COOKIE_SECONDS = 8 * 3600


class SignIn(BaseModel):
    key: str = Field(min_length=1, max_length=256, description="An API key, as `rag keys create` printed it.")


class SignedIn(BaseModel):
    role: str
    collections: list[str]


@router.post("/v1/session", response_model=SignedIn, responses=errors(401, 422, 429, 503))
async def sign_in(body: SignIn, request: Request, response: Response, svc: Svc) -> SignedIn:
    # Counted against the address before the key is checked: guessing keys costs the guesser's allowance.
    if (limits := request_limits(request)) is not None:
        await limits.hit(caller_id(request, None))
    key, reason = await svc.keys.check(body.key)
    if key is None:
        raise Unauthorized(reason)
    response.set_cookie(
        KEY_COOKIE,
        body.key,
        max_age=COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return SignedIn(role=key.role, collections=sorted(key.collections))


@router.delete("/v1/session", status_code=204, responses=errors(422, 429, 503))
async def sign_out() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(KEY_COOKIE, httponly=True, samesite="strict")
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page() -> HTMLResponse:
    return HTMLResponse(resources.files("rag.api").joinpath("static/login.html").read_text(encoding="utf-8"))

"""Access control at the API edge: the bearer key becomes a `Principal`, and each route states the permission it
needs. Grants travel with the principal into retrieval, where they become part of the vector store's filter.

Single-user mode: while no key was ever made, requests without a key run as an admin of every collection, which
`rag serve`/`rag api` allow only on a loopback address (see `check_open_mode`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from kernel.access import Permission, Principal, Role
from kernel.errors import Forbidden, Unauthorized, collection_not_found
from rag.api.deps import get_services
from rag.api.limits import caller_id, request_limits
from rag.services import Services
from rag.storage.keys import split_key

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rag_...`.")
KEY_COOKIE = "rag_key"
# Set by `POST /v1/session` for browsers (the /reports page); honoured on GET and HEAD only (rag/api/routes/signin.py).
key_cookie = APIKeyCookie(name=KEY_COOKIE, auto_error=False, description="A browser's key, from POST /v1/session.")
READ_ONLY = frozenset({"GET", "HEAD"})

FIRST_KEY_HINT = "rag keys create --role admin --collections '*'"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def check_open_mode(svc: Services) -> bool:
    """Whether the service runs without keys. Refuses (RuntimeError) to listen beyond loopback without one."""
    if await svc.keys.any_key():
        return False
    if not is_loopback(svc.settings.host):
        raise RuntimeError(
            f"no API key exists and the service would listen on {svc.settings.host}: anyone who can reach it could "
            f"read and change every collection. Make the first key with `{FIRST_KEY_HINT}` (it prints the key "
            "once), or listen on 127.0.0.1."
        )
    return True


async def principal(
    request: Request,
    svc: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    cookie: Annotated[str | None, Depends(key_cookie)],
) -> Principal:
    """Every request's caller; raises 401 for a missing, unknown, revoked or expired key."""
    if credentials is None and request.headers.get("authorization"):
        # Not a bearer credential ("Basic ...", a bare token): refused in every mode, never taken for no key.
        raise Unauthorized("the Authorization header must be `Bearer <key>`")
    presented = credentials.credentials if credentials else (cookie if request.method in READ_ONLY else None)
    if not await svc.keys.any_key():
        # Single-user mode ignores whatever key a client sends (OpenAI SDKs always send one).
        found = Principal.open_mode()
    elif presented is None:
        raise Unauthorized(
            "this service needs an API key: send `Authorization: Bearer <key>` (a browser signs in at /login)"
        )
    else:
        parts = split_key(presented)
        request.state.audit_key_id = parts[0] if parts else None  # the id only, never the secret
        key, reason = await svc.keys.check(presented)
        if key is None:
            raise Unauthorized(reason)
        found = Principal(key.id, Role(key.role), frozenset(key.collections))
    request.state.principal = found
    # Counted once the caller is known, so one key's burst never uses up another's allowance.
    limits = request_limits(request)
    if limits is not None:
        await limits.hit(caller_id(request, found.key_id))
    return found


Caller = Annotated[Principal, Depends(principal)]


def allowed(caller: Principal, permission: Permission) -> Principal:
    """The caller, if its role has `permission`; 403 otherwise (the route's existence is public)."""
    if not caller.may(permission):
        raise Forbidden(f"a {caller.role.value} key may not do this (it needs the '{permission.value}' right)")
    return caller


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, if its role has `permission`; 403 otherwise."""

    async def check(caller: Caller) -> Principal:
        return allowed(caller, permission)

    return check


async def page_viewer(
    request: Request,
    svc: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    cookie: Annotated[str | None, Depends(key_cookie)],
) -> Principal | None:
    """A browser page's caller, or None where it has not signed in (the page then sends it to /login)."""
    try:
        return await principal(request, svc, credentials, cookie)
    except Unauthorized:
        return None


Asker = Annotated[Principal, Depends(require(Permission.ask))]
Browser = Annotated[Principal, Depends(require(Permission.browse))]
Manager = Annotated[Principal, Depends(require(Permission.manage))]
Reviewer = Annotated[Principal, Depends(require(Permission.review))]
Admin = Annotated[Principal, Depends(require(Permission.administer))]


def visible(caller: Principal, collection: str) -> str:
    """The collection, if the caller may see it; otherwise the same 404 as for a collection that does not exist."""
    if not caller.sees(collection):
        raise collection_not_found(collection)
    return collection

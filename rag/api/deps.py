"""Request-scoped access to the services the lifespan built."""

from __future__ import annotations

from fastapi import Request

from kernel.errors import RagError
from rag.services import Services


class NotReady(RagError):
    status = 503


def get_services(request: Request) -> Services:
    svc: Services | None = getattr(request.app.state, "services", None)
    if svc is None:
        raise NotReady("the service is starting; try again in a few seconds")
    return svc

"""API keys, for admins: create (the key is in this one response only), list, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, field_validator

from kernel.access import ALL_COLLECTIONS, Role
from kernel.records import NewKey
from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.params import Id
from rag.security import Admin
from rag.services import Services

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=CheckedRoute, responses=errors(*COMMON, 403))
Svc = Annotated[Services, Depends(get_services)]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class KeyCreate(BaseModel):
    role: Role
    collections: list[Annotated[str, Field(pattern=rf"{_NAME}|^\*$")]] = Field(
        min_length=1, max_length=200, description=f"Collection names, or {ALL_COLLECTIONS!r} for every collection."
    )
    name: str = Field(default="", max_length=128, description="Who or what the key is for.")
    expires_at: datetime | None = Field(default=None, description="ISO 8601 with a zone; none: never.")

    @field_validator("expires_at", mode="before")
    @classmethod
    def _text(cls, v: object) -> object:
        # As the schema says: a string. Pydantic alone would also read a number as seconds since 1970.
        if v is not None and not isinstance(v, str):
            raise ValueError("expires_at must be an ISO 8601 string, e.g. 2027-01-01T00:00:00Z")
        return v

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("expires_at needs a time zone, e.g. 2027-01-01T00:00:00Z")
        return v


class KeyInfo(BaseModel):
    id: str
    name: str
    role: Role
    collections: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyInfo):
    key: str = Field(description="The key itself: shown now and never again.")


@router.post("", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, svc: Svc, _admin: Admin) -> KeyCreated:
    stored, key = await svc.keys.create(NewKey(body.role.value, body.collections, body.name, body.expires_at))
    return KeyCreated.model_validate({**KeyInfo.model_validate(stored, from_attributes=True).model_dump(), "key": key})


@router.get("", response_model=list[KeyInfo])
async def list_keys(svc: Svc, _admin: Admin) -> list[KeyInfo]:
    return [KeyInfo.model_validate(k, from_attributes=True) for k in await svc.keys.list_all()]


@router.delete("/{key_id}", response_model=KeyInfo, responses=errors(404))
async def revoke_key(key_id: Id, svc: Svc, _admin: Admin) -> KeyInfo:
    return KeyInfo.model_validate(await svc.keys.revoke(key_id), from_attributes=True)

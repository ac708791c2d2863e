"""API keys: created with a random secret shown once, kept as a SHA-256 of that secret, revoked in place.

A key reads `rag_<id>_<secret>`: the id finds the row, the secret's hash is compared in constant time. The secret
is 256 random bits, so a fast hash is enough (a slow password hash protects guessable secrets, not random ones).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from kernel.errors import NotFound
from kernel.records import ApiKey, NewKey
from rag.storage.engine import Transaction, as_utc, now, utc
from rag.storage.schema import api_keys

PREFIX = "rag_"
ID_HEX = 12


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    body = presented[len(PREFIX) :] if presented.startswith(PREFIX) else ""
    key_id, sep, secret = body[:ID_HEX], body[ID_HEX : ID_HEX + 1], body[ID_HEX + 1 :]
    if len(key_id) != ID_HEX or sep != "_" or not secret or any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def _record(row: Mapping[str, Any] | sa.RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        collections=list(row["collections"]),
        created_at=utc(row["created_at"]),
        expires_at=as_utc(row["expires_at"]),
        revoked_at=as_utc(row["revoked_at"]),
    )


class KeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, new: NewKey) -> tuple[ApiKey, str]:
        """The stored key and the full key string, which is never available again."""
        key_id, secret = secrets.token_hex(ID_HEX // 2), secrets.token_urlsafe(32)
        row = {
            "id": key_id,
            "name": new.name,
            "secret_sha256": _digest(secret),
            "role": new.role,
            "collections": sorted(set(new.collections)),
            "created_at": now(),
            "expires_at": new.expires_at,
            "revoked_at": None,
        }
        async with Transaction(self._engine) as conn:
            await conn.execute(api_keys.insert().values(**row))
        return _record(row), f"{PREFIX}{key_id}_{secret}"

    async def list_all(self) -> list[ApiKey]:
        async with Transaction(self._engine) as conn:
            rows = (await conn.execute(api_keys.select().order_by(api_keys.c.created_at))).mappings().all()
        return [_record(r) for r in rows]

    async def revoke(self, key_id: str) -> ApiKey:
        async with Transaction(self._engine) as conn:
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
            row = (await conn.execute(api_keys.select().where(api_keys.c.id == key_id))).mappings().first()
        if row is None:
            raise NotFound(f"API key {key_id!r} does not exist")
        return _record(row)

    async def any_key(self) -> bool:
        """Whether a key was ever made: from then on every request needs one (a revoked key still counts)."""
        async with Transaction(self._engine) as conn:
            return (await conn.execute(sa.select(api_keys.c.id).limit(1))).first() is not None

    async def check(self, presented: str) -> tuple[ApiKey | None, str]:
        """The key a caller presented, or None with the reason it is refused."""
        parts = split_key(presented)
        if parts is None:
            return None, "malformed API key"
        key_id, secret = parts
        async with Transaction(self._engine) as conn:
            row = (await conn.execute(api_keys.select().where(api_keys.c.id == key_id))).mappings().first()
        if row is None or not hmac.compare_digest(row["secret_sha256"], _digest(secret)):
            return None, "unknown API key"
        key = _record(row)
        if key.revoked_at is not None:
            return None, "this API key was revoked"
        if key.expires_at is not None and key.expires_at <= now():
            return None, "this API key has expired"
        return key, ""

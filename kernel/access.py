"""Who is asking and what they may do: roles, grants and the permission each kind of request needs.

Pure rules, no storage: `rag.security` resolves a bearer key to a `Principal`, and every layer below asks the
principal (`sees`, `may`) instead of knowing about keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

ALL_COLLECTIONS = "*"


class Role(StrEnum):
    reader = "reader"
    owner = "owner"
    analyst = "analyst"
    admin = "admin"


class Permission(StrEnum):
    ask = "ask"  # search, answer, chat, the OpenAI-compatible endpoint; own answers and conversations
    browse = "browse"  # collections' and documents' metadata, job states
    manage = "manage"  # create collections, upload, import, delete, roll back
    review = "review"  # every answer, score, feedback and report of granted collections; /v1/evaluate
    administer = "administer"  # keys, grants, the audit log


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.reader: frozenset({Permission.ask}),
    Role.owner: frozenset({Permission.ask, Permission.browse, Permission.manage}),
    Role.analyst: frozenset({Permission.browse, Permission.review}),
    Role.admin: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """The caller: a key (or nobody, in embedded single-user mode), its role and its collections."""

    key_id: str | None
    role: Role
    collections: frozenset[str]

    @classmethod
    def open_mode(cls) -> Principal:
        """Embedded single-user mode: no key exists and the service listens on loopback only."""
        return cls(None, Role.admin, frozenset({ALL_COLLECTIONS}))

    @property
    def all_collections(self) -> bool:
        return ALL_COLLECTIONS in self.collections

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def sees(self, collection: str) -> bool:
        return self.all_collections or collection in self.collections

    def sees_all(self, collections: Iterable[str]) -> bool:
        return all(self.sees(c) for c in collections)

    def grants(self) -> frozenset[str] | None:
        """The collections this caller may read, or None for every collection."""
        return None if self.all_collections else self.collections

    def owns(self, key_id: str | None) -> bool:
        """Whether a record made by `key_id` is this caller's own (in open mode every record is)."""
        return self.key_id is None or self.key_id == key_id

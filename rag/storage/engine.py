"""The database engine and the one way every store talks to it: a short transaction per operation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from kernel.errors import TransientError


def make_engine(url: str, *, for_migrations: bool = False) -> AsyncEngine:
    """SQLite (embedded) or PostgreSQL (production), from a SQLAlchemy async URL.

    `for_migrations`: a short-lived engine whose transactions also cover DDL on SQLite, and without foreign key
    enforcement there, so that a migration which rebuilds a table cannot cascade-delete the rows that refer to it.
    """
    sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {}
    if sqlite:
        kwargs["connect_args"] = {"timeout": 30}
    if for_migrations:
        kwargs["poolclass"] = NullPool
    engine = create_async_engine(url, **kwargs)
    if sqlite:
        pragmas = _migration_pragmas if for_migrations else _service_pragmas
        sa.event.listen(engine.sync_engine, "connect", pragmas)
        if for_migrations:
            sa.event.listen(engine.sync_engine, "begin", _begin_explicitly)
    return engine


class Transaction:
    """`async with Transaction(engine) as conn`: one transaction; an unreachable database is a TransientError."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._cm = engine.begin()

    async def __aenter__(self) -> AsyncConnection:
        try:
            return await self._cm.__aenter__()
        except (OperationalError, OSError) as exc:
            raise TransientError(f"the metadata database is unavailable: {exc}") from exc

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        try:
            return await self._cm.__aexit__(*exc_info)
        except OperationalError as exc:
            raise TransientError(f"the metadata database failed: {exc}") from exc


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def utc(value: datetime) -> datetime:
    """`as_utc` for a column that is never null."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _service_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the worker writes; the timeout rides out short write contention.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _migration_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver would otherwise run DDL outside any transaction: a failed migration would leave half a schema.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def _begin_explicitly(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")

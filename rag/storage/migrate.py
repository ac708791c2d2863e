"""Schema migrations (Alembic; the scripts ship inside this package) and what the service does with them at start.

Every migration runs in a worker thread with an event loop and a short-lived async engine of its own: the DDL and
back-fills of a large database never block the service's loop, and SQLite and PostgreSQL go the same way
(`connection.run_sync`, since both drivers are async). All of an upgrade is one transaction on both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from kernel.errors import RagError
from rag.storage.engine import make_engine

log = logging.getLogger(__name__)

BASELINE = "0001"
# The tables of the last release without migrations: a database with them and no revision is at BASELINE.
BASELINE_TABLES = frozenset(
    {
        "collections",
        "documents",
        "versions",
        "jobs",
        "answers",
        "conversation_turns",
        "answer_scores",
        "answer_feedback",
    }
)
UPGRADE_COMMAND = "rag db upgrade"
# Serialises upgrades of one PostgreSQL database: replicas starting together must not run the same migration twice.
_PG_LOCK_KEY = 7_303_014_661_273_610_863


class SchemaError(RagError):
    """The database's schema does not fit this release; the message says what to run."""

    status = 503


@dataclass(frozen=True)
class SchemaStatus:
    where: str  # the database URL without its password
    current: str | None  # the revision recorded in the database
    head: str  # the revision this release needs
    tables: bool  # the database has any of the service's tables
    known: bool  # this release knows the recorded revision

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def legacy(self) -> bool:
        """Tables of a release before migrations, and no revision recorded."""
        return self.current is None and self.tables

    def describe(self) -> str:
        if not self.known:
            return (
                f"the database {self.where} is at schema revision {self.current}, which this release does not know "
                f"(it needs {self.head}): a newer release upgraded it. Run that release, or restore a backup taken "
                "before the upgrade"
            )
        if self.up_to_date:
            return f"the database {self.where} is at schema revision {self.current} (up to date)"
        if self.legacy:
            state = f"was created before schema migrations (its tables are revision {BASELINE})"
        elif self.current is None:
            state = "has no tables yet"
        else:
            state = f"is at schema revision {self.current}"
        return f"the database {self.where} {state}; this release needs revision {self.head}"

    def refusal(self) -> str:
        """Why the service does not start, and the command that fixes it."""
        if not self.known:
            return self.describe()
        return (
            f"{self.describe()}. Run `{UPGRADE_COMMAND}` with the same RAG_DATABASE__URL (back the database up "
            "first), or let the service upgrade it at start with RAG_DATABASE__AUTO_UPGRADE=true"
        )


async def status(url: str) -> SchemaStatus:
    return await _off_loop(_status(url))


async def upgrade(url: str, revision: str = "head") -> tuple[SchemaStatus, SchemaStatus]:
    """Upgrade to `revision`; a database from before migrations is recorded as BASELINE first. (before, after)"""
    before = await status(url)
    if not before.known:
        raise SchemaError(before.describe())
    await _off_loop(_migrate(url, lambda config: _upgrade(config, revision)))
    return before, await status(url)


async def downgrade(url: str, revision: str) -> tuple[SchemaStatus, SchemaStatus]:
    """Back to `revision` (for going back to an earlier release); never below BASELINE, which would drop every table."""
    if revision == "base" or revision.startswith("-"):
        raise SchemaError(f"name the revision to go back to ({BASELINE} or later); relative steps and base are refused")
    before = await status(url)
    if not before.known:
        raise SchemaError(before.describe())
    await _off_loop(_migrate(url, lambda config: command.downgrade(config, revision)))
    return before, await status(url)


async def prepare(url: str, *, auto_upgrade: bool) -> None:
    """At start: upgrade the database to this release's schema, or refuse with the command that does it."""
    if not auto_upgrade:
        current = await status(url)
        if not current.up_to_date:
            raise SchemaError(current.refusal())
        return
    before, after = await upgrade(url)
    if before.current != after.current:
        log.info("database schema upgraded from %s to %s", before.current or "(none)", after.current)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "rag.storage:migrations")
    return config


def _off_loop(work: Coroutine[Any, Any, Any]) -> Any:
    # A loop of its own in a worker thread: nothing here runs on (or blocks) the caller's loop.
    return asyncio.to_thread(asyncio.run, work)


async def _status(url: str) -> SchemaStatus:
    script = ScriptDirectory.from_config(alembic_config())
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            current, tables = await conn.run_sync(_read_state)
    finally:
        await engine.dispose()
    known = True
    if current is not None:
        try:
            script.get_revision(current)
        except CommandError:
            known = False
    head = script.get_current_head()
    assert head is not None  # the package ships its migrations
    where = sa.make_url(url).render_as_string(hide_password=True)
    return SchemaStatus(where=where, current=current, head=head, tables=tables, known=known)


def _read_state(conn: sa.Connection) -> tuple[str | None, bool]:
    current = MigrationContext.configure(conn).get_current_revision()
    return current, bool(BASELINE_TABLES & set(sa.inspect(conn).get_table_names()))


async def _migrate(url: str, step: Callable[[Config], None]) -> None:
    engine = make_engine(url, for_migrations=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate_in, step)
    finally:
        await engine.dispose()


def _migrate_in(conn: sa.Connection, step: Callable[[Config], None]) -> None:
    if conn.dialect.name == "postgresql":
        # Held to the end of the transaction, which covers the whole upgrade; SQLite's BEGIN IMMEDIATE does the same.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    config = alembic_config()
    config.attributes["connection"] = conn
    step(config)


def _upgrade(config: Config, revision: str) -> None:
    conn: sa.Connection = config.attributes["connection"]
    if MigrationContext.configure(conn).get_current_revision() is None:
        tables = set(sa.inspect(conn).get_table_names())
        if tables & BASELINE_TABLES:
            missing = sorted(BASELINE_TABLES - tables)
            if missing:
                raise SchemaError(
                    f"the database has some of the service's tables but not {', '.join(missing)}: it is not a "
                    "database of an earlier release. Point RAG_DATABASE__URL at the right database, or at an empty one"
                )
            command.stamp(config, BASELINE)
    command.upgrade(config, revision)

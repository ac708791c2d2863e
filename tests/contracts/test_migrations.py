"""Schema migrations on SQLite and PostgreSQL: a database of the release before migrations keeps every row."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from kernel.records import ReportQuery
from rag.storage import migrate
from rag.storage.answers import AnswerStore
from rag.storage.catalog import Catalog
from rag.storage.schema import metadata
from tests.support import legacy_schema as legacy
from tests.support.databases import KINDS, fresh_database
from tests.support.legacy_data import at, fill_legacy, snapshot


@pytest.fixture(params=KINDS)
async def url(request, tmp_path):
    async with fresh_database(request.param, tmp_path) as url:
        yield url


async def run(url: str, work: Any) -> Any:
    """`work(sync_connection)` in one committed transaction on a throwaway engine."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def link_rows(conn: sa.Connection) -> set[tuple[object, ...]]:
    return {tuple(r) for r in conn.execute(sa.text("SELECT answer_id, collection FROM answer_collections"))}


def version_of(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def test_a_database_of_the_previous_release_is_upgraded_with_every_row_intact(url):
    await run(url, legacy.metadata.create_all)
    await run(url, fill_legacy)
    before = await run(url, snapshot)
    assert sum(len(rows) for rows in before.values()) == 19

    catalog = Catalog(url)
    try:
        await catalog.prepare_schema(auto_upgrade=True)  # what the service does at start
        assert await run(url, snapshot) == before
        assert await run(url, link_rows) == {("a1", "alpha"), ("a2", "alpha"), ("a2", "beta"), ("a3", "beta")}
        status = await migrate.status(url)
        assert status.up_to_date and status.current == status.head != migrate.BASELINE

        # The new code reads the old rows, and the back-filled links drive the report's collection filter.
        answers = AnswerStore(catalog.engine)
        assert [r.id for r in await answers.report_rows(ReportQuery(collection="beta"))] == ["a3", "a2"]
        assert (await answers.get("a2")).filters == {"year": 2024}
        assert (await answers.scores.state("a1")).result["claims"][0]["supported"] is True
        assert (await answers.scores.state("a2")).claimed_by is None  # owed, and free for the next batch
        assert await answers.scores.claim("worker", None, 10, timedelta(minutes=1)) == ["a2"]
        assert [t.role for t in await answers.history("conv-1")] == ["user", "assistant"]
        document = await catalog.documents.get("d1")
        assert (document.active_version, document.chunk_count, len(document.versions)) == (2, 5, 2)
        assert document.created_at == at(2)
        assert (await catalog.jobs.get("imp-1")).attempts == 2
        assert await catalog.jobs.unfinished() == ["imp-1"]

        await catalog.prepare_schema(auto_upgrade=True)  # a second start changes nothing
        assert await run(url, snapshot) == before
    finally:
        await catalog.close()


def schema_of(conn: sa.Connection) -> dict[str, Any]:
    """What the database says about its tables: columns, keys, indexes, constraints."""
    inspector = sa.inspect(conn)
    out: dict[str, Any] = {}
    for name in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        out[name] = {
            "columns": [
                (c["name"], repr(c["type"]), c["nullable"], str(c.get("default"))) for c in inspector.get_columns(name)
            ],
            "primary_key": inspector.get_pk_constraint(name),
            "foreign_keys": sorted(
                (
                    fk["name"] or "",
                    fk["constrained_columns"],
                    fk["referred_table"],
                    fk["referred_columns"],
                    fk.get("options", {}).get("ondelete"),
                )
                for fk in inspector.get_foreign_keys(name)
            ),
            "indexes": sorted((i["name"], i["column_names"], bool(i["unique"])) for i in inspector.get_indexes(name)),
            "unique": sorted((u["name"] or "", u["column_names"]) for u in inspector.get_unique_constraints(name)),
        }
    return out


async def test_revision_0001_is_exactly_the_schema_of_the_previous_release(url, tmp_path):
    await migrate.upgrade(url, migrate.BASELINE)
    migrated = await run(url, schema_of)
    kind = sa.make_url(url).get_backend_name()
    async with fresh_database(kind, tmp_path) as other:
        await run(other, legacy.metadata.create_all)
        assert await run(other, schema_of) == migrated
    assert set(migrated) == migrate.BASELINE_TABLES


async def test_the_head_revision_makes_exactly_the_tables_the_code_uses(url):
    await migrate.upgrade(url)

    def differences(conn: sa.Connection) -> list[Any]:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)

    assert await run(url, differences) == []


async def test_downgrade_to_the_baseline_and_up_again(url):
    await run(url, legacy.metadata.create_all)
    await run(url, fill_legacy)
    before = await run(url, snapshot)
    await migrate.upgrade(url)
    _, after = await migrate.downgrade(url, migrate.BASELINE)
    assert after.current == migrate.BASELINE
    assert "answer_collections" not in await run(url, schema_of)
    assert await run(url, snapshot) == before
    await migrate.upgrade(url)
    assert await run(url, snapshot) == before
    assert await run(url, link_rows) == {("a1", "alpha"), ("a2", "alpha"), ("a2", "beta"), ("a3", "beta")}
    with pytest.raises(migrate.SchemaError, match="base"):
        await migrate.downgrade(url, "base")


async def test_an_empty_database_is_created_by_upgrading_from_scratch(url):
    status = await migrate.status(url)
    assert (status.current, status.tables, status.up_to_date) == (None, False, False)
    assert "has no tables yet" in status.describe()
    catalog = Catalog(url)
    try:
        await catalog.prepare_schema(auto_upgrade=True)
    finally:
        await catalog.close()
    assert await run(url, version_of) == status.head


async def test_refusing_to_start_names_the_command_that_upgrades(url):
    await run(url, legacy.metadata.create_all)
    catalog = Catalog(url)
    try:
        with pytest.raises(migrate.SchemaError) as refused:
            await catalog.prepare_schema(auto_upgrade=False)
        message = refused.value.message
        assert "`rag db upgrade`" in message and "before schema migrations" in message
        assert await run(url, version_of) is None  # refusing changed nothing
        await migrate.upgrade(url)
        await catalog.prepare_schema(auto_upgrade=False)  # up to date: starts
    finally:
        await catalog.close()


async def test_a_database_of_a_newer_release_is_refused_either_way(url):
    await migrate.upgrade(url)

    def from_the_future(conn: sa.Connection) -> None:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    await run(url, from_the_future)
    for auto_upgrade in (True, False):
        with pytest.raises(migrate.SchemaError, match=r"does not know .* a newer release upgraded it"):
            await migrate.prepare(url, auto_upgrade=auto_upgrade)


async def test_a_database_with_only_some_of_the_tables_is_not_adopted(url):
    await run(url, lambda conn: legacy.collections.create(conn))
    with pytest.raises(migrate.SchemaError, match="not a database of an earlier release"):
        await migrate.upgrade(url)
    assert await run(url, version_of) is None


async def test_replicas_starting_together_upgrade_once(url):
    await run(url, legacy.metadata.create_all)
    await run(url, fill_legacy)
    before = await run(url, snapshot)
    await asyncio.gather(*(migrate.prepare(url, auto_upgrade=True) for _ in range(3)))
    assert await run(url, snapshot) == before
    assert await run(url, link_rows) == {("a1", "alpha"), ("a2", "alpha"), ("a2", "beta"), ("a3", "beta")}
    assert (await migrate.status(url)).up_to_date

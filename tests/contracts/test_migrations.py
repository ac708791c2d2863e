"""Schema migrations on SQLite and PostgreSQL: a database of the release before migrations keeps every row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from rag.storage import migrate
from rag.storage.answers import AnswerStore
from rag.storage.catalog import Catalog
from rag.storage.records import ReportQuery
from rag.storage.schema import metadata
from tests.support import legacy_schema as legacy
from tests.support.databases import KINDS, fresh_database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


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


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fill_legacy(conn: sa.Connection) -> None:
    """Rows of every kind the release before migrations wrote, nulls and JSON included."""
    conn.execute(
        legacy.collections.insert(),
        [
            {"name": "alpha", "description": "", "meta": {}, "filterable": {}, "created_at": at(0)},
            {
                "name": "beta",
                "description": "Finance reports",
                "meta": {"owner": "ana", "tags": ["q1", "q2"]},
                "filterable": {"year": "integer"},
                "created_at": at(1),
            },
        ],
    )
    doc = {"active_version": None, "created_at": at(2), "updated_at": at(3)}
    conn.execute(
        legacy.documents.insert(),
        [
            {
                **doc,
                "id": "d1",
                "collection": "alpha",
                "key": "a.txt",
                "filename": "a.txt",
                "meta": {},
                "active_version": 2,
                "latest_version": 2,
            },
            {
                **doc,
                "id": "d2",
                "collection": "beta",
                "key": "r-1",
                "filename": "r-1",
                "meta": {"year": 2024},
                "latest_version": 1,
            },
        ],
    )
    version = {
        "size_bytes": 10,
        "kind": "txt",
        "record_index": None,
        "chunk_count": 0,
        "error": None,
        "model_id": None,
        "created_at": at(4),
        "indexed_at": None,
    }
    conn.execute(
        legacy.versions.insert(),
        [
            {
                **version,
                "document_id": "d1",
                "version": 1,
                "status": "retired",
                "sha256": "1" * 64,
                "filename": "a.txt",
                "blob": "1" * 64,
                "chunk_count": 3,
                "job_id": "ing-1",
                "model_id": "m",
                "indexed_at": at(5),
            },
            {
                **version,
                "document_id": "d1",
                "version": 2,
                "status": "active",
                "sha256": "2" * 64,
                "filename": "a.txt",
                "blob": "2" * 64,
                "chunk_count": 5,
                "job_id": "ing-2",
                "model_id": "m",
                "indexed_at": at(6),
                "size_bytes": 5_000_000_000,
            },
            {
                **version,
                "document_id": "d2",
                "version": 1,
                "status": "failed",
                "sha256": "3" * 64,
                "filename": "r-1",
                "blob": "4" * 64,
                "record_index": 0,
                "job_id": "imp-1",
                "error": "no text",
            },
        ],
    )
    job = {"done": 0, "total": 0, "attempts": 1, "error": None, "created_at": at(4), "finished_at": None}
    conn.execute(
        legacy.jobs.insert(),
        [
            {
                **job,
                "id": "ing-2",
                "kind": "ingest",
                "collection": "alpha",
                "status": "succeeded",
                "stage": "done",
                "done": 5,
                "total": 5,
                "started_at": at(5),
                "finished_at": at(6),
            },
            {
                **job,
                "id": "imp-1",
                "kind": "import",
                "collection": "beta",
                "status": "running",
                "stage": "parsing",
                "attempts": 2,
                "error": "attempt 1 failed, retrying",
                "started_at": at(7),
            },
        ],
    )
    answer = {
        "conversation_id": None,
        "standalone_question": "q",
        "filters": None,
        "abstained": False,
        "abstain_reason": None,
        "citations": [],
        "contexts": [],
        "prompt_id": "grounded_answer",
        "prompt_version": "v1",
        "generator": "extractive",
        "model": "extractive",
        "usage": {},
        "timings_ms": {},
        "removed_citations": 0,
        "evidence": None,
    }
    conn.execute(
        legacy.answers.insert(),
        [
            {
                **answer,
                "id": "a1",
                "question": "Who?",
                "answer": "Ana [1].",
                "collections": ["alpha"],
                "citations": [{"n": 1, "document_id": "d1", "filename": "a.txt"}],
                "contexts": [{"n": 1, "chunk_id": "c1", "text": "Ana did it."}],
                "evidence": 0.91,
                "usage": {"prompt_tokens": 10, "completion_tokens": 3},
                "timings_ms": {"total": 12.5},
                "created_at": at(10),
            },
            {
                **answer,
                "id": "a2",
                "question": "Both?",
                "answer": "Yes.",
                "collections": ["alpha", "beta"],
                "filters": {"year": 2024},
                "conversation_id": "conv-1",
                "generator": "llm",
                "model": "gemma",
                "removed_citations": 1,
                "created_at": at(11),
            },
            {
                **answer,
                "id": "a3",
                "question": "Beta?",
                "answer": "",
                "collections": ["beta", "beta"],
                "abstained": True,
                "abstain_reason": "weak evidence",
                "created_at": at(12),
            },
        ],
    )
    conn.execute(
        legacy.turns.insert(),
        [
            {
                "conversation_id": "conv-1",
                "turn": 1,
                "role": "user",
                "content": "Both?",
                "answer_id": None,
                "created_at": at(11),
            },
            {
                "conversation_id": "conv-1",
                "turn": 2,
                "role": "assistant",
                "content": "Yes.",
                "answer_id": "a2",
                "created_at": at(11),
            },
        ],
    )
    score = {
        "reference": None,
        "scorer": None,
        "scorer_version": None,
        "faithfulness": None,
        "context_precision": None,
        "context_recall": None,
        "result": None,
        "error": None,
        "scored_at": None,
    }
    conn.execute(
        legacy.scores.insert(),
        [
            {
                **score,
                "answer_id": "a1",
                "status": "done",
                "requests": 2,
                "reference": "Ana.",
                "scorer": "offline",
                "scorer_version": "3",
                "faithfulness": 1.0,
                "context_precision": 0.5,
                "context_recall": 0.25,
                "result": {"faithfulness": {"value": 1.0}, "claims": [{"claim": "Ana did it", "supported": True}]},
                "requested_at": at(10),
                "scored_at": at(13),
            },
            {**score, "answer_id": "a2", "status": "pending", "requests": 1, "requested_at": at(11)},
            {
                **score,
                "answer_id": "a3",
                "status": "done",
                "requests": 1,
                "error": "gave up after 3 attempts",
                "requested_at": at(12),
                "scored_at": at(14),
            },
        ],
    )
    conn.execute(
        legacy.feedback.insert(),
        [
            {"answer_id": "a1", "rating": "up", "comment": None, "created_at": at(15)},
            {"answer_id": "a1", "rating": "down", "comment": "=cmd|' /C calc'!A0", "created_at": at(16)},
        ],
    )


def snapshot(conn: sa.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the old schema, read through the old table definitions."""
    out = {}
    for table in legacy.metadata.sorted_tables:
        rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns))
        out[table.name] = [dict(r._mapping) for r in rows]
    return out


def link_rows(conn: sa.Connection) -> set[tuple[str, str]]:
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

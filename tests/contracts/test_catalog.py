"""The catalog behaves the same on SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import os
import uuid

import pytest

from rag.catalog import Catalog, NewVersion, metadata
from rag.errors import Conflict, NotFound
from rag.types import JobStatus, VersionStatus

PG_URL = os.environ.get("RAG_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
async def catalog(request, tmp_path):
    if request.param == "sqlite":
        cat = Catalog(f"sqlite+aiosqlite:///{tmp_path / 'cat.db'}")
    else:
        cat = Catalog(PG_URL)
        async with cat._engine.begin() as conn:  # a clean slate: tests share the server's database
            await conn.run_sync(metadata.drop_all)
    await cat.create_schema()
    yield cat
    if request.param == "postgresql":
        async with cat._engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
    await cat.close()


def version(key: str, content: str) -> NewVersion:
    sha = uuid.uuid5(uuid.NAMESPACE_URL, content).hex * 2
    return NewVersion(key=key, filename=key, sha256=sha, size_bytes=len(content), kind="txt", blob=sha, metadata={})


async def test_versions_switch_and_rollback(catalog):
    await catalog.create_collection("c", "", {})
    with pytest.raises(Conflict):
        await catalog.create_collection("c", "", {})
    first, needs_job = await catalog.register_upload("c", version("a.txt", "one"))
    assert needs_job and first.version == 1
    same, needs_job = await catalog.register_upload("c", version("a.txt", "one"))
    assert not needs_job and same.status == "unchanged" and same.job_id == first.job_id
    second, _ = await catalog.register_upload("c", version("a.txt", "two"))
    assert second.version == 2 and second.job_id != first.job_id

    await catalog.activate(first.job_id, [(first.document_id, 1, 3)], "m")
    await catalog.job_finished(first.job_id, JobStatus.succeeded)
    acts = await catalog.activate(second.job_id, [(second.document_id, 2, 5)], "m")
    assert [(a.version, a.previous) for a in acts] == [(2, 1)]
    doc = await catalog.get_document(first.document_id)
    assert doc.active_version == 2 and doc.chunk_count == 5
    assert [(v.version, v.status) for v in doc.versions] == [(1, VersionStatus.retired), (2, VersionStatus.active)]

    assert await catalog.rollback_target(first.document_id) == (2, 1)
    await catalog.switch_active(first.document_id, 2, 1)
    assert (await catalog.get_document(first.document_id)).active_version == 1
    assert (await catalog.active_versions([first.document_id])) == {first.document_id: 1}
    info = await catalog.get_collection("c")
    assert (info.document_count, info.chunk_count) == (1, 3)

    assert await catalog.unfinished_jobs() == [second.job_id]
    blobs = await catalog.delete_document(first.document_id)
    assert len(blobs) == 2
    with pytest.raises(NotFound):
        await catalog.get_document(first.document_id)


async def test_import_registers_one_job_and_detects_unchanged(catalog):
    await catalog.create_collection("imp", "", {})
    items = [
        NewVersion(
            key=f"d{i}",
            filename=f"d{i}",
            sha256=f"{i:064x}",
            size_bytes=1,
            kind="text",
            blob="f" * 64,
            metadata={"i": i},
            record_index=i,
        )
        for i in range(3)
    ]
    result, needs_job = await catalog.register_import("imp", items, "a" * 64)
    assert needs_job and result.new_versions == 3
    assert len(await catalog.job_items(result.job_id)) == 3
    again, needs_job = await catalog.register_import("imp", items, "a" * 64)
    assert not needs_job and again.unchanged == 3
    await catalog.job_finished(result.job_id, JobStatus.failed, "boom")
    items_after = await catalog.job_items(result.job_id)
    assert all(i.status == VersionStatus.failed for i in items_after)
    with pytest.raises(NotFound):
        await catalog.register_import("missing", items, "b" * 64)

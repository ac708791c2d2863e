"""The catalog behaves the same on SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import uuid

import pytest

from kernel.errors import Conflict, NotFound
from kernel.records import IndexedVersion, NewCollection, NewVersion
from kernel.types import JobStage, JobStatus, VersionStatus
from rag.storage.catalog import Catalog
from tests.support.databases import KINDS, fresh_database


@pytest.fixture(params=KINDS)
async def catalog(request, tmp_path):
    async with fresh_database(request.param, tmp_path) as url:
        cat = Catalog(url)
        await cat.prepare_schema()
        yield cat
        await cat.close()


def version(key: str, content: str) -> NewVersion:
    sha = uuid.uuid5(uuid.NAMESPACE_URL, content).hex * 2
    return NewVersion(key=key, filename=key, sha256=sha, size_bytes=len(content), kind="txt", blob=sha, metadata={})


async def test_versions_switch_and_rollback(catalog):
    await catalog.collections.create(NewCollection("c"))
    with pytest.raises(Conflict):
        await catalog.collections.create(NewCollection("c"))
    first = await catalog.versions.register_upload("c", version("a.txt", "one"))
    assert first.needs_job and first.version == 1
    same = await catalog.versions.register_upload("c", version("a.txt", "one"))
    assert not same.needs_job and same.status == "unchanged" and same.job_id == first.job_id
    second = await catalog.versions.register_upload("c", version("a.txt", "two"))
    assert second.version == 2 and second.job_id != first.job_id

    await catalog.versions.activate(first.job_id, [IndexedVersion(first.document_id, 1, 3)], "m")
    await catalog.jobs.finished(first.job_id, JobStatus.succeeded)
    acts = await catalog.versions.activate(second.job_id, [IndexedVersion(second.document_id, 2, 5)], "m")
    assert [(a.version, a.previous) for a in acts] == [(2, 1)]
    doc = await catalog.documents.get(first.document_id)
    assert doc.active_version == 2 and doc.chunk_count == 5
    assert [(v.version, v.status) for v in doc.versions] == [(1, VersionStatus.retired), (2, VersionStatus.active)]

    assert await catalog.versions.rollback_target(first.document_id) == (2, 1)
    await catalog.versions.switch_active(first.document_id, 2, 1)
    assert (await catalog.documents.get(first.document_id)).active_version == 1
    assert (await catalog.documents.active_versions([first.document_id])) == {first.document_id: 1}
    info = await catalog.collections.get("c")
    assert (info.document_count, info.chunk_count) == (1, 3)
    with pytest.raises(Conflict, match="no earlier version"):
        await catalog.versions.rollback_target(first.document_id)

    assert await catalog.jobs.unfinished() == [second.job_id]
    blobs = await catalog.documents.delete(first.document_id)
    assert len(blobs) == 2
    with pytest.raises(NotFound):
        await catalog.documents.get(first.document_id)


async def test_import_registers_one_job_and_detects_unchanged(catalog):
    await catalog.collections.create(NewCollection("imp"))
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
    result = await catalog.versions.register_import("imp", items, "a" * 64)
    assert result.needs_job and result.new_versions == 3
    assert len(await catalog.jobs.items(result.job_id)) == 3
    again = await catalog.versions.register_import("imp", items, "a" * 64)
    assert not again.needs_job and again.unchanged == 3
    await catalog.jobs.finished(result.job_id, JobStatus.failed, "boom")
    items_after = await catalog.jobs.items(result.job_id)
    assert all(i.status == VersionStatus.failed for i in items_after)
    with pytest.raises(NotFound):
        await catalog.versions.register_import("missing", items, "b" * 64)


async def test_deleting_a_document_cancels_the_jobs_it_leaves_empty(catalog):
    await catalog.collections.create(NewCollection("del"))
    upload = await catalog.versions.register_upload("del", version("a.txt", "one"))
    items = [version(f"r{i}", f"record {i}") for i in range(2)]
    items = [NewVersion(**{**vars(item), "record_index": i}) for i, item in enumerate(items)]
    imported = await catalog.versions.register_import("del", items, "c" * 64)
    assert await catalog.versions.count_of_job(imported.job_id) == 2
    assert await catalog.jobs.started(upload.job_id) == 1

    await catalog.documents.delete(upload.document_id)
    job = await catalog.jobs.get(upload.job_id)
    assert (job.status, job.error) == (JobStatus.cancelled, "cancelled: a.txt was deleted before it was indexed")
    # An ended job keeps its end: the job that was running cannot start again, move on or finish otherwise.
    assert await catalog.jobs.started(upload.job_id) is None
    await catalog.jobs.progress(upload.job_id, JobStage.embedding, done=5, total=9)
    await catalog.jobs.finished(upload.job_id, JobStatus.succeeded)
    job = await catalog.jobs.get(upload.job_id)
    assert (job.status, job.stage, job.done) == (JobStatus.cancelled, JobStage.done, 0)
    assert await catalog.versions.count_of_job(upload.job_id) == 0

    # An import loses one document and goes on with the other.
    first = (await catalog.jobs.items(imported.job_id))[0]
    await catalog.documents.delete(first.document_id)
    assert (await catalog.jobs.get(imported.job_id)).status == JobStatus.queued
    left = await catalog.versions.of_job(imported.job_id)
    assert len(left) == 1 and (first.document_id, first.version) not in left
    assert await catalog.jobs.unfinished() == [imported.job_id]

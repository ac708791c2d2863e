"""The sentence-vector store on both databases: two jobs storing the same sentences at once both succeed, and the
store keeps one vector per (model, digest). A vector goes once no kept version refers to it: when a document, a
collection or a purged version goes, or a reindex leaves (or abandons) a generation; vectors another document shares
stay."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from kernel.records import IndexedVersion, NewCollection
from kernel.types import JobStatus
from rag.storage.schema import sentence_refs, sentence_vectors
from rag.storage.sentence_vectors import SentenceVectorStore
from tests.contracts.test_catalog import (
    catalog,  # noqa: F401  (the fixture, on both databases)
    version,
)

MODEL = "test-model"


async def test_concurrent_puts_of_the_same_sentences_both_succeed(catalog):  # noqa: F811
    store = SentenceVectorStore(catalog.engine)
    vectors = {f"{i:064x}": [float(i), 1.0, 2.0] for i in range(400)}
    # Several writers at once, each reading what is stored and inserting the rest: on PostgreSQL the later inserts
    # meet the earlier ones' rows (a unique violation) and must read again rather than fail the job.
    await asyncio.gather(*(store.put(MODEL, vectors) for _ in range(4)))
    async with catalog.engine.connect() as conn:
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(sentence_vectors))).scalar_one()
    assert stored == len(vectors)
    got = await store.get(MODEL, list(vectors))
    assert got["0" * 61 + "0ff"] == [255.0, 1.0, 2.0]
    assert await store.get("another-model", list(vectors)) == {}


async def _stored(catalog) -> set[str]:  # noqa: F811
    async with catalog.engine.connect() as conn:
        return set((await conn.execute(sa.select(sentence_vectors.c.text_sha256))).scalars())


def _digest(name: str) -> str:
    return name.encode().hex().ljust(64, "0")


async def _indexed(catalog, store, collection: str, key: str, content: str, sentences: list[str]) -> tuple[str, int]:  # noqa: F811
    """A version of `key` registered, with references to (and vectors of) `sentences` in generation 0."""
    reg = await catalog.versions.register_upload(collection, version(key, content))
    digests = [_digest(s) for s in sentences]
    await store.hold(MODEL, 0, {(reg.document_id, reg.version): digests})
    await store.put(MODEL, {d: [1.0, 2.0] for d in digests})
    await catalog.versions.activate(reg.job_id, [IndexedVersion(reg.document_id, reg.version, 1)], MODEL)
    await catalog.jobs.finished(reg.job_id, JobStatus.succeeded)
    return reg.document_id, reg.version


async def test_a_deleted_documents_vectors_go_and_shared_ones_stay(catalog):  # noqa: F811
    store = SentenceVectorStore(catalog.engine)
    await catalog.collections.create(NewCollection("c"))
    await catalog.collections.create(NewCollection("other"))
    a, _ = await _indexed(catalog, store, "c", "a.txt", "a", ["only-a", "shared"])
    b, _ = await _indexed(catalog, store, "c", "b.txt", "b", ["only-b", "shared"])
    await _indexed(catalog, store, "other", "o.txt", "o", ["only-o", "only-b"])
    await store.hold(MODEL, 0, {(a, 1): [_digest("only-a")]})  # a second hold of the same reference is a no-op
    assert await _stored(catalog) == {_digest(s) for s in ("only-a", "only-b", "only-o", "shared")}

    await catalog.documents.delete(a)
    assert await _stored(catalog) == {_digest(s) for s in ("only-b", "only-o", "shared")}
    # A reference to a deleted version is not stored (a job that ran while its document was deleted).
    await store.hold(MODEL, 0, {(a, 1): [_digest("shared")]})
    await catalog.documents.delete(b)
    assert await _stored(catalog) == {_digest(s) for s in ("only-b", "only-o")}  # o still has only-b
    await catalog.collections.delete("other")
    assert await _stored(catalog) == set()
    async with catalog.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(sentence_refs))).scalar_one() == 0


async def test_deleting_a_collection_keeps_vectors_another_collection_shares(catalog):  # noqa: F811
    store = SentenceVectorStore(catalog.engine)
    await catalog.collections.create(NewCollection("c"))
    await catalog.collections.create(NewCollection("d"))
    await _indexed(catalog, store, "c", "a.txt", "a", ["only-c", "shared"])
    await _indexed(catalog, store, "c", "b.txt", "b", ["only-c", "also-c"])
    await _indexed(catalog, store, "d", "a.txt", "da", ["shared", "only-d"])
    await catalog.collections.delete("c")
    assert await _stored(catalog) == {_digest("shared"), _digest("only-d")}


async def test_purged_versions_release_their_vectors_and_a_reindex_the_old_generations(catalog):  # noqa: F811
    store = SentenceVectorStore(catalog.engine)
    await catalog.collections.create(NewCollection("c"))
    doc, _ = await _indexed(catalog, store, "c", "a.txt", "one", ["v1", "kept"])
    await _indexed(catalog, store, "c", "a.txt", "two", ["v2", "kept"])
    await catalog.versions.mark_purged(doc, [1])
    assert await _stored(catalog) == {_digest("v2"), _digest("kept")}
    await store.hold(MODEL, 0, {(doc, 1): [_digest("v1")]})  # a purged version holds nothing
    assert await _stored(catalog) == {_digest("v2"), _digest("kept")}

    # A reindex: generation 1 has other sentences; the switch releases generation 0's, an abort its own.
    ticket = await catalog.generations.begin("c", {}, force=False)
    await store.hold(MODEL, ticket.target, {(doc, 2): [_digest("g1"), _digest("kept")]})
    await store.put(MODEL, {_digest("g1"): [0.0]})
    await catalog.generations.switch(ticket, [IndexedVersion(doc, 2, 1)], MODEL)
    assert await _stored(catalog) == {_digest("g1"), _digest("kept")}
    again = await catalog.generations.begin("c", {}, force=False)
    await store.hold(MODEL, again.target, {(doc, 2): [_digest("g2")]})
    await store.put(MODEL, {_digest("g2"): [0.0]})
    await catalog.generations.abort(again)
    assert await _stored(catalog) == {_digest("g1"), _digest("kept")}

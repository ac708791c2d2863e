"""The sentence-vector store on both databases: two jobs storing the same sentences at once both succeed, and the
store keeps one vector per (model, digest)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from rag.storage.schema import sentence_vectors
from rag.storage.sentence_vectors import SentenceVectorStore
from tests.contracts.test_catalog import catalog  # noqa: F401  (the fixture, on both databases)

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

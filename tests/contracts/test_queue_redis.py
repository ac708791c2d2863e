"""The queue against a real Redis server (the production configuration) and the embedded Valkey."""

from __future__ import annotations

import os
import uuid

import pytest

from kernel.errors import TransientError
from rag.queue import JobQueue
from rag.valkey import EmbeddedValkey

REDIS_URL = os.environ.get("RAG_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["redis", "valkey"])
async def queue_url(request):
    if request.param == "redis":
        yield REDIS_URL
        return
    valkey = EmbeddedValkey()
    url = await valkey.start()
    yield url
    await valkey.stop()


async def test_same_job_id_is_enqueued_once(queue_url):
    queue = await JobQueue.connect(queue_url, f"test:{uuid.uuid4().hex}")
    try:
        job_id = f"job-{uuid.uuid4().hex}"
        assert await queue.enqueue_ingest(job_id) is True
        assert await queue.enqueue_ingest(job_id) is False
        await queue.ping()
    finally:
        await queue.pool.delete(f"arq:job:{job_id}")
        await queue.close()


async def test_unreachable_queue_is_a_transient_error():
    with pytest.raises(TransientError, match="unavailable"):
        await JobQueue.connect("redis://127.0.0.1:1/0", "q")


async def test_the_write_guard_holds_a_collection_across_clients(queue_url):
    from rag.locks import CollectionLocks

    first, second = await JobQueue.connect(queue_url, "q"), await JobQueue.connect(queue_url, "q")
    name = f"guarded-{uuid.uuid4().hex[:8]}"
    # Two connections stand for two processes (the API deleting, a worker writing).
    mine, theirs = CollectionLocks(first.pool), CollectionLocks(second.pool, wait_seconds=0.2)
    try:
        async with mine.hold(name):
            with pytest.raises(TransientError, match="busy"):
                async with theirs.hold(name):
                    pass
            async with theirs.hold(name + "-other"):
                pass  # one collection's guard does not hold another
        async with theirs.hold(name):
            pass
    finally:
        await first.close()
        await second.close()

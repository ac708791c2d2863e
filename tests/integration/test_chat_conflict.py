"""A chat message refused with 409 because another message of its conversation took the turn leaves nothing behind.

The answer used to be saved (with its owed score) in one transaction and its two turns in another: when the turns
lost the race, the client got a 409 and the database kept an answer nobody received, which was then scored and
counted in the reports. Now the answer, its owed score and its turns are one transaction.

The race is made deterministic on PostgreSQL: the test holds an open transaction that inserts the conversation's
next turn; the service, not seeing that uncommitted row, inserts the same (conversation, turn) and waits on the
primary key for the held transaction; the test commits it once PostgreSQL shows the service waiting, and the
service's insert fails. (On SQLite the race cannot happen at all: the save takes the database's only write lock
with its first insert, before it reads the last turn, so there is no SQLite variant.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from kernel.settings import load_settings
from rag.api.app import create_app
from tests.support.databases import fresh_database


@pytest.fixture
async def pg_service(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncEngine]]:
    """The service on its own PostgreSQL database, and an engine of the test's own on that database."""
    async with fresh_database("postgresql", tmp_path) as url:
        settings = load_settings(data_dir=tmp_path / "data", database={"url": url})
        # No worker: the owed score must stay visible as owed, not be scored away while the test looks.
        app = create_app(settings, embedded_worker=False)
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with LifespanManager(app, startup_timeout=300, shutdown_timeout=60) as manager:
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://rag.test", timeout=120) as client:
                    yield client, engine
        finally:
            await engine.dispose()


async def waiting_on(engine: AsyncEngine, pid: int) -> bool:
    """Whether some other session waits for a lock that the session `pid` holds."""
    async with engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
        return bool((await conn.execute(query, {"pid": pid})).scalar())


async def test_a_chat_message_refused_with_409_leaves_no_answer_score_or_turn(pg_service):
    client, engine = pg_service
    assert (await client.post("/v1/collections", json={"name": "kb"})).status_code == 201
    first = await client.post("/v1/chat", json={"message": "What does the bridge look like?", "collections": ["kb"]})
    assert first.status_code == 200, first.text
    conversation = first.json()["conversation_id"]

    async with engine.connect() as held:
        transaction = await held.begin()
        # Another message of the conversation takes turn 3 and has not committed yet.
        await held.execute(
            sa.text(
                "INSERT INTO conversation_turns (conversation_id, turn, role, content, created_at) "
                "VALUES (:c, 3, 'user', 'the other message', :t)"
            ),
            {"c": conversation, "t": datetime.now(UTC)},
        )
        held_pid = (await held.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        body = {"message": "When did it open?", "collections": ["kb"], "conversation_id": conversation}
        refused = asyncio.create_task(client.post("/v1/chat", json=body))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120  # guards against a hang only
        while not await waiting_on(engine, held_pid):
            assert not refused.done(), refused.result().text  # it must wait for the turn, not finish without it
            assert loop.time() < deadline, "the service never waited for the held turn"
            await asyncio.sleep(0.05)
        await transaction.commit()
    resp = await refused
    assert resp.status_code == 409, resp.text
    assert "another message of this conversation" in resp.json()["error"]

    async with engine.connect() as conn:
        answers = (
            await conn.execute(sa.text("SELECT id FROM answers WHERE conversation_id = :c"), {"c": conversation})
        ).scalars()
        owed = (
            await conn.execute(
                sa.text(
                    "SELECT s.answer_id FROM answer_scores s JOIN answers a ON a.id = s.answer_id "
                    "WHERE a.conversation_id = :c"
                ),
                {"c": conversation},
            )
        ).scalars()
        turns = (
            await conn.execute(
                sa.text(
                    "SELECT turn, role, content, answer_id FROM conversation_turns WHERE conversation_id = :c "
                    "ORDER BY turn"
                ),
                {"c": conversation},
            )
        ).all()
        turns = [tuple(t) for t in turns]
        orphans = (
            await conn.execute(sa.text("SELECT count(*) FROM answers WHERE question = :q"), {"q": body["message"]})
        ).scalar_one()
    first_id = first.json()["answer_id"]
    kept = {"answers": list(answers), "refused answers": orphans, "owed scores": list(owed), "turns": turns}
    # Only the first message's answer, its owed score and its turns, and the other message's turn.
    assert kept == {
        "answers": [first_id],
        "refused answers": 0,
        "owed scores": [first_id],
        "turns": [
            (1, "user", "What does the bridge look like?", None),
            (2, "assistant", first.json()["answer"], first_id),
            (3, "user", "the other message", None),
        ],
    }

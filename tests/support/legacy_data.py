"""Rows of every kind the release before migrations wrote, in its schema (`legacy_schema`), and a way to read
them all back: the migration tests fill a database with these, upgrade it and compare."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tests.support import legacy_schema as legacy

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


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
    answer: dict[str, object] = {
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

"""The schema of the last release before migrations (commit 0f78dc6), frozen: what `metadata.create_all` made.

Every database deployed before Alembic has exactly these tables and no `alembic_version`. A copy on purpose, not an
import: the storage package's tables move on with each migration, and this must not.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

collections = sa.Table(
    "collections",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("meta", sa.JSON, nullable=False, default=dict),
    sa.Column("filterable", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("collection", sa.String(64), sa.ForeignKey("collections.name", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("filename", sa.String(512), nullable=False),
    sa.Column("meta", sa.JSON, nullable=False, default=dict),
    sa.Column("active_version", sa.Integer, nullable=True),
    sa.Column("latest_version", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("collection", "key"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("document_id", sa.String(36), sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("filename", sa.String(512), nullable=False),
    sa.Column("blob", sa.String(64), nullable=False),
    sa.Column("record_index", sa.Integer, nullable=True),
    sa.Column("chunk_count", sa.Integer, nullable=False, default=0),
    sa.Column("job_id", sa.String(80), nullable=False, index=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("model_id", sa.String(256), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("collection", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("done", sa.Integer, nullable=False, default=0),
    sa.Column("total", sa.Integer, nullable=False, default=0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)


answers = sa.Table(
    "answers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("conversation_id", sa.String(36), nullable=True, index=True),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("standalone_question", sa.Text, nullable=False),
    sa.Column("collections", sa.JSON, nullable=False),
    sa.Column("filters", sa.JSON, nullable=True),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("abstained", sa.Boolean, nullable=False),
    sa.Column("abstain_reason", sa.Text, nullable=True),
    sa.Column("citations", sa.JSON, nullable=False),
    sa.Column("contexts", sa.JSON, nullable=False),
    sa.Column("prompt_id", sa.String(64), nullable=False),
    sa.Column("prompt_version", sa.String(64), nullable=False),
    sa.Column("generator", sa.String(128), nullable=False, index=True),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("usage", sa.JSON, nullable=False),
    sa.Column("timings_ms", sa.JSON, nullable=False),
    sa.Column("removed_citations", sa.Integer, nullable=False, default=0),
    sa.Column("evidence", sa.Float, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

turns = sa.Table(
    "conversation_turns",
    metadata,
    sa.Column("conversation_id", sa.String(36), primary_key=True),
    sa.Column("turn", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("answer_id", sa.String(36), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


scores = sa.Table(
    "answer_scores",
    metadata,
    sa.Column("answer_id", sa.String(36), primary_key=True),
    # pending: a score_answer job is owed; done: scored (metrics may still be null, with their reasons).
    sa.Column("status", sa.String(16), nullable=False, index=True),
    # Bumped by every request: a job only marks the score done if no newer request came in while it ran.
    sa.Column("requests", sa.Integer, nullable=False, default=1),
    sa.Column("reference", sa.Text, nullable=True),
    sa.Column("scorer", sa.String(64), nullable=True),
    sa.Column("scorer_version", sa.String(64), nullable=True),
    sa.Column("faithfulness", sa.Float, nullable=True),
    sa.Column("context_precision", sa.Float, nullable=True),
    sa.Column("context_recall", sa.Float, nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
)

feedback = sa.Table(
    "answer_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("answer_id", sa.String(36), nullable=False, index=True),
    sa.Column("rating", sa.String(8), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

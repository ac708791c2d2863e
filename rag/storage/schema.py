"""The tables, as the newest migration leaves them. Change them only together with a new migration.

`tests/contracts/test_migrations.py` checks that upgrading to the head revision makes exactly these tables.
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
    # kernel.types.CollectionPolicy as JSON; null or missing keys: the defaults.
    sa.Column("policy", sa.JSON, nullable=True),
    # The generation of its chunks queries see; a reindex builds generation + 1 beside it, then switches this.
    sa.Column("generation", sa.Integer, nullable=False, default=0, server_default="0"),
    # The running reindex ({"target", "started_at", "chunking"}), null when none: one at a time per collection.
    sa.Column("reindex", sa.JSON, nullable=True),
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
    # Kept as written for the answer's lineage; filters go through answer_collections.
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
    # The API key that asked (null in single-user mode): a reader sees only its own answers and conversations.
    sa.Column("key_id", sa.String(16), nullable=True, index=True),
    # The request that made the answer and its OpenTelemetry trace: logs, traces and the answer meet on these.
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("trace_id", sa.String(32), nullable=True),
    # The answer cache (migration 0007): the key under which this answer may be served again, and on an answer
    # served from cache, the original it copies.
    sa.Column("cache_key", sa.String(64), nullable=True, index=True),
    sa.Column("cached_from", sa.String(36), nullable=True),
    # The variant of the collection's experiment that answered (RAG_VARIANTS); null outside one.
    sa.Column("variant", sa.String(32), nullable=True),
    # Set on a replay (POST /v1/answers/{id}/replay): the answer it replays. Reports leave replays out.
    sa.Column("replay_of", sa.String(36), nullable=True, index=True),
    # "budget:<budget id>" on an answer made by the extractive generator because an LLM answer was over budget.
    sa.Column("fallback", sa.String(160), nullable=True),
    # The model gateway's attempts for this answer (migration 0011): endpoint, model, outcome, duration_ms each.
    sa.Column("attempts", sa.JSON, nullable=True),
)

# One row per collection an answer drew on: reports filter by collection in SQL, before their row limit.
answer_collections = sa.Table(
    "answer_collections",
    metadata,
    sa.Column("answer_id", sa.String(36), sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("collection", sa.String(64), primary_key=True),
    sa.Index("ix_answer_collections_collection", "collection", "answer_id"),
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
    # The scoring batch that holds an owed score, until when (renewed while it runs): one batch per answer.
    sa.Column("claimed_by", sa.String(128), nullable=True),
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
)

# Tokens a model spent for an answer beside generating it (migration 0014), `role` saying what for: "judge" (ragas
# scoring it; a rescore adds a row) or "rewrite" (an LLM turning a chat follow-up into the standalone question). Cost
# and budgets add them to the answer's own tokens, charged to its key and collections.
model_usage = sa.Table(
    "model_usage",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("answer_id", sa.String(36), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

feedback = sa.Table(
    "answer_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("answer_id", sa.String(36), nullable=False, index=True),
    sa.Column("rating", sa.String(8), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_id", sa.String(16), nullable=True),
)

# Only a hash of each key's secret is kept: the key is shown once, at creation.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, default=""),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("collections", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# Append-only, hash-chained: each entry's hash covers its fields and the previous entry's hash.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    # ISO 8601 text, not a timestamp column: the hash must see exactly what was written, on every database.
    sa.Column("at", sa.String(40), nullable=False, index=True),
    sa.Column("key_id", sa.String(16), nullable=True, index=True),
    sa.Column("role", sa.String(16), nullable=True),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("collection", sa.String(64), nullable=True, index=True),
    sa.Column("document_id", sa.String(36), nullable=True),
    sa.Column("answer_id", sa.String(36), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("question", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# The chain's head, updated with every entry: deleting the newest entries is caught too, and the UPDATE that
# starts every append serialises appenders on SQLite and PostgreSQL alike.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Token (or cost) budgets of a key or a collection per day or month, set by admins (PUT /v1/budgets/...).
budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("target", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("tokens", sa.BigInteger, nullable=True),
    sa.Column("cost", sa.Float, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_id", sa.String(16), nullable=True),  # the admin key that set it (null in single-user mode)
)

# A question's embedding (float32 bytes) and the model that made it: the raw material of query drift (migration 0010).
question_vectors = sa.Table(
    "question_vectors",
    metadata,
    sa.Column("answer_id", sa.String(36), sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("model_id", sa.String(256), nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)

# Drift alerts, once per day, collection and indicator; delivered_at: the webhook took it.
ops_alerts = sa.Table(
    "ops_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.String(10), nullable=False, index=True),
    sa.Column("collection", sa.String(64), nullable=False),
    sa.Column("indicator", sa.String(48), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("above", sa.Boolean, nullable=False),
    sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("delivery_error", sa.Text, nullable=True),
    sa.UniqueConstraint("day", "collection", "indicator", name="uq_ops_alerts_day_collection_indicator"),
)

AUDIT_GENESIS = "0" * 64

METRIC_COLUMNS = ("faithfulness", "context_precision", "context_recall")

# Vectors of the sentences an extractive answer is chosen from, encoded at ingestion (migration 0013): answering
# reads them instead of encoding up to 24 sentences per question. Keyed by what a vector depends on, the model and
# the sentence's text as it is encoded (sha256), like the embedding cache; float32 bytes, exact on every database.
sentence_vectors = sa.Table(
    "sentence_vectors",
    metadata,
    sa.Column("model_id", sa.String(256), primary_key=True),
    sa.Column("text_sha256", sa.String(64), primary_key=True),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)

# Which kept chunks have which sentence vectors (migration 0015): a row per (document version, generation of the
# collection's chunks, model, sentence digest), written before the vectors are looked up or stored. A vector row is
# shared by every chunk with the same sentence, so it is deleted only once no reference to it is left: when a
# version is purged or deleted, its document or collection deleted, or a reindex switches away from (or abandons) a
# generation, its references go and then the vectors none is left for (rag.storage.sentence_vectors.release).
sentence_refs = sa.Table(
    "sentence_refs",
    metadata,
    sa.Column("document_id", sa.String(36), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("generation", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.String(256), primary_key=True),
    sa.Column("text_sha256", sa.String(64), primary_key=True),
    sa.ForeignKeyConstraint(
        ["document_id", "version"], ["versions.document_id", "versions.version"], ondelete="CASCADE"
    ),
    sa.Index("ix_sentence_refs_vector", "model_id", "text_sha256"),
)

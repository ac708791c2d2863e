"""Names shared by both Qdrant stores: vectors and the payload fields that get an index."""

from __future__ import annotations

DENSE = "dense"
SPARSE = "bm25"

# Payload fields filters use; each gets a payload index in both stores.
KEYWORD_FIELDS = ("collection", "document_id", "job_id", "state", "filename", "kind", "text_sha256", "model_id")
# The digest of a chunk's text: the embedding cache finds vectors to reuse by it (and `model_id`).
TEXT_DIGEST = "text_sha256"
INTEGER_FIELDS = ("version", "chunk_index", "page", "generation")
DATETIME_FIELDS = ("created_at",)
TENANT_FIELD = "collection"

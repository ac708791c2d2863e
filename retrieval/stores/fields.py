"""Names shared by both Qdrant stores: vectors and the payload fields that get an index."""

from __future__ import annotations

DENSE = "dense"
SPARSE = "bm25"

# Payload fields filters use; each gets a payload index in both stores.
KEYWORD_FIELDS = ("collection", "document_id", "job_id", "state", "filename", "kind")
INTEGER_FIELDS = ("version", "chunk_index", "page")
DATETIME_FIELDS = ("created_at",)
TENANT_FIELD = "collection"

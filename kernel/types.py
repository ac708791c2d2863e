"""Typed values that cross module boundaries and the API edge."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

COLLECTION_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    # Its documents (or their collection) were deleted before it finished; nothing of it is kept.
    cancelled = "cancelled"


class JobStage(StrEnum):
    queued = "queued"
    parsing = "parsing"
    chunking = "chunking"
    embedding = "embedding"
    indexing = "indexing"
    done = "done"


class VersionStatus(StrEnum):
    queued = "queued"  # waiting for or inside its ingestion job
    active = "active"  # the one version searches see
    retired = "retired"  # replaced; chunks kept for rollback
    purged = "purged"  # replaced long ago; chunks deleted
    failed = "failed"  # could not be ingested; see `error`


class ChunkState(StrEnum):
    """Lifecycle of a chunk in the vector store (payload field `state`).

    New chunks are written `staged`; they turn `active` just before the catalog switches the document's active
    version and the old ones turn `retired` just after, so a search that filters on `active` and checks the
    catalog's active version never sees half a version or two at once.
    """

    staged = "staged"
    active = "active"
    retired = "retired"


MetadataFieldType = Literal["keyword", "integer", "float", "datetime"]


class CollectionPolicy(BaseModel):
    """How a collection's answers treat injection attempts and personal data."""

    injection: Literal["refuse", "plain_text"] = Field(
        default="refuse",
        description="A question that tries to override the instructions: refused with 422, or answered with the "
        "attempt treated as plain text.",
    )
    flagged_chunks: Literal["exclude", "quote"] = Field(
        default="exclude",
        description="Chunks whose text addresses the model (flagged at ingestion): left out of answers, or quoted "
        "strictly as data.",
    )
    pii: Literal["allow", "redact_answers", "redact_ingest"] = Field(
        default="allow",
        description="Personal data: kept; redacted in answers and exports; or redacted before indexing (the stored "
        "chunk shows the redaction).",
    )
    over_budget: Literal["refuse", "extractive"] = Field(
        default="refuse",
        description="A question whose LLM answer would pass a budget (of the key or a collection): refused with 429, "
        "or answered by the extractive generator, which uses no tokens (marked `fallback: budget`). Every collection "
        "of the question must say extractive.",
    )


class CollectionCreate(BaseModel):
    name: str = Field(pattern=COLLECTION_NAME_PATTERN, description="Lower-case letters, digits, '-' and '_'.")
    description: str = Field(default="", max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    filterable: dict[str, MetadataFieldType] = Field(
        default_factory=dict,
        description='Document metadata fields searches may filter on, with their type, e.g. {"year": "integer"}.',
    )
    policy: CollectionPolicy = Field(default_factory=CollectionPolicy)

    @field_validator("filterable")
    @classmethod
    def _field_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise ValueError(f"metadata field name {name!r} must be letters, digits and '_'")
        return v


class CollectionInfo(BaseModel):
    name: str
    description: str
    metadata: dict[str, Any]
    filterable: dict[str, MetadataFieldType] = Field(default_factory=dict)
    policy: CollectionPolicy = Field(default_factory=CollectionPolicy)
    created_at: datetime
    document_count: int = 0
    chunk_count: int = 0


class VersionInfo(BaseModel):
    version: int
    status: VersionStatus
    sha256: str
    size_bytes: int
    kind: str
    filename: str
    chunk_count: int
    job_id: str
    error: str | None = None
    model_id: str | None = None
    created_at: datetime
    indexed_at: datetime | None = None


class DocumentSummary(BaseModel):
    document_id: str
    collection: str
    key: str
    filename: str
    status: str = Field(description="Status of the latest version; 'deleted' is never shown.")
    active_version: int | None
    latest_version: int
    chunk_count: int = Field(description="Chunks of the active version.")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class DocumentDetail(DocumentSummary):
    versions: list[VersionInfo]


class JobInfo(BaseModel):
    job_id: str
    kind: str
    collection: str
    status: JobStatus
    stage: JobStage
    done: int = Field(description="Chunks embedded so far.")
    total: int = Field(description="Chunks to embed; 0 until chunking is done.")
    attempts: int
    error: str | None = None
    documents: int = Field(description="Document versions this job indexes.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class UploadResult(BaseModel):
    filename: str
    document_id: str
    version: int
    job_id: str
    status: str = Field(description="'queued' (new version) or 'unchanged' (same bytes as the latest version).")


class ImportResult(BaseModel):
    job_id: str | None
    status: str
    records: int
    new_versions: int
    unchanged: int


class ImportRecord(BaseModel):
    """One line of a JSONL import: text that is already extracted."""

    id: str = Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]+$")
    title: str = Field(default="", max_length=10_000)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class ParsedElement(BaseModel):
    text: str
    type: str
    page: int | None = None
    section: str | None = None


class Chunk(BaseModel):
    index: int
    text: str
    tokens: int
    page: int | None = None
    page_end: int | None = None
    section: str | None = None
    element_types: list[str] = Field(default_factory=list)


class SparseVector(BaseModel):
    indices: list[int]
    values: list[float]


class ChunkRecord(BaseModel):
    """A chunk as it is indexed: both vectors and the payload searches filter on."""

    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any]


class ChunkSelector(BaseModel):
    """Which chunks an operation on the vector store touches; every given field must match."""

    collection: str | None = None
    document_id: str | None = None
    version: int | None = None
    job_id: str | None = None
    state: ChunkState | None = None
    # A collection's generation (`rag reindex`); chunks indexed before generations existed carry none.
    generation: int | None = None


class ErrorBody(BaseModel):
    error: str
    detail: Any | None = None


class Context(BaseModel):
    """A retrieved chunk as a generator sees it; `n` is its citation marker [n]."""

    n: int
    chunk_id: str
    document_id: str
    version: int
    filename: str
    page: int | None = None
    section: str | None = None
    text: str
    score: float
    flags: list[str] = Field(
        default_factory=list,
        description='"injection": the chunk addresses the model; a prompt quotes it as untrusted data.',
    )


class PromptRef(BaseModel):
    id: str
    version: str = Field(description="Content hash of the template: any edit is a new version.")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = Field(
        default=False,
        description="The endpoint reported no usage (a stream without a usage chunk): the counts are estimated from "
        "the text sent and received. Left out when false.",
    )

    @model_serializer(mode="wrap")
    def _estimated_only_when_true(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Usage as endpoints report it, which answers stored before estimates existed also hold.
        data: dict[str, Any] = handler(self)
        if not self.estimated:
            data.pop("estimated", None)
        return data


AttemptOutcome = Literal["ok", "error", "timeout", "5xx", "breaker_open", "budget"]


class Attempt(BaseModel):
    """One endpoint the model gateway tried for an answer (rag/generation/gateway.py), in the order tried."""

    endpoint: str = Field(description='Its name in RAG_GATEWAY__ENDPOINTS; "extractive" for the last resort.')
    model: str
    outcome: AttemptOutcome = Field(
        description="ok; error (refused, unreachable, unusable answer); timeout; 5xx; breaker_open (not called: "
        "it kept failing); budget (not called: over a budget)."
    )
    duration_ms: float


class GeneratedAnswer(BaseModel):
    text: str = Field(description="The answer with [n] citation markers that refer to Context.n.")
    usage: Usage = Field(default_factory=Usage)
    model: str
    evidence: float | None = Field(
        default=None, description="How strongly the contexts support the answer (extractive: best sentence score)."
    )
    evidence_method: Literal["checker", "similarity"] | None = Field(
        default=None, description="checker: evidence is a probability that the answer answers; similarity: a score."
    )
    attempts: list[Attempt] = Field(default_factory=list, description="The gateway's attempts; empty otherwise.")


class Hit(BaseModel):
    """A retrieved chunk with the score of every stage that saw it (None: that stage did not rank it)."""

    chunk_id: str
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    sparse_score: float | None = None
    sparse_rank: int | None = None
    rerank_score: float | None = None
    payload: dict[str, Any]

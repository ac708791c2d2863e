"""What the storage package takes and returns: plain frozen records, never rows, dicts or HTTP schemas.

The API turns them into its response models; the field names match those models so that the conversion is
`Model.model_validate(record, from_attributes=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from kernel.types import JobStage, JobStatus, VersionStatus
from kernel.usage import ModelTokens

SCORE_STATUS_PENDING = "pending"
SCORE_STATUS_DONE = "done"

# ----- collections, documents, versions, jobs ----------------------------------------------------------------------


@dataclass(frozen=True)
class NewCollection:
    name: str
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    filterable: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Collection:
    name: str
    description: str
    metadata: dict[str, Any]
    filterable: dict[str, str]
    policy: dict[str, Any]
    created_at: datetime
    document_count: int
    chunk_count: int


@dataclass(frozen=True)
class NewVersion:
    """What the API registers for one file or one imported record."""

    key: str
    filename: str
    sha256: str
    size_bytes: int
    kind: str
    blob: str
    metadata: dict[str, Any]
    record_index: int | None = None


@dataclass(frozen=True)
class Registration:
    """The outcome of registering one upload: a new version (queued) or the same bytes as the latest one."""

    filename: str
    document_id: str
    version: int
    job_id: str
    status: Literal["queued", "unchanged"]

    @property
    def needs_job(self) -> bool:
        return self.status == "queued"


@dataclass(frozen=True)
class ImportRegistration:
    job_id: str | None
    status: Literal["queued", "unchanged"]
    records: int
    new_versions: int
    unchanged: int

    @property
    def needs_job(self) -> bool:
        return self.new_versions > 0


@dataclass(frozen=True)
class Version:
    version: int
    status: VersionStatus
    sha256: str
    size_bytes: int
    kind: str
    filename: str
    chunk_count: int
    job_id: str
    error: str | None
    model_id: str | None
    created_at: datetime
    indexed_at: datetime | None


@dataclass(frozen=True)
class Document:
    document_id: str
    collection: str
    key: str
    filename: str
    status: str  # of the latest version
    active_version: int | None
    latest_version: int
    chunk_count: int  # of the active version
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DocumentWithVersions(Document):
    versions: tuple[Version, ...]


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    collection: str
    status: JobStatus
    stage: JobStage
    done: int
    total: int
    attempts: int
    error: str | None
    documents: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class JobItem:
    """One document version a job indexes."""

    document_id: str
    collection: str
    key: str
    version: int
    status: VersionStatus
    filename: str
    kind: str
    sha256: str
    blob: str
    record_index: int | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class IndexedVersion:
    """A version whose chunks are in the vector store, ready to become the document's active one."""

    document_id: str
    version: int
    chunk_count: int


@dataclass(frozen=True)
class Activation:
    document_id: str
    version: int
    previous: int | None
    superseded: bool = False


# ----- answers and scores ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAnswer:
    """An answer with its whole lineage, as the pipeline saves it."""

    question: str
    standalone_question: str
    collections: list[str]
    filters: dict[str, Any] | None
    answer: str
    abstained: bool
    abstain_reason: str | None
    citations: list[dict[str, Any]]
    contexts: list[dict[str, Any]]
    prompt_id: str
    prompt_version: str
    generator: str
    model: str
    usage: dict[str, Any]
    timings_ms: dict[str, Any]
    removed_citations: int = 0
    evidence: float | None = None
    conversation_id: str | None = None
    id: str | None = None
    key_id: str | None = None
    # The request that made it and its trace (the X-Request-Id and X-Trace-Id headers of its response).
    request_id: str | None = None
    trace_id: str | None = None
    cache_key: str | None = None  # may be served again under this key (rag/answer_cache.py)
    cached_from: str | None = None  # served from cache: the original answer
    variant: str | None = None  # RAG_VARIANTS: "control" or the candidate's name; None outside an experiment
    replay_of: str | None = None  # the answer this one replays (POST /v1/answers/{id}/replay); not in reports
    fallback: str | None = None  # "budget:<budget id>" (answered extractively, over budget) or "gateway" (see attempts)
    attempts: list[dict[str, Any]] | None = None  # the model gateway's attempts (kernel.types.Attempt), in order
    rewrite: ModelTokens | None = None  # what an LLM spent rewriting the chat follow-up into `standalone_question`


@dataclass(frozen=True)
class StoredAnswer:
    id: str
    conversation_id: str | None
    question: str
    standalone_question: str
    collections: list[str]
    filters: dict[str, Any] | None
    answer: str
    abstained: bool
    abstain_reason: str | None
    citations: list[dict[str, Any]]
    contexts: list[dict[str, Any]]
    prompt_id: str
    prompt_version: str
    generator: str
    model: str
    usage: dict[str, Any]
    timings_ms: dict[str, Any]
    removed_citations: int
    evidence: float | None
    created_at: datetime
    key_id: str | None = None
    request_id: str | None = None
    trace_id: str | None = None
    cache_key: str | None = None
    cached_from: str | None = None
    variant: str | None = None
    replay_of: str | None = None
    fallback: str | None = None
    attempts: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class ScoreState:
    """An answer's score: owed (`pending`) or `done`; a metric that could not be computed is None."""

    answer_id: str
    status: str
    requests: int
    reference: str | None
    scorer: str | None
    scorer_version: str | None
    faithfulness: float | None
    context_precision: float | None
    context_recall: float | None
    result: dict[str, Any] | None
    error: str | None
    requested_at: datetime
    scored_at: datetime | None
    claimed_by: str | None = None
    claimed_until: datetime | None = None

    def metric(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value


@dataclass(frozen=True)
class ScoreResult:
    """What a scorer found, as storage keeps it: the metric values and the whole result as JSON."""

    scorer: str
    scorer_version: str
    values: dict[str, float | None]
    detail: dict[str, Any]
    judge: ModelTokens | None = None


@dataclass(frozen=True)
class Feedback:
    id: int
    answer_id: str
    rating: str
    comment: str | None
    created_at: datetime


@dataclass(frozen=True)
class Turn:
    conversation_id: str
    turn: int
    role: str
    content: str
    answer_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class ReportQuery:
    """Which answers a report reads: newest first, at most `limit`, every given filter applied before the limit."""

    since: datetime | None = None
    until: datetime | None = None
    collection: str | None = None
    prompt_version: str | None = None
    generator: str | None = None
    limit: int = 100_000
    grants: frozenset[str] | None = None  # only answers every collection of which is among these (None: all)


@dataclass(frozen=True)
class ReportRow:
    """An answer as a report sees it (not its contexts: a report over many answers needs only what it shows)."""

    id: str
    created_at: datetime
    question: str
    answer: str
    collections: list[str]
    citations: list[dict[str, Any]]
    abstained: bool
    abstain_reason: str | None
    prompt_version: str
    generator: str
    score: ScoreState | None
    variant: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, Any] = field(default_factory=dict)


# ----- keys and audit --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewKey:
    role: str
    collections: list[str]
    name: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ApiKey:
    """A key as stored: never its secret, which exists only in the caller's hands."""

    id: str
    name: str
    role: str
    collections: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewAuditEntry:
    action: str
    method: str
    path: str
    outcome: str  # ok, refused (401/403/404 of access control, 429), invalid (other 4xx), error (5xx)
    status: int
    key_id: str | None = None
    role: str | None = None
    collection: str | None = None
    document_id: str | None = None
    answer_id: str | None = None
    question: str | None = None  # in full, as a hash, or None: as RAG_AUDIT__QUESTIONS says
    detail: str | None = None


@dataclass(frozen=True)
class AuditEntry(NewAuditEntry):
    seq: int = 0
    at: str = ""
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True)
class AuditQuery:
    since: str | None = None  # ISO 8601, inclusive
    until: str | None = None  # ISO 8601, exclusive
    key_id: str | None = None
    action: str | None = None
    collection: str | None = None
    outcome: str | None = None
    after_seq: int = 0
    limit: int = 1000


@dataclass(frozen=True)
class AuditCheck:
    entries: int
    broken_at: int | None = None  # the first entry whose link does not hold
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None

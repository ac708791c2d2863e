"""What the domain packages need of the metadata store, the blob store and the queue.

`rag.storage`, `rag.blobs` and `rag.queue` implement these; `ingestion`, `retrieval` and `evals` see only the
methods they use, so a module's signature says which part of the store it touches.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import BinaryIO, Protocol

from kernel.records import (
    Activation,
    DocumentWithVersions,
    IndexedVersion,
    Job,
    JobItem,
    ScoreResult,
    ScoreState,
    StoredAnswer,
)
from kernel.types import CollectionPolicy, JobStage, JobStatus
from kernel.usage import ModelTokens


class BlobReader(Protocol):
    """Uploaded bytes by content digest. Blocking: callers run it in a thread."""

    def get(self, digest: str) -> bytes: ...

    def open(self, digest: str) -> BinaryIO:
        """The blob as a stream, for what must not be held in memory whole; the caller closes it."""
        ...


class WriteGuard(Protocol):
    """Mutual exclusion per collection, across every API and worker process: a job holds it while it checks that
    its documents still exist and writes their chunks, a delete while it removes them. So nothing of a deleted
    document or collection is written after its delete."""

    def hold(self, collection: str) -> AbstractAsyncContextManager[None]: ...


class JobLedger(Protocol):
    """Ingestion jobs and their state."""

    async def get(self, job_id: str) -> Job: ...

    async def items(self, job_id: str) -> list[JobItem]: ...

    async def started(self, job_id: str) -> int | None:
        """Count an attempt; returns how many attempts have started, this one included (None: the job has ended,
        cancelled by a delete, and must not run)."""
        ...

    async def progress(
        self, job_id: str, stage: JobStage, done: int | None = None, total: int | None = None
    ) -> None: ...

    async def note_error(self, job_id: str, error: str) -> None: ...

    async def finished(self, job_id: str, status: JobStatus, error: str | None = None) -> None: ...

    async def unfinished(self) -> list[str]: ...


class VersionLedger(Protocol):
    """Document versions as ingestion moves them from queued to active, failed, retired and purged."""

    async def failed(self, document_id: str, version: int, error: str) -> None: ...

    async def activate(self, job_id: str, items: Sequence[IndexedVersion], model_id: str) -> list[Activation]:
        """Switch every indexed version active in one transaction."""
        ...

    async def beyond(self, document_id: str, keep: int) -> list[int]:
        """Retired versions older than the newest `keep`: their chunks may be deleted."""
        ...

    async def mark_purged(self, document_id: str, version_numbers: Sequence[int]) -> None: ...

    async def count_of_job(self, job_id: str) -> int:
        """How many versions this job still has: deleting a document or collection deletes its versions."""
        ...

    async def of_job(self, job_id: str) -> set[tuple[str, int]]:
        """(document id, version) of every version this job still has."""
        ...


class DocumentCatalog(Protocol):
    async def get(self, document_id: str) -> DocumentWithVersions: ...

    async def exists(self, document_id: str) -> bool: ...

    async def active_versions(self, document_ids: Sequence[str]) -> dict[str, int]: ...


class FieldRegistry(Protocol):
    async def filterable_fields(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """The metadata fields each collection declares filterable; NotFound for an unknown name."""
        ...


class GenerationReader(Protocol):
    """Which generation of a collection's chunks is live (`rag reindex` builds the next one beside it)."""

    async def live(self, names: Sequence[str]) -> dict[str, int]:
        """The live generation of each of these collections that exists."""
        ...

    async def generation(self, name: str) -> int: ...


class PolicyReader(Protocol):
    async def policies(self, names: Sequence[str]) -> dict[str, CollectionPolicy]:
        """Each collection's policy; NotFound for an unknown name."""
        ...


class AnswerReader(Protocol):
    async def get(self, answer_id: str) -> StoredAnswer: ...


class ScoreLedger(Protocol):
    """Owed and finished answer scores, claimed in the database so two workers never score the same answer."""

    async def request(self, answer_id: str, reference: str | None = None, *, set_reference: bool = False) -> None: ...

    async def save(self, answer_id: str, result: ScoreResult, requests: int) -> None: ...

    async def failed(self, answer_id: str, error: str) -> None: ...

    async def judge_spent(self, answer_id: str, tokens: ModelTokens | None) -> None:
        """What a judge spent on a scoring whose result is not kept (it is retried): still part of the cost."""
        ...

    async def state(self, answer_id: str) -> ScoreState | None: ...

    async def claim(self, claimant: str, first: str | None, limit: int, lease: timedelta) -> list[str]: ...

    async def renew(self, claimant: str, answer_ids: Sequence[str], lease: timedelta) -> None: ...

    async def release(self, claimant: str, answer_ids: Sequence[str]) -> None: ...

    async def pending(self, limit: int | None = None) -> list[str]: ...


class ScoreQueue(Protocol):
    async def enqueue_score(self, answer_id: str, defer_seconds: float | None = None) -> None: ...

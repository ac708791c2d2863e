"""Which of a job's versions still exist: how a running job learns that a delete cancelled (part of) it.

Deleting a document or a collection deletes its versions in the catalog. A job compares the number of versions it
still has with what it knows, one cheap indexed count, and reloads the set only when that changed; it skips the
chunks of deleted documents, and stops once none of its documents is left.
"""

from __future__ import annotations

from collections.abc import Sequence

from kernel.ports import VersionLedger
from kernel.records import JobItem


class LiveVersions:
    def __init__(self, versions: VersionLedger, job_id: str, items: Sequence[JobItem]) -> None:
        self._versions, self._job_id = versions, job_id
        self._alive = {(item.document_id, item.version) for item in items}

    async def refresh(self) -> None:
        if await self._versions.count_of_job(self._job_id) != len(self._alive):
            self._alive = await self._versions.of_job(self._job_id)

    def has(self, item: JobItem) -> bool:
        return (item.document_id, item.version) in self._alive

    @property
    def none_left(self) -> bool:
        return not self._alive

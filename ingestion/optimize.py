"""Building the store's search index (HNSW) after large imports, off the request path.

Qdrant Edge builds its HNSW index only when asked (`optimize()`); until then a search scans every vector, which is
fine for thousands of chunks and slow for hundreds of thousands. The indexer counts the chunks it writes and, once
`threshold` were written since the last build, starts one in a background task of the worker process that ran the
job: never inside a request, never two at once. A Qdrant server optimizes by itself: its store has no `optimize`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class Optimizable(Protocol):
    async def optimize(self) -> None: ...


class AutoOptimizer:
    def __init__(self, store: object, threshold: int) -> None:
        """`threshold`: chunks written between two builds (0: never build automatically)."""
        self._store = store if isinstance(store, Optimizable) else None
        self.threshold = threshold
        self.pending = 0  # chunks written since the last build started
        self.runs = 0  # builds finished
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._store is not None and self.threshold > 0

    def note(self, chunks: int) -> None:
        """Count chunks just written; start a build once enough have been (one at a time: the rest wait their turn)."""
        if not self.active:
            return
        self.pending += chunks
        if self.pending >= self.threshold and (self._task is None or self._task.done()):
            self.pending = 0
            self._task = asyncio.create_task(self._build(), name="optimize-vector-store")

    async def _build(self) -> None:
        assert self._store is not None
        try:
            await self._store.optimize()
        except Exception:  # a failed build leaves the exact (slower) search; the next large import tries again
            log.exception("building the vector store's search index failed")
            return
        self.runs += 1
        log.info("built the vector store's search index (%d builds so far)", self.runs)

    async def idle(self) -> None:
        """Wait for a build in progress, if any (at shutdown: a build cannot be interrupted halfway)."""
        if self._task is not None:
            await asyncio.shield(self._task)

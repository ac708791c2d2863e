"""Hit and miss counts of the service's caches, for metrics to read (`/metrics` exports them as counters).

One object per process, made by `rag.services` and handed to each cache; counts only grow, so a Prometheus
collector can report them as counters without keeping state of its own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# The cache names, as they appear in `snapshot()`.
EMBEDDINGS = "embeddings"  # chunk vectors reused at ingestion (per chunk)
QUERY_EMBEDDINGS = "query_embeddings"  # question and search-query vectors (per query)
ANSWERS = "answers"  # answers served again (per question)


@dataclass
class CacheStats:
    """Hits and misses per cache name. Thread-safe: embedding runs in worker threads."""

    hits: Counter[str] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)
    # Told every count as (cache, hits, misses): the service's Prometheus counters (rag/observability).
    listener: Callable[[str, int, int], None] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, cache: str, hits: int = 0, misses: int = 0) -> None:
        with self._lock:
            if hits:
                self.hits[cache] += hits
            if misses:
                self.misses[cache] += misses
        if self.listener is not None and (hits or misses):
            self.listener(cache, hits, misses)

    def hit(self, cache: str) -> None:
        self.count(cache, hits=1)

    def miss(self, cache: str) -> None:
        self.count(cache, misses=1)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """{cache name: {"hits": n, "misses": n}} for every cache that has counted anything."""
        with self._lock:
            names = sorted(set(self.hits) | set(self.misses))
            return {n: {"hits": self.hits[n], "misses": self.misses[n]} for n in names}

"""The query-embedding cache: a bounded LRU of question vectors, so a repeated question is not encoded again.

It wraps the embedder the retriever uses; documents pass through untouched (ingestion has its own cache, see
`ingestion.reuse`). Keyed by model id and exact text: the model decides the vector, and a one-character change is
another question.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from kernel.cache_stats import QUERY_EMBEDDINGS, CacheStats
from kernel.protocols import Embedder


class CachingQueryEmbedder:
    """An Embedder whose `embed_query` remembers the last `size` queries. Thread-safe: callers run it in threads."""

    def __init__(self, inner: Embedder, size: int, stats: CacheStats) -> None:
        if size < 1:
            raise ValueError("the query-embedding cache needs room for at least one query")
        self._inner = inner
        self._size = size
        self._stats = stats
        self._vectors: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def max_tokens(self) -> int:
        return self._inner.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        key = (self._inner.model_id, text)
        with self._lock:
            vector = self._vectors.get(key)
            if vector is not None:
                self._vectors.move_to_end(key)
        if vector is not None:
            self._stats.hit(QUERY_EMBEDDINGS)
            return list(vector)  # a copy: a caller that changes its vector must not change the cache
        self._stats.miss(QUERY_EMBEDDINGS)
        # Encoded outside the lock: two different questions encode at once; the same one twice at worst.
        vector = self._inner.embed_query(text)
        with self._lock:
            self._vectors[key] = list(vector)
            self._vectors.move_to_end(key)
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
        return vector

    def __len__(self) -> int:
        with self._lock:
            return len(self._vectors)

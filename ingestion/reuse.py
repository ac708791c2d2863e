"""The embedding cache: a chunk whose exact text the same model has already encoded reuses the stored vector.

The cache is the vector store itself. Every chunk is stored with the sha256 of its text and the model that
encoded it, and a payload index on the digest finds them; so a new version of a document (whose previous version
is kept for rollback), a re-import of a corpus, or the same text in another collection encodes only what is new.
Nothing else is kept, so nothing goes stale or outlives its document: once a chunk is deleted, its vector is no
longer offered.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from kernel.cache_stats import EMBEDDINGS, CacheStats
from kernel.protocols import Embedder, StoredVectors


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Embedded:
    vectors: list[list[float]]
    encoded: int  # how many texts the model encoded (the rest were reused or repeated within the batch)


@dataclass
class ReusingEncoder:
    """Dense vectors for a batch of chunk texts: reused where the store has them, encoded otherwise."""

    embedder: Embedder
    stored: StoredVectors | None  # None: the cache is off, every text is encoded
    stats: CacheStats

    async def embed(self, texts: Sequence[str], lock: asyncio.Lock) -> Embedded:
        """`lock` is held while the model encodes (encoding is serialised; the lookup need not be)."""
        digests = [text_digest(t) for t in texts]
        found: dict[str, list[float]] = {}
        if self.stored is not None and texts:
            found = await self.stored.dense_by_text(self.embedder.model_id, sorted(set(digests)))
        # A text repeated within the batch is encoded once.
        todo = {d: t for d, t in zip(digests, texts, strict=True) if d not in found}
        if todo:
            async with lock:
                fresh = await asyncio.to_thread(self.embedder.embed_documents, list(todo.values()))
            found.update(zip(todo, fresh, strict=True))
        if self.stored is not None:
            self.stats.count(EMBEDDINGS, hits=len(texts) - len(todo), misses=len(todo))
        return Embedded([found[d] for d in digests], len(todo))

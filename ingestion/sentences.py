"""Sentence vectors at ingestion: each chunk's candidate answer sentences are encoded once, here, and stored by
model and text digest, so that the extractive generator reads them instead of encoding up to 24 sentences for
every question. A sentence already stored (the same text in another chunk, version or collection) is not encoded
again. Each version's chunks hold a reference to their sentences' vectors, so that the catalog deletes a vector
once no kept chunk has its sentence (rag/storage/sentence_vectors.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from kernel.protocols import Embedder, SentenceVectors
from kernel.records import JobItem
from kernel.text import answer_sentences, text_sha256
from kernel.types import Chunk


@dataclass
class SentenceEncoder:
    embedder: Embedder
    store: SentenceVectors

    async def store_for(self, group: Sequence[tuple[JobItem, Chunk]], generation: int, lock: asyncio.Lock) -> int:
        """Stores the vectors of the chunks' sentences, and their versions' references to them in `generation` (the
        collection's generation the chunks are written to); returns how many were encoded. `lock` is held while the
        model encodes, as for the chunks themselves."""
        framed: dict[str, str] = {}
        refs: dict[tuple[str, int], set[str]] = {}
        for item, chunk in group:
            for _, f in answer_sentences(chunk.text, chunk.section):
                digest = text_sha256(f)
                framed[digest] = f
                refs.setdefault((item.document_id, item.version), set()).add(digest)
        if not framed:
            return 0
        model = self.embedder.model_id
        # References first: a delete that runs meanwhile either sees them (and keeps the vectors) or removed the
        # vectors before they are read here (and they are encoded again).
        await self.store.hold(model, generation, refs)
        have = await self.store.get(model, list(framed))
        todo = [d for d in framed if d not in have]
        if not todo:
            return 0
        async with lock:
            vectors = await asyncio.to_thread(self.embedder.embed_documents, [framed[d] for d in todo])
        await self.store.put(model, dict(zip(todo, vectors, strict=True)))
        return len(todo)

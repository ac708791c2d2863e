"""Sentence vectors at ingestion: each chunk's candidate answer sentences are encoded once, here, and stored by
model and text digest, so that the extractive generator reads them instead of encoding up to 24 sentences for
every question. A sentence already stored (the same text in another chunk, version or collection) is not encoded
again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from kernel.protocols import Embedder, SentenceVectors
from kernel.text import answer_sentences, text_sha256


@dataclass
class SentenceEncoder:
    embedder: Embedder
    store: SentenceVectors

    async def store_for(self, chunks: Sequence[tuple[str, str | None]], lock: asyncio.Lock) -> int:
        """Stores the vectors of the (text, section) chunks' sentences; returns how many were encoded. `lock` is
        held while the model encodes, as for the chunks themselves."""
        framed = {text_sha256(f): f for text, section in chunks for _, f in answer_sentences(text, section)}
        if not framed:
            return 0
        model = self.embedder.model_id
        have = await self.store.get(model, list(framed))
        todo = [d for d in framed if d not in have]
        if not todo:
            return 0
        async with lock:
            vectors = await asyncio.to_thread(self.embedder.embed_documents, [framed[d] for d in todo])
        await self.store.put(model, dict(zip(todo, vectors, strict=True)))
        return len(todo)

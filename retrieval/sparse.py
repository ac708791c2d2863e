"""BM25 term vectors, computed in-process so the embedded and the server store index the same sparse vectors.

Documents carry BM25 term-frequency weights (k, b, average length); the store applies IDF (modifier `idf`) at
query time, so the statistics stay right as the collection grows.
"""

from __future__ import annotations

import qdrant_edge as qe

from kernel.types import SparseVector


class Bm25Encoder:
    def __init__(self, k: float = 1.2, b: float = 0.75, avg_len: float = 256.0, language: str = "english") -> None:
        self._model = qe.Bm25(qe.Bm25Config(k=k, b=b, avg_len=avg_len, language=language))

    def encode_document(self, text: str) -> SparseVector:
        vec = self._model.embed_document(text)
        return SparseVector(indices=list(vec.indices), values=list(vec.values))

    def encode_query(self, text: str) -> SparseVector:
        vec = self._model.embed_query(text)
        return SparseVector(indices=list(vec.indices), values=list(vec.values))

"""Rerankers: reorder the fused candidates. Behind one protocol; chosen by `RAG_RERANK__KIND`.

- `none`: keep the fusion order.
- `score_fusion`: a convex combination of the min-max normalised dense cosine and BM25 score of each candidate,
  instead of the ranks alone that RRF uses. No model, microseconds; its weight is chosen on SciFact train.
- `cross_encoder`: a sentence-transformers CrossEncoder from a local directory (none ships offline here).
- `checker`: the support checker's answerability probability of each candidate's text, blended with score fusion
  (`checker_weight`; 1.0 is the checker alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from kernel.protocols import PassageChecker
from kernel.types import Hit


class Reranker(Protocol):
    @property
    def name(self) -> str: ...

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]: ...


class NoReranker:
    name = "none"

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        return list(hits[:top_k])


def _normalise(values: list[float | None]) -> list[float]:
    present = [v for v in values if v is not None]
    if not present:
        return [0.0] * len(values)
    lo, hi = min(present), max(present)
    span = hi - lo or 1.0
    # A stage that did not rank a candidate gives it its floor.
    return [0.0 if v is None else (v - lo) / span for v in values]


class ScoreFusionReranker:
    def __init__(self, dense_weight: float) -> None:
        self._alpha = dense_weight

    @property
    def name(self) -> str:
        return f"score_fusion:{self._alpha:g}"

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        dense = _normalise([h.dense_score for h in hits])
        sparse = _normalise([h.sparse_score for h in hits])
        scored = [
            h.model_copy(update={"rerank_score": self._alpha * d + (1 - self._alpha) * s})
            for h, d, s in zip(hits, dense, sparse, strict=True)
        ]
        scored.sort(key=lambda h: h.rerank_score or 0.0, reverse=True)
        return scored[:top_k]


class CrossEncoderReranker:
    def __init__(self, model_path: str, batch_size: int = 32) -> None:
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(model_path, device="cpu", local_files_only=True)
        self._path = model_path
        self._batch = batch_size

    @property
    def name(self) -> str:
        return f"cross_encoder:{self._path}"

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        if not hits:
            return []
        pairs = [(query, str(h.payload.get("text", ""))) for h in hits]
        scores = await asyncio.to_thread(self._model.predict, pairs, batch_size=self._batch)
        ranked = sorted(
            (h.model_copy(update={"rerank_score": float(s)}) for h, s in zip(hits, scores, strict=True)),
            key=lambda h: h.rerank_score or 0.0,
            reverse=True,
        )
        return ranked[:top_k]


class CheckerReranker:
    def __init__(self, checker: PassageChecker, fusion: ScoreFusionReranker, weight: float) -> None:
        self._checker = checker
        self._fusion = fusion
        self._weight = weight

    @property
    def name(self) -> str:
        return f"checker:{self._weight:g}+{self._fusion.name}"

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        if not hits:
            return []
        fused = await self._fusion.rerank(query, hits, len(hits))
        probs = await asyncio.to_thread(self._checker.answers, query, [str(h.payload.get("text", "")) for h in fused])
        w = self._weight
        scored = [
            h.model_copy(update={"rerank_score": w * p + (1 - w) * (h.rerank_score or 0.0)})
            for h, p in zip(fused, probs, strict=True)
        ]
        scored.sort(key=lambda h: h.rerank_score or 0.0, reverse=True)
        return scored[:top_k]

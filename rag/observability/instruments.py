"""Components wrapped to be counted, chosen in rag/services.py: the domain code they serve knows nothing of metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence

from evals.scores import METRICS, ScoreInput, Scorer, Scores
from ingestion.pii import PresidioRedactor
from kernel.protocols import Embedder
from rag.observability.telemetry import Telemetry


class CountedEmbedder:
    """The indexer's embedder: every text it embeds for a document is a chunk embedded (queries and the scorer's
    sentences go through the plain embedder and are not counted)."""

    def __init__(self, inner: Embedder, telemetry: Telemetry) -> None:
        self._inner = inner
        self._metrics = telemetry.metrics

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
        vectors = self._inner.embed_documents(texts)
        self._metrics.embedded(len(vectors))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)


class CountedRedactor(PresidioRedactor):
    """Presidio, counting each text it changed (at ingestion and in answers) as a PII redaction event."""

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__()
        self._metrics = telemetry.metrics

    def redact_many(self, texts: Sequence[str]) -> list[str]:
        out = super().redact_many(texts)
        self._metrics.guardrail("pii", "redacted", sum(1 for a, b in zip(texts, out, strict=True) if a != b))
        return out


class MeteredScorer:
    """The online scorer: a `score` span and stage timing per batch, each answer's metrics into the histograms, a
    judge model's tokens into the token counter."""

    def __init__(self, inner: Scorer, telemetry: Telemetry) -> None:
        self._inner = inner
        self._telemetry = telemetry

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def version(self) -> str:
        return self._inner.version

    async def score(self, item: ScoreInput) -> Scores:
        return (await self.score_many([item]))[0]

    async def score_many(self, items: list[ScoreInput]) -> list[Scores]:
        metrics = self._telemetry.metrics
        with self._telemetry.tracer.start_as_current_span("score", attributes={"rag.answers": len(items)}):
            started = time.perf_counter()
            results = await self._inner.score_many(items)
            metrics.stage("score", time.perf_counter() - started)
        for result in results:
            for metric in METRICS:
                metrics.score(metric, result.value(metric))
            if (u := result.judge_usage) is not None:
                metrics.tokens(u.model, u.prompt_tokens, u.completion_tokens)
        return results

"""The offline scorer: no judge LLM. Claims are judged by the similarity method (`faithfulness.py`: the embedding
model plus checks of numbers, names and negation), and answers it cannot judge (a bare entity such as "1881" or
"Paris", a date: 5 words at most) by the support checker (`checked_claims.py`, a small cross-encoder that
reads the question). Measured on held-out data (evals/validate.py), similarity is better on sentence answers and
the checker is the only one to judge short answers: `CombinedJudge` uses each where it measured better. Without
the checker's model file, short answers stay unjudged (null), as before; the scorer version names the method.

- faithfulness: share of the answer's claims that a context supports;
- context precision: rank-weighted (average precision) usefulness of each context, where a context is useful when
  it supports a claim of the answer or, with a reference, a claim of the reference;
- context recall: share of the reference answer's claims that the contexts support; null without a reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from evals.claims import ClaimItem, ClaimVerdict
from evals.scores import (
    ClaimOut,
    Metric,
    ScoreInput,
    Scores,
    abstention_scores,
    strip_citation_markers,
    unjudged_scores,
)


class ClaimJudge(Protocol):
    """Splits answers into claims and judges each against the contexts. Blocking."""

    method: str

    @property
    def version(self) -> str: ...

    def judge_many(self, items: Sequence[ClaimItem]) -> list[list[ClaimVerdict]]: ...


def average_precision(useful: Sequence[bool]) -> float:
    """ragas' context precision: mean of precision@k over the ranks k that hold a useful context."""
    hits, total = 0, 0.0
    for k, ok in enumerate(useful, start=1):
        if ok:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0


class CombinedJudge:
    """Similarity for answers with sentence claims, the checker (with the question) for the rest."""

    method = "combined"

    def __init__(self, similarity: ClaimJudge, checker: ClaimJudge) -> None:
        self._similarity = similarity
        self._checker = checker

    @property
    def version(self) -> str:
        return f"{self._similarity.version}+{self._checker.version}"

    def judge_many(self, items: Sequence[ClaimItem]) -> list[list[ClaimVerdict]]:
        short = [i for i, item in enumerate(items) if is_short_answer(item.answer)]
        rest = [i for i, item in enumerate(items) if not is_short_answer(item.answer)]
        out: list[list[ClaimVerdict]] = [[] for _ in items]
        for i, verdicts in zip(short, self._checker.judge_many([items[i] for i in short]), strict=True):
            out[i] = verdicts
        for i, verdicts in zip(rest, self._similarity.judge_many([items[i] for i in rest]), strict=True):
            out[i] = verdicts
        return out


SHORT_ANSWER_WORDS = 5


def is_short_answer(answer: str) -> bool:
    """A bare entity, date or phrase ("26 June 1968", "The United States Trustee"): a reply that only means something
    with its question, which the similarity method cannot judge."""
    return 0 < len(strip_citation_markers(answer).split()) <= SHORT_ANSWER_WORDS


class OfflineScorer:
    def __init__(self, judge: ClaimJudge, lock: asyncio.Lock | None = None) -> None:
        """`lock`: the service's encode lock. The similarity method shares the embedding model with ingestion, and
        one tokenizer used from two threads at once can fail ("Already borrowed"); taking turns also keeps model
        work from thrashing the cores."""
        self._judge = judge
        self._lock = lock or asyncio.Lock()

    @property
    def name(self) -> str:
        return "offline"

    @property
    def version(self) -> str:
        return self._judge.version

    async def score(self, item: ScoreInput) -> Scores:
        return (await self.score_many([item]))[0]

    async def score_many(self, items: list[ScoreInput]) -> list[Scores]:
        async with self._lock:
            return await asyncio.to_thread(self.score_blocking, items)

    def score_blocking(self, items: list[ScoreInput]) -> list[Scores]:
        """One encoder call for all claims of the batch (answers and references), one for unseen sources."""
        jobs = [
            ClaimItem(item.question, item.answer, item.contexts)
            for item in items
            if not item.abstained and item.contexts
        ]
        jobs += [ClaimItem(item.question, item.reference, item.contexts) for item in items if item.reference]
        judged = iter(self._judge.judge_many(jobs))
        answer_verdicts = [next(judged) if not item.abstained and item.contexts else None for item in items]
        return [
            self._scores(item, verdicts, next(judged) if item.reference else None)
            for item, verdicts in zip(items, answer_verdicts, strict=True)
        ]

    def _scores(
        self, item: ScoreInput, verdicts: list[ClaimVerdict] | None, reference_verdicts: list[ClaimVerdict] | None
    ) -> Scores:
        recall = _recall(reference_verdicts, item.contexts)
        if item.abstained:
            return abstention_scores(self, recall)
        if verdicts is None:
            return unjudged_scores(self, "no contexts were retrieved", recall)
        if verdicts:
            faithfulness = Metric(value=sum(v.supported for v in verdicts) / len(verdicts))
        else:
            faithfulness = Metric.null("the answer makes no claim to check")
        useful = [False] * len(item.contexts)
        for v in verdicts + (reference_verdicts or []):
            if v.supported and v.context_index is not None:
                useful[v.context_index] = True
        if verdicts or reference_verdicts:
            precision = Metric(value=average_precision(useful))
        else:
            precision = Metric.null("neither the answer nor a reference makes a claim to judge the contexts by")
        return Scores(
            scorer=self.name,
            scorer_version=self.version,
            faithfulness=faithfulness,
            context_precision=precision,
            context_recall=recall,
            claims=[_claim_out(v) for v in verdicts],
        )


def _recall(verdicts: list[ClaimVerdict] | None, contexts: Sequence[str]) -> Metric:
    if verdicts is None:
        return Metric.null("no reference answer; attach one to score recall")
    if not verdicts:
        return Metric.null("the reference answer makes no claim to check")
    if not contexts:
        return Metric(value=0.0, reason="no contexts were retrieved")
    return Metric(value=sum(v.supported for v in verdicts) / len(verdicts))


def _claim_out(v: ClaimVerdict) -> ClaimOut:
    strength = round(v.similarity, 4)
    method = v.method
    return ClaimOut(
        claim=v.claim,
        supported=v.supported,
        context=None if v.context_index is None else v.context_index + 1,
        support=v.support,
        similarity=None if method == "checker" else strength,
        probability=strength if method == "checker" else None,
        reason=v.reason,
    )

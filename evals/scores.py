"""The score object every scorer returns, and the `Scorer` protocol: one shape for the online answers, the
`/v1/evaluate` endpoint and `rag eval run`.

A metric that cannot be computed (no reference for recall, an abstention, a judge failure) has `value=None` and a
`reason`; it is never 0, so it never drags a mean down and never makes one NaN.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field, field_validator

from kernel.text import strip_citation_markers

METRICS = ("faithfulness", "context_precision", "context_recall")


class Metric(BaseModel):
    value: float | None = Field(default=None, ge=0.0, le=1.0)
    reason: str | None = Field(default=None, description="Why the value is null (or a note on how it was made).")
    retryable: bool = Field(default=False, description="Null because the judge was unreachable: worth a retry.")

    @classmethod
    def null(cls, reason: str) -> Metric:
        return cls(value=None, reason=reason)


class ClaimOut(BaseModel):
    claim: str
    supported: bool | None = Field(description="None: the judge gave no verdict for this claim.")
    context: int | None = Field(default=None, description="1-based position of the supporting context.")
    chunk_id: str | None = None
    support: str | None = Field(default=None, description="The context text that supports (or best matches) it.")
    similarity: float | None = Field(default=None, description="Similarity method: cosine of the best support.")
    probability: float | None = Field(
        default=None, description="Support checker: probability that the recorded support states the claim."
    )
    reason: str | None = Field(default=None, description="Why the claim is not supported.")


class JudgeUsage(BaseModel):
    """The tokens a judge model spent on one answer's scores (every request, those that failed to parse too)."""

    model: str
    requests: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class Scores(BaseModel):
    scorer: str
    scorer_version: str
    faithfulness: Metric
    context_precision: Metric
    context_recall: Metric
    claims: list[ClaimOut] = Field(default_factory=list)
    judge_usage: JudgeUsage | None = Field(default=None, description="Set when a judge LLM scored (ragas).")

    def value(self, metric: str) -> float | None:
        m: Metric = getattr(self, metric)
        return m.value

    def unreachable(self) -> str | None:
        """The reason of the first metric that is null because the judge could not be reached, if any."""
        return next((m.reason for m in (getattr(self, n) for n in METRICS) if m.retryable), None)


class ScoreInput(BaseModel):
    question: str
    answer: str
    contexts: list[str]
    reference: str | None = None
    abstained: bool = False

    @field_validator("answer")
    @classmethod
    def _without_markers(cls, v: str) -> str:
        return strip_citation_markers(v)


class Scorer(Protocol):
    """Scores one answer against its contexts; implementations keep blocking work (model, judge) off the loop."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    async def score(self, item: ScoreInput) -> Scores: ...

    async def score_many(self, items: list[ScoreInput]) -> list[Scores]:
        """The same for a batch, in order; a scorer may share work across the items."""
        ...


def unjudged_scores(scorer: Scorer, reason: str, recall: Metric) -> Scores:
    """Faithfulness and precision null for `reason` (no answer, no contexts); recall may still be known."""
    return Scores(
        scorer=scorer.name,
        scorer_version=scorer.version,
        faithfulness=Metric.null(reason),
        context_precision=Metric.null(reason),
        context_recall=recall,
    )


def abstention_scores(scorer: Scorer, recall: Metric) -> Scores:
    """An abstention states nothing: faithfulness and precision have nothing to judge; recall still may."""
    return unjudged_scores(scorer, "the service abstained: there is no answer to judge", recall)

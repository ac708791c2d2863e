"""Daily drift indicators of one collection's traffic, and the alerts their thresholds raise (issue 11).

Pure computation on what the caller read: question embeddings, best retrieval scores, abstentions, faithfulness
and feedback per day. Query drift is the unbiased squared distance between mean embeddings (MMD² with a linear
kernel): the day's questions against the collection's chunks, and against the questions of the previous period.
Unlike the angle between the two means, it stays near 0 for varied traffic on unchanged topics (measured on CLAP-NQ
questions: the angle between two days' means was 0.84 to 0.9 in cosine distance, this statistic about 0), and grows
with a change of topic (SciFact claims against CLAP-NQ: about 0.12).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kernel.drift_settings import DriftThresholds

# Indicator name -> whether the alert is raised above the threshold (True) or below it (False).
INDICATORS: dict[str, bool] = {
    "query_drift_collection": True,
    "query_drift_previous": True,
    "retrieval_score_drop": True,
    "abstention_rate": True,
    "faithfulness": False,
    "feedback_positive": False,
}
# What an indicator is judged on, when that is not the day's answers.
_SUPPORT = {
    "query_drift_collection": "questions_embedded",
    "query_drift_previous": "questions_embedded",
    "faithfulness": "faithfulness_scored",
    "feedback_positive": "feedback_ratings",
}


@dataclass
class DayTraffic:
    """What one day of one collection's answers left behind."""

    day: str
    answers: int = 0
    abstained: int = 0
    top_scores: list[float] = field(default_factory=list)  # the best dense score of each answer that retrieved
    faithfulness: list[float] = field(default_factory=list)
    up: int = 0
    down: int = 0
    vectors: list[list[float]] = field(default_factory=list)  # question embeddings (a sample of the day's)


@dataclass(frozen=True)
class Breach:
    day: str
    indicator: str
    value: float
    threshold: float
    above: bool


@dataclass(frozen=True)
class Moments:
    """What the statistic needs of a set of embeddings: their count, their sum and the sum of their squared norms."""

    n: int
    total: np.ndarray
    squares: float

    @classmethod
    def of(cls, vectors: Sequence[Sequence[float]]) -> Moments | None:
        if not vectors:
            return None
        x = np.asarray(vectors, dtype=np.float64)
        return cls(len(x), x.sum(axis=0), float((x * x).sum()))


def drift_distance(a: Moments | None, b: Moments | None) -> float | None:
    """The unbiased squared distance between the two sets' mean embeddings (MMD² with a linear kernel): about 0
    for two samples of the same traffic, whatever its spread, and the more the further apart their topics."""
    if a is None or b is None or a.n < 2 or b.n < 2:
        return None
    within_a = (a.total @ a.total - a.squares) / (a.n * (a.n - 1))
    within_b = (b.total @ b.total - b.squares) / (b.n * (b.n - 1))
    across = (a.total @ b.total) / (a.n * b.n)
    return round(float(within_a + within_b - 2 * across), 4)


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def day_indicators(
    today: DayTraffic, previous: Sequence[DayTraffic], collection: Moments | None
) -> dict[str, float | int | None]:
    """The day's indicators; None where there is nothing to compute one from."""
    here = Moments.of(today.vectors)
    before = Moments.of([v for d in previous for v in d.vectors])
    score, score_before = _mean(today.top_scores), _mean([s for d in previous for s in d.top_scores])
    rated = today.up + today.down
    return {
        "answers": today.answers,
        "questions_embedded": len(today.vectors),
        "query_drift_collection": drift_distance(here, collection),
        "query_drift_previous": drift_distance(here, before),
        "retrieval_score": score,
        "retrieval_score_previous": score_before,
        "retrieval_score_drop": None if score is None or score_before is None else round(score_before - score, 4),
        "abstention_rate": round(today.abstained / today.answers, 4) if today.answers else None,
        "faithfulness": _mean(today.faithfulness),
        "faithfulness_scored": len(today.faithfulness),
        "feedback_positive": round(today.up / rated, 4) if rated else None,
        "feedback_ratings": rated,
    }


def breaches(day: str, values: dict[str, float | int | None], limits: DriftThresholds, min_n: int) -> list[Breach]:
    """The indicators of a day that cross their thresholds, judged only on enough answers (or ratings)."""
    found = []
    for name, above in INDICATORS.items():
        threshold, value = getattr(limits, name), values.get(name)
        support = values[_SUPPORT.get(name, "answers")]
        if threshold is None or value is None or int(support or 0) < min_n:
            continue
        if (value > threshold) if above else (value < threshold):
            found.append(Breach(day, name, float(value), float(threshold), above))
    return found

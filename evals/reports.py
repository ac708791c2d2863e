"""Groundedness reports for analysts, built from stored answers and their scores (pure functions of the rows)."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from evals.scores import METRICS

BINS = 10


class ScoreOfRow(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def scorer(self) -> str | None: ...
    @property
    def result(self) -> dict[str, Any] | None: ...
    @property
    def error(self) -> str | None: ...
    def metric(self, name: str) -> float | None: ...


class Row(Protocol):
    """An answer as the reports read it (the storage's report rows are these)."""

    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def question(self) -> str: ...
    @property
    def answer(self) -> str: ...
    @property
    def collections(self) -> list[str]: ...
    @property
    def citations(self) -> list[dict[str, Any]]: ...
    @property
    def abstained(self) -> bool: ...
    @property
    def abstain_reason(self) -> str | None: ...
    @property
    def prompt_version(self) -> str: ...
    @property
    def generator(self) -> str: ...
    @property
    def score(self) -> ScoreOfRow | None: ...


class FeedbackOfRow(Protocol):
    @property
    def rating(self) -> str: ...
    @property
    def comment(self) -> str | None: ...


Feedback = Mapping[str, Sequence[FeedbackOfRow]]


def _status(row: Row) -> str | None:
    return row.score.status if row.score is not None else None


def _metric(row: Row, metric: str) -> float | None:
    return row.score.metric(metric) if row.score is not None else None


def _values(rows: Iterable[Row], metric: str) -> list[float]:
    return [v for r in rows if (v := _metric(r, metric)) is not None]


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _null_reasons(rows: Sequence[Row], metric: str) -> dict[str, int]:
    reasons: Counter[str] = Counter()
    for r in rows:
        if r.score is None or r.score.status != "done" or r.score.metric(metric) is not None:
            continue
        result = r.score.result or {}
        reason = (result.get(metric) or {}).get("reason") or r.score.error or "not computed"
        reasons[reason] += 1
    return dict(reasons.most_common())


def metric_summary(rows: Sequence[Row], metric: str, threshold: float) -> dict[str, Any]:
    values = _values(rows, metric)
    histogram = [0] * BINS
    for v in values:
        # Rounded first: 0.7999999999999999 is shown as 0.80 and belongs in the 0.8 bin.
        histogram[min(BINS - 1, int(round(v * BINS, 9)))] += 1
    return {
        "count": len(values),
        "mean": _mean(values),
        "median": round(statistics.median(values), 4) if values else None,
        "threshold": threshold,
        "below_threshold": sum(v < threshold for v in values),
        "share_below_threshold": round(sum(v < threshold for v in values) / len(values), 4) if values else None,
        "nulls": _null_reasons(rows, metric),
        "histogram": [{"lo": i / BINS, "hi": (i + 1) / BINS, "count": c} for i, c in enumerate(histogram)],
    }


def _group_summary(rows: Sequence[Row]) -> dict[str, Any]:
    # Counts over every answer; means over finished scores only (a pending rescore still holds its old values).
    done = [r for r in rows if _status(r) == "done"]
    return {
        "count": len(rows),
        "abstention_rate": round(sum(r.abstained for r in rows) / len(rows), 4) if rows else None,
        **{metric: _mean(_values(done, metric)) for metric in METRICS},
    }


def _by(rows: Sequence[Row], key: str) -> list[dict[str, Any]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[str(getattr(r, key))].append(r)
    return [{key: k, **_group_summary(v)} for k, v in sorted(groups.items())]


def _feedback_counts(items: Sequence[FeedbackOfRow]) -> dict[str, Any]:
    return {
        "up": sum(f.rating == "up" for f in items),
        "down": sum(f.rating == "down" for f in items),
        "comments": [f.comment for f in items if f.comment],
    }


def _unsupported(row: Row) -> list[dict[str, Any]]:
    result = row.score.result if row.score is not None else None
    claims = (result or {}).get("claims") or []
    return [c for c in claims if c.get("supported") is False]


def _faithfulness(row: Row) -> float | None:
    return _metric(row, "faithfulness")


def build_report(
    rows: Sequence[Row],
    feedback: Feedback,
    thresholds: dict[str, float],
    worst: int = 20,
) -> dict[str, Any]:
    """`rows`: the answers of the report (the storage's report rows); `feedback`: each answer's, by answer id."""
    scored = [r for r in rows if _status(r) == "done"]
    low_faith = [r for r in scored if (f := _faithfulness(r)) is not None and f < thresholds[METRICS[0]]]

    days: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        days[r.created_at.date().isoformat()].append(r)

    def rank(r: Row) -> tuple[float, float]:
        precision = _metric(r, "context_precision")
        return (_faithfulness(r) or 0.0, precision if precision is not None else 1.0)

    ranked = sorted((r for r in scored if _faithfulness(r) is not None), key=rank)
    documents: dict[str, dict[str, Any]] = {}
    for r in low_faith:
        for c in r.citations:
            doc = documents.setdefault(
                c["document_id"], {"document_id": c["document_id"], "filename": c["filename"], "answers": 0}
            )
            doc["answers"] += 1
    all_feedback = [f for r in rows for f in feedback.get(r.id, [])]
    return {
        "count": len(rows),
        "scored": len(scored),
        "pending": sum(_status(r) == "pending" for r in rows),
        "unscored": sum(_status(r) is None for r in rows),
        "abstained": sum(r.abstained for r in rows),
        "abstention_rate": round(sum(r.abstained for r in rows) / len(rows), 4) if rows else None,
        "metrics": {m: metric_summary(scored, m, thresholds[m]) for m in METRICS},
        "trend": [{"day": day, **_group_summary(days[day])} for day in sorted(days)],
        "worst_answers": [
            {
                "answer_id": r.id,
                "created_at": r.created_at.isoformat(),
                "question": r.question,
                "answer": r.answer,
                "collections": r.collections,
                "prompt_version": r.prompt_version,
                "generator": r.generator,
                **{m: _metric(r, m) for m in METRICS},
                "unsupported_claims": _unsupported(r),
                "feedback": _feedback_counts(feedback.get(r.id, [])),
            }
            for r in ranked[:worst]
        ],
        "documents_in_low_faithfulness_answers": sorted(
            documents.values(), key=lambda d: (-d["answers"], d["filename"])
        )[:worst],
        "by_prompt_version": _by(rows, "prompt_version"),
        "by_generator": _by(rows, "generator"),
        "feedback": {
            **{k: v for k, v in _feedback_counts(all_feedback).items() if k != "comments"},
            "faithfulness_when_up": _mean(_rated(rows, feedback, "up")),
            "faithfulness_when_down": _mean(_rated(rows, feedback, "down")),
        },
    }


def _rated(rows: Sequence[Row], feedback: Feedback, rating: str) -> list[float]:
    return [
        f
        for r in rows
        if _status(r) == "done"
        and (f := _faithfulness(r)) is not None
        and any(item.rating == rating for item in feedback.get(r.id, []))
    ]


CSV_COLUMNS = [
    "answer_id",
    "created_at",
    "collections",
    "question",
    "answer",
    "abstained",
    "abstain_reason",
    "prompt_version",
    "generator",
    "score_status",
    "scorer",
    *METRICS,
    "unsupported_claims",
    "feedback_up",
    "feedback_down",
]


def _cell(value: Any) -> Any:
    # A question typed as "=HYPERLINK(...)" must stay text when an analyst opens the export in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: Sequence[Row], feedback: Feedback) -> str:
    """One line per answer; a null score is an empty cell, never 0."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        fb = _feedback_counts(feedback.get(r.id, []))
        row = [
            r.id,
            r.created_at.isoformat(),
            ";".join(r.collections),
            r.question,
            r.answer,
            r.abstained,
            r.abstain_reason or "",
            r.prompt_version,
            r.generator,
            _status(r) or "unscored",
            (r.score.scorer if r.score is not None else None) or "",
            *["" if (v := _metric(r, m)) is None else v for m in METRICS],
            " | ".join(c["claim"] for c in _unsupported(r)),
            fb["up"],
            fb["down"],
        ]
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()

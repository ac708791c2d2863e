"""Groundedness reports for analysts, built from stored answers and their scores (pure functions of the rows)."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from evals.scores import METRICS

BINS = 10


def _values(rows: Iterable[dict[str, Any]], metric: str) -> list[float]:
    return [r[f"s_{metric}"] for r in rows if r.get(f"s_{metric}") is not None]


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _null_reasons(rows: list[dict[str, Any]], metric: str) -> dict[str, int]:
    reasons: Counter[str] = Counter()
    for r in rows:
        if r.get("s_status") != "done" or r.get(f"s_{metric}") is not None:
            continue
        result = r.get("s_result") or {}
        reason = (result.get(metric) or {}).get("reason") or r.get("s_error") or "not computed"
        reasons[reason] += 1
    return dict(reasons.most_common())


def metric_summary(rows: list[dict[str, Any]], metric: str, threshold: float) -> dict[str, Any]:
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


def _group_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    # Counts over every answer; means over finished scores only (a pending rescore still holds its old values).
    done = [r for r in rows if r.get("s_status") == "done"]
    return {
        "count": len(rows),
        "abstention_rate": round(sum(r["abstained"] for r in rows) / len(rows), 4) if rows else None,
        **{metric: _mean(_values(done, metric)) for metric in METRICS},
    }


def _by(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r[key])].append(r)
    return [{key: k, **_group_summary(v)} for k, v in sorted(groups.items())]


def _feedback_counts(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "up": sum(f["rating"] == "up" for f in items),
        "down": sum(f["rating"] == "down" for f in items),
        "comments": [f["comment"] for f in items if f.get("comment")],
    }


def _unsupported(row: dict[str, Any]) -> list[dict[str, Any]]:
    claims = (row.get("s_result") or {}).get("claims") or []
    return [c for c in claims if c.get("supported") is False]


def build_report(
    rows: list[dict[str, Any]],
    feedback: dict[str, list[dict[str, Any]]],
    thresholds: dict[str, float],
    worst: int = 20,
) -> dict[str, Any]:
    """`rows`: `AnswerStore.scored_answers()` output (score columns prefixed `s_`)."""
    scored = [r for r in rows if r.get("s_status") == "done"]
    low_faith = [r for r in scored if r["s_faithfulness"] is not None and r["s_faithfulness"] < thresholds[METRICS[0]]]

    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        days[r["created_at"].date().isoformat()].append(r)

    ranked = sorted(
        (r for r in scored if r["s_faithfulness"] is not None),
        key=lambda r: (r["s_faithfulness"], r["s_context_precision"] if r["s_context_precision"] is not None else 1.0),
    )
    documents: dict[str, dict[str, Any]] = {}
    for r in low_faith:
        for c in r["citations"]:
            doc = documents.setdefault(
                c["document_id"], {"document_id": c["document_id"], "filename": c["filename"], "answers": 0}
            )
            doc["answers"] += 1
    all_feedback = [f for r in rows for f in feedback.get(r["id"], [])]
    return {
        "count": len(rows),
        "scored": len(scored),
        "pending": sum(r.get("s_status") == "pending" for r in rows),
        "unscored": sum(r.get("s_status") is None for r in rows),
        "abstained": sum(r["abstained"] for r in rows),
        "abstention_rate": round(sum(r["abstained"] for r in rows) / len(rows), 4) if rows else None,
        "metrics": {m: metric_summary(scored, m, thresholds[m]) for m in METRICS},
        "trend": [{"day": day, **_group_summary(days[day])} for day in sorted(days)],
        "worst_answers": [
            {
                "answer_id": r["id"],
                "created_at": r["created_at"].isoformat(),
                "question": r["question"],
                "answer": r["answer"],
                "collections": r["collections"],
                "prompt_version": r["prompt_version"],
                "generator": r["generator"],
                **{m: r[f"s_{m}"] for m in METRICS},
                "unsupported_claims": _unsupported(r),
                "feedback": _feedback_counts(feedback.get(r["id"], [])),
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


def _rated(rows: list[dict[str, Any]], feedback: dict[str, list[dict[str, Any]]], rating: str) -> list[float]:
    return [
        r["s_faithfulness"]
        for r in rows
        if r.get("s_status") == "done"
        and r.get("s_faithfulness") is not None
        and any(f["rating"] == rating for f in feedback.get(r["id"], []))
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


def to_csv(rows: list[dict[str, Any]], feedback: dict[str, list[dict[str, Any]]]) -> str:
    """One line per answer; a null score is an empty cell, never 0."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        fb = _feedback_counts(feedback.get(r["id"], []))
        row = [
            r["id"],
            r["created_at"].isoformat(),
            ";".join(r["collections"]),
            r["question"],
            r["answer"],
            r["abstained"],
            r["abstain_reason"] or "",
            r["prompt_version"],
            r["generator"],
            r.get("s_status") or "unscored",
            r.get("s_scorer") or "",
            *["" if r.get(f"s_{m}") is None else r[f"s_{m}"] for m in METRICS],
            " | ".join(c["claim"] for c in _unsupported(r)),
            fb["up"],
            fb["down"],
        ]
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()

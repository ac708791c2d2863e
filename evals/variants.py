"""Variants side by side: each metric of a collection's experiment per variant, with 95% confidence intervals, and
each candidate's difference from the control.

Means (faithfulness, context precision and recall, latency, tokens, cost) get a normal-approximation interval
(mean ± z·s/√n); proportions (abstention, the share of thumbs-up among rated answers) get Wilson's interval,
which stays inside [0, 1] and is sensible for small counts. A difference whose interval excludes 0 is marked
`significant`: at 95%, per metric, without correction for looking at several metrics at once.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from evals.scores import METRICS

Z95 = statistics.NormalDist().inv_cdf(0.975)
CONTROL = "control"


class ScoreOfRow(Protocol):
    @property
    def status(self) -> str: ...
    def metric(self, name: str) -> float | None: ...


class VariantRow(Protocol):
    """An answer as the comparison reads it (the storage's report rows are these)."""

    @property
    def id(self) -> str: ...
    @property
    def variant(self) -> str | None: ...
    @property
    def abstained(self) -> bool: ...
    @property
    def prompt_version(self) -> str: ...
    @property
    def generator(self) -> str: ...
    @property
    def usage(self) -> dict[str, Any]: ...
    @property
    def timings_ms(self) -> dict[str, Any]: ...
    @property
    def score(self) -> ScoreOfRow | None: ...


class Rating(Protocol):
    @property
    def rating(self) -> str: ...


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean with a 95% normal interval; one value has no interval (None bounds), no value no mean."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "lo": None, "hi": None, "se": None}
    mean = statistics.fmean(values)
    if n == 1:
        return {"n": 1, "mean": round(mean, 4), "lo": None, "hi": None, "se": None}
    se = statistics.stdev(values) / math.sqrt(n)
    return {"n": n, "mean": round(mean, 4), "lo": round(mean - Z95 * se, 4), "hi": round(mean + Z95 * se, 4), "se": se}


def wilson(k: int, n: int) -> dict[str, Any]:
    """The share k/n with Wilson's 95% interval."""
    if n == 0:
        return {"n": 0, "k": 0, "rate": None, "lo": None, "hi": None, "se": None}
    p = k / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    se = math.sqrt(p * (1 - p) / n)
    lo, hi = round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)
    return {"n": n, "k": k, "rate": round(p, 4), "lo": lo, "hi": hi, "se": se}


def _difference(candidate: Mapping[str, Any], control: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    a, b = candidate.get(key), control.get(key)
    if a is None or b is None or candidate.get("se") is None or control.get("se") is None:
        return None
    diff = a - b
    se = math.sqrt(candidate["se"] ** 2 + control["se"] ** 2)
    lo, hi = diff - Z95 * se, diff + Z95 * se
    return {"diff": round(diff, 4), "lo": round(lo, 4), "hi": round(hi, 4), "significant": lo > 0 or hi < 0}


def _public(stat: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stat.items() if k != "se"}


def _number(mapping: Mapping[str, Any], key: str) -> float | None:
    value = mapping.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _tokens(row: VariantRow) -> float | None:
    usage = row.usage or {}
    parts = [_number(usage, "prompt_tokens"), _number(usage, "completion_tokens")]
    return None if all(p is None for p in parts) else sum(p or 0.0 for p in parts)


def _group(rows: Sequence[VariantRow], feedback: Mapping[str, Sequence[Rating]]) -> dict[str, Any]:
    done = [r for r in rows if r.score is not None and r.score.status == "done"]
    ratings = [f.rating for r in rows for f in feedback.get(r.id, [])]
    stats: dict[str, dict[str, Any]] = {
        m: mean_ci([v for r in done if r.score is not None and (v := r.score.metric(m)) is not None]) for m in METRICS
    }
    stats["abstention"] = wilson(sum(r.abstained for r in rows), len(rows))
    stats["feedback_up"] = wilson(ratings.count("up"), len(ratings))
    stats["latency_ms"] = mean_ci([v for r in rows if (v := _number(r.timings_ms or {}, "total")) is not None])
    stats["tokens"] = mean_ci([v for r in rows if (v := _tokens(r)) is not None])
    stats["cost"] = mean_ci([v for r in rows if (v := _number(r.usage or {}, "cost")) is not None])
    return stats


MEASURES = (*METRICS, "abstention", "feedback_up", "latency_ms", "tokens", "cost")


def compare_variants(rows: Sequence[VariantRow], feedback: Mapping[str, Sequence[Rating]]) -> list[dict[str, Any]]:
    """One entry per variant (control first), answers outside any experiment left out."""
    groups: dict[str, list[VariantRow]] = defaultdict(list)
    for r in rows:
        if r.variant is not None:
            groups[r.variant].append(r)
    names = sorted(groups, key=lambda name: (name != CONTROL, name))
    stats = {name: _group(groups[name], feedback) for name in names}
    out = []
    for name in names:
        group = groups[name]
        entry: dict[str, Any] = {
            "variant": name,
            "count": len(group),
            "scored": sum(r.score is not None and r.score.status == "done" for r in group),
            "prompt_versions": sorted({r.prompt_version for r in group}),
            "generators": sorted({r.generator for r in group}),
            **{m: _public(stats[name][m]) for m in MEASURES},
        }
        if name != CONTROL and CONTROL in stats:
            entry["vs_control"] = {
                m: _difference(stats[name][m], stats[CONTROL][m], "rate" if "rate" in stats[name][m] else "mean")
                for m in MEASURES
            }
        out.append(entry)
    return out

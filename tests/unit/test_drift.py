"""The drift arithmetic (evals/drift.py) and its settings (kernel/drift_settings.py)."""

from __future__ import annotations

import numpy as np
import pytest

from evals.drift import DayTraffic, Moments, breaches, day_indicators, drift_distance
from kernel.drift_settings import DriftSettings, DriftThresholds
from kernel.settings import SettingsError, load_settings


def test_indicators_of_a_day_against_its_previous_period():
    today = DayTraffic("2026-12-03", answers=10, abstained=6, top_scores=[0.3] * 10, faithfulness=[0.4] * 8)
    today.up, today.down, today.vectors = 1, 4, [[0.0, 1.0]] * 10
    before = [DayTraffic("2026-12-02", answers=10, top_scores=[0.6] * 10, vectors=[[1.0, 0.0]] * 10)]
    values = day_indicators(today, before, Moments.of([[1.0, 0.0], [0.9, 0.1]]))
    # Two sets of one direction each, orthogonal: within 1 + 1, across 0.
    assert values["query_drift_previous"] == pytest.approx(2.0)
    assert values["query_drift_collection"] == pytest.approx(1.0 + 0.9 - 2 * 0.05)
    assert values["retrieval_score_drop"] == pytest.approx(0.3)
    assert values["abstention_rate"] == 0.6 and values["faithfulness"] == 0.4 and values["feedback_positive"] == 0.2
    crossed = {b.indicator for b in breaches("2026-12-03", values, DriftThresholds(), min_n=5)}
    assert crossed == {
        "query_drift_collection",
        "query_drift_previous",
        "retrieval_score_drop",
        "abstention_rate",
        "faithfulness",
        "feedback_positive",
    }
    # Too few answers (or ratings) to judge: nothing is raised.
    assert breaches("2026-12-03", values, DriftThresholds(), min_n=11) == []


def test_nothing_to_compare_is_null_not_zero():
    values = day_indicators(DayTraffic("2026-12-03"), [], None)
    assert all(values[k] is None for k in ("query_drift_collection", "query_drift_previous", "abstention_rate"))
    assert drift_distance(Moments.of([]), Moments.of([[1.0, 0.0], [0.0, 1.0]])) is None
    assert drift_distance(Moments.of([[1.0, 0.0]]), Moments.of([[1.0, 0.0], [0.0, 1.0]])) is None  # one is no spread


def test_samples_of_one_distribution_are_about_zero_apart():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert abs(drift_distance(Moments.of(x[:2000].tolist()), Moments.of(x[2000:].tolist())) or 0) < 0.01
    shifted = x[2000:] + 0.5 * np.eye(16)[0]
    assert (drift_distance(Moments.of(x[:2000].tolist()), Moments.of(shifted.tolist())) or 0) > 0.2


def test_a_threshold_of_null_never_alerts():
    values = day_indicators(DayTraffic("d", answers=9, abstained=9), [], None)
    assert [b.indicator for b in breaches("d", values, DriftThresholds(), 1)] == ["abstention_rate"]
    assert breaches("d", values, DriftThresholds(abstention_rate=None), 1) == []


def test_the_webhook_stays_on_loopback_unless_allowed():
    assert DriftSettings(webhook_url="http://127.0.0.1:9/hook").webhook_url
    assert DriftSettings(webhook_url="http://[::1]:9/hook").webhook_url
    with pytest.raises(ValueError, match="WEBHOOK_ALLOW_REMOTE"):
        DriftSettings(webhook_url="https://hooks.example.com/x")
    assert DriftSettings(webhook_url="https://hooks.example.com/x", webhook_allow_remote=True).webhook_url
    with pytest.raises(SettingsError, match="RAG_DRIFT__WEBHOOK_URL"):
        load_settings(drift={"webhook_url": "ftp://127.0.0.1/x"})

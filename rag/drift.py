"""Drift indicators per collection and day, and the alerts they raise (issue 11).

`drift()` computes the indicators from the database (and the vector store, for a collection's mean embedding) and
changes nothing but the cache of question embeddings. `evaluate_alerts()` judges recent days against the thresholds
(RAG_DRIFT__THRESHOLDS__...), records each new alert once, counts it, sets the indicator gauges, and POSTs it to the
webhook if one is configured. The worker runs it every hour (an arq cron job): alerts then arrive whether anyone
looks at /ops or not, and a page view never sends a webhook. `POST /v1/ops/alerts/evaluate` runs it at once.

Question embeddings are made by the service's embedder on first need and kept in `question_vectors`; a question's
text is read from the answers table for that and never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from evals.drift import DayTraffic, Moments, breaches, day_indicators
from kernel.types import ChunkSelector, ChunkState
from rag.services import Services
from rag.storage.ops import OpsStore, Scope

log = logging.getLogger(__name__)

# Answers read per collection and window: days x a busy day's traffic, bounded.
MAX_ANSWERS = 100_000


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def collection_moments(svc: Services, collection: str) -> Moments | None:
    """The moments of (a sample of) the collection's active chunk vectors."""
    selector = ChunkSelector(collection=collection, state=ChunkState.active)
    vectors = await svc.store.sample_dense(selector, svc.settings.drift.collection_sample)
    return Moments.of(vectors)


async def _traffic(svc: Services, scope: Scope) -> dict[str, DayTraffic]:
    ops = OpsStore(svc.catalog.engine)
    cfg = svc.settings.drift
    facts = await ops.answer_facts(scope, MAX_ANSWERS)  # newest first
    days: dict[str, DayTraffic] = {}
    sample: dict[str, list[tuple[str, str]]] = {}
    for f in facts:
        key = f.created_at.date().isoformat()
        d = days.setdefault(key, DayTraffic(key))
        d.answers += 1
        d.abstained += f.abstained
        if f.top_score is not None:
            d.top_scores.append(f.top_score)
        if f.faithfulness is not None:
            d.faithfulness.append(f.faithfulness)
        picked = sample.setdefault(key, [])
        if len(picked) < cfg.max_questions_per_day:
            picked.append((f.id, f.question))
    for key, (up, down) in (await ops.feedback_by_day(scope)).items():
        d = days.setdefault(key, DayTraffic(key))
        d.up, d.down = up, down
    wanted = [pair for picked in sample.values() for pair in picked]
    vectors = await question_vectors(svc, ops, wanted)
    for key, picked in sample.items():
        days[key].vectors = [vectors[i] for i, _ in picked if i in vectors]
    return days


async def question_vectors(svc: Services, ops: OpsStore, wanted: list[tuple[str, str]]) -> dict[str, list[float]]:
    """{answer id: its question's embedding}: kept ones read, missing ones embedded now and kept."""
    model = svc.embedder.model_id
    found = await ops.vectors([i for i, _ in wanted], model)
    missing = [(i, q) for i, q in wanted if i not in found]
    if missing:
        embedder = svc.embedder

        def embed() -> list[list[float]]:
            return [embedder.embed_query(q) for _, q in missing]

        made = dict(zip([i for i, _ in missing], await asyncio.to_thread(embed), strict=True))
        await ops.put_vectors(made, model)
        found.update(made)
    return found


async def drift(
    svc: Services, collection: str, last_day: date, days: int, grants: frozenset[str] | None
) -> list[dict[str, Any]]:
    """The indicators of `days` days up to `last_day` (oldest first), each day against the `previous_days` before
    it, with the names of the indicators that cross their thresholds."""
    cfg = svc.settings.drift
    first = last_day - timedelta(days=days - 1)
    window = Scope(day_start(first - timedelta(days=cfg.previous_days)), day_start(last_day + timedelta(1)), collection)
    traffic = await _traffic(svc, dataclasses.replace(window, grants=grants))
    reference = await collection_moments(svc, collection)
    out = []
    for n in range(days):
        day = first + timedelta(days=n)
        key = day.isoformat()
        today = traffic.get(key, DayTraffic(key))
        before = [
            t for k in range(1, cfg.previous_days + 1) if (t := traffic.get((day - timedelta(days=k)).isoformat()))
        ]
        values = day_indicators(today, before, reference)
        crossed = breaches(key, values, cfg.thresholds, cfg.min_questions)
        out.append({"day": key, **values, "alerts": [b.indicator for b in crossed]})
    return out


def thresholds_view(svc: Services) -> dict[str, Any]:
    cfg = svc.settings.drift
    return {
        **cfg.thresholds.model_dump(),
        "min_questions": cfg.min_questions,
        "previous_days": cfg.previous_days,
    }


async def evaluate_alerts(svc: Services, today: date | None = None, days: int = 2) -> list[dict[str, Any]]:
    """Judge the last `days` days (to `today`) of every collection; record, count and send each new alert.
    Returns the new alerts."""
    ops = OpsStore(svc.catalog.engine)
    today = today or datetime.now(UTC).date()
    metrics = svc.telemetry.metrics
    raised = []
    for collection in await svc.catalog.collections.list_all():
        name = collection.name
        rows = await drift(svc, name, today, days, grants=None)
        metrics.drift(name, {k: v for k, v in rows[-1].items() if isinstance(v, float)})
        for row in rows:
            for indicator in row["alerts"]:
                value, threshold = float(row[indicator]), float(getattr(svc.settings.drift.thresholds, indicator))
                alert_id = await ops.raise_alert(row["day"], name, indicator, value, threshold)
                if alert_id is None:
                    continue  # raised before: sent once
                metrics.alert(indicator)
                alert = {
                    "id": alert_id,
                    "day": row["day"],
                    "collection": name,
                    "indicator": indicator,
                    "value": value,
                    "threshold": threshold,
                    "above": value > threshold,
                }
                alert["delivered"] = await _deliver(svc, ops, alert)
                raised.append(alert)
    return raised


async def _deliver(svc: Services, ops: OpsStore, alert: dict[str, Any]) -> bool | None:
    """POST the alert to the webhook; True when it answered 2xx, False when not, None without a webhook."""
    cfg = svc.settings.drift
    if not cfg.webhook_url:
        return None
    body = {"source": "rag", "kind": "drift_alert", "alert": alert}
    error: str | None = None
    try:
        async with httpx.AsyncClient(timeout=cfg.webhook_timeout_seconds, follow_redirects=False) as http:
            resp = await http.post(cfg.webhook_url, json=body)
        if resp.status_code >= 300:
            error = f"the webhook answered {resp.status_code}"
    except httpx.HTTPError as exc:
        error = f"the webhook could not be reached: {type(exc).__name__}"
    if error:
        log.warning("alert %s not delivered: %s", alert["id"], error)
    await ops.delivered(int(alert["id"]), error)
    svc.telemetry.metrics.alert_delivery("failed" if error else "sent")
    return error is None

"""The operations summary behind `/ops` (issue 11): per day, requests and errors (from the audit log, which records
every request the API served), answer latency percentiles, abstentions, answer-cache hits, tokens, faithfulness and
ingestion throughput; and now, the queue depth, ingestion jobs waiting and scores owed.

Tokens come from each answer's `usage` and from what models spent for the answers beside generating them, on that
day: a judge scoring them (`judge_prompt_tokens`, `judge_completion_tokens`), an LLM rewriting chat follow-ups
(`rewrite_...`), both part of the day's tokens and cost; cost from those tokens and the price table
(`RAG_COST__PRICES`, the same as `GET /v1/usage`): null, and `usage.cost_recorded` false, while no price is configured.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import numpy as np

from kernel.cost_settings import CostSettings
from kernel.usage import MODEL_ROLES
from rag.services import Services
from rag.storage.ops import AnswerFacts, OpsStore, Scope

log = logging.getLogger(__name__)

MAX_ANSWERS = 100_000
PERCENTILES = (50, 95, 99)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {f"p{p}": None for p in PERCENTILES}
    found = np.percentile(np.asarray(values, dtype=np.float64), PERCENTILES)
    return {f"p{p}": round(float(v), 1) for p, v in zip(PERCENTILES, found, strict=True)}


Beside = dict[tuple[str, str], tuple[int, int]]  # {(role, model): (prompt, completion)} spent beside the answers


def _day_cost(facts: list[AnswerFacts], spent: Beside, prices: CostSettings) -> float | None:
    """The day's cost of the answers, and of their scoring, whose model has a price (an unpriced model's tokens count
    nothing, as in /v1/usage); None without a price table."""
    if not prices.prices:
        return None
    costs = [prices.cost(f.model or "", f.prompt_tokens, f.completion_tokens) for f in facts]
    costs += [prices.cost(model, p, c) for (_, model), (p, c) in spent.items()]
    return round(sum(c for c in costs if c is not None), 6)


def _answers_day(facts: list[AnswerFacts], spent: Beside, prices: CostSettings) -> dict[str, Any]:
    n = len(facts)
    faith = [f.faithfulness for f in facts if f.faithfulness is not None]
    beside = {
        f"{role}_{kind}_tokens": sum(t[i] for (r, _), t in spent.items() if r == role)
        for role in MODEL_ROLES
        for i, kind in enumerate(("prompt", "completion"))
    }
    return {
        "answers": n,
        "latency_ms": _percentiles([f.total_ms for f in facts if f.total_ms is not None]),
        "abstention_rate": _rate(sum(f.abstained for f in facts), n),
        "cache_hit_rate": _rate(sum(f.cached for f in facts), n),
        "prompt_tokens": sum(f.prompt_tokens for f in facts) + sum(p for p, _ in spent.values()),
        "completion_tokens": sum(f.completion_tokens for f in facts) + sum(c for _, c in spent.values()),
        **beside,
        "cost": _day_cost(facts, spent, prices),
        "faithfulness": round(sum(faith) / len(faith), 4) if faith else None,
        "faithfulness_scored": len(faith),
    }


async def _now(svc: Services, ops: OpsStore, scope: Scope) -> dict[str, int | None]:
    try:
        queued: int | None = int(await svc.queue.pool.zcard(svc.queue.queue_name))
    except Exception as exc:  # the page still shows the rest; the figure says it is unknown
        log.warning("could not read the queue depth: %s", exc)
        queued = None
    return {
        "queue_depth": queued,
        "jobs_waiting": await ops.jobs_waiting(scope),
        "scores_owed": await ops.scores_owed(),
    }


async def summary(svc: Services, scope: Scope, first: date, days: int) -> dict[str, Any]:
    ops = OpsStore(svc.catalog.engine)
    facts = await ops.answer_facts(scope, MAX_ANSWERS)
    by_day: dict[str, list[AnswerFacts]] = {}
    for f in facts:
        by_day.setdefault(f.created_at.date().isoformat(), []).append(f)
    requests = await ops.requests_by_day(scope)
    spent = await ops.model_usage_by_day(scope)
    ingestion = await ops.ingestion_by_day(scope)
    rows = []
    for n in range(days):
        key = (first + timedelta(days=n)).isoformat()
        total, client, server = requests.get(key, (0, 0, 0))
        jobs = ingestion.get(key, {"succeeded": 0, "failed": 0, "chunks": 0})
        rows.append(
            {
                "day": key,
                "requests": total,
                "requests_per_minute": round(total / 1440, 4),
                "errors_4xx": client,
                "errors_5xx": server,
                "error_rate": _rate(server, total),
                **_answers_day(by_day.get(key, []), spent.get(key, {}), svc.settings.cost),
                "ingest_jobs_succeeded": jobs["succeeded"],
                "ingest_jobs_failed": jobs["failed"],
                "chunks_indexed": jobs["chunks"],
            }
        )
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    return {
        "days": rows,
        "now": await _now(svc, ops, scope),
        "usage": {"tokens_recorded": tokens > 0, "cost_recorded": any(r["cost"] is not None for r in rows)},
        "truncated": len(facts) == MAX_ANSWERS,
        # Requests and errors are read from the audit log: none are counted while it is off.
        "requests_recorded": svc.settings.audit.enabled,
    }

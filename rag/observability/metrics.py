"""The service's Prometheus metrics: one `Metrics` object per service, with a method per thing counted.

Each object registers its metrics in a registry of its own, never prometheus-client's default one, so that several
services in one process (the tests) count apart. With a multiprocess directory (`RAG_OBSERVABILITY__MULTIPROC_DIR`,
set up by `prepare_multiprocess` before any metric exists) every process writes its values there, and `render()`
adds up all processes' files: `rag api` then shows what its `rag worker` processes did.

Other parts of the service count through these methods (`tokens`, `cache`, `budget_refused`, ...): the names and
labels stay in this one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. Request and stage latencies of a CPU-bound service: a few ms (search) to a minute (a slow LLM).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
STAGES = ("embed", "search", "rerank", "generate", "score")


def prepare_multiprocess(directory: Path) -> None:
    """Switch this process to multiprocess collection into `directory`. Call it before any metric is made (the
    `rag` entry points do, right after reading settings): prometheus-client picks its value storage once."""
    from prometheus_client import values

    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()


def multiprocess_dir() -> Path | None:
    """The directory this process writes its metrics to, if it runs in multiprocess mode."""
    from prometheus_client import values

    where = os.environ.get(MULTIPROC_ENV)
    return Path(where) if where and getattr(values.ValueClass, "_multiprocess", False) else None


class Metrics:
    """Every metric the service exposes. `enabled=False` makes each method return at once (and /metrics a 404)."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "rag_http_requests", "HTTP requests by route template and status.", ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "rag_http_request_seconds", "HTTP request latency, to the last byte sent.", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.stage_seconds = Histogram(
            "rag_stage_seconds", "Time in each pipeline stage (embed, search, rerank, generate, score).", ["stage"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.answers = Counter("rag_answers", "Answers made, by generator.", ["generator"], registry=r)
        self.abstentions = Counter("rag_abstentions", "Answers that abstained, by reason.", ["reason"], registry=r)
        self.groundedness = Histogram(
            "rag_groundedness_score", "Online groundedness scores of answers, by metric (null scores left out).",
            ["metric"], buckets=SCORE_BUCKETS, registry=r,
        )
        self.ingest_jobs = Counter(
            "rag_ingest_jobs", "Ingestion job attempts by outcome (succeeded, failed, cancelled, retry, gone).",
            ["outcome"], registry=r,
        )
        self.ingest_seconds = Histogram(
            "rag_ingest_job_seconds", "Ingestion job attempt duration, by outcome.", ["outcome"],
            buckets=JOB_BUCKETS, registry=r,
        )
        self.score_jobs = Counter("rag_score_jobs", "Scoring job runs by outcome.", ["outcome"], registry=r)
        self.chunks_embedded = Counter("rag_chunks_embedded", "Chunks embedded by ingestion.", registry=r)
        self.queue_depth = Gauge(
            "rag_queue_depth", "Jobs waiting in the queue (read at scrape time).", registry=r,
            multiprocess_mode="mostrecent",
        )
        self.scores_owed = Gauge(
            "rag_scores_owed", "Answers whose score is owed (read at scrape time).", registry=r,
            multiprocess_mode="mostrecent",
        )
        self.guardrail_events = Counter(
            "rag_guardrail_events", "Guardrail events: injection guard decisions and PII redactions.",
            ["guard", "event"], registry=r,
        )
        self.tokens_total = Counter(
            "rag_tokens", "Model tokens by model and direction (in: prompt, out: completion).", ["model", "direction"],
            registry=r,
        )
        self.cache_requests = Counter(
            "rag_cache_requests", "Cache look-ups by cache and result (hit, miss).", ["cache", "result"], registry=r
        )
        self.budget_refusals = Counter(
            "rag_budget_refusals", "Requests refused (or sent to the fallback) because a budget was spent.",
            ["scope"], registry=r,
        )
        self.drift_indicators = Gauge(
            "rag_drift_indicator", "The latest day's drift indicators per collection (set when alerts are evaluated).",
            ["collection", "indicator"], registry=r, multiprocess_mode="mostrecent",
        )
        self.alerts_raised = Counter("rag_alerts", "Drift alerts raised, by indicator.", ["indicator"], registry=r)
        self.alert_deliveries = Counter(
            "rag_alert_deliveries", "Alerts POSTed to the webhook, by outcome (sent, failed).", ["outcome"], registry=r
        )
        self.gateway_attempts = Counter(
            "rag_gateway_attempts", "Model gateway attempts by endpoint and outcome (ok, error, timeout, 5xx, "
            "breaker_open, budget).", ["endpoint", "outcome"], registry=r,
        )
        self.gateway_breaker = Counter(
            "rag_gateway_breaker_transitions", "Circuit breaker state changes by endpoint and new state (opened, "
            "half-opened, closed).", ["endpoint", "state"], registry=r,
        )

    # ----- the API ---------------------------------------------------------------------------------------------
    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        if self.enabled:
            self.http_requests.labels(method, route, str(status)).inc()
            self.http_seconds.labels(method, route).observe(seconds)

    # ----- answering -------------------------------------------------------------------------------------------
    def stage(self, stage: str, seconds: float) -> None:
        if self.enabled:
            self.stage_seconds.labels(stage).observe(seconds)

    def answer(self, generator: str, abstain_reason: str | None) -> None:
        if self.enabled:
            self.answers.labels(generator).inc()
            if abstain_reason is not None:
                self.abstentions.labels(abstain_reason).inc()

    def tokens(self, model: str, prompt: int, completion: int) -> None:
        """Tokens a model read (`prompt`) and wrote (`completion`); zero counts add nothing."""
        if self.enabled:
            if prompt:
                self.tokens_total.labels(model, "in").inc(prompt)
            if completion:
                self.tokens_total.labels(model, "out").inc(completion)

    def score(self, metric: str, value: float | None) -> None:
        if self.enabled and value is not None:
            self.groundedness.labels(metric).observe(value)

    def guardrail(self, guard: str, event: str, count: int = 1) -> None:
        """`guard`: injection or pii; `event`: what it did (question_refused, chunk_excluded, redacted, ...)."""
        if self.enabled and count:
            self.guardrail_events.labels(guard, event).inc(count)

    def cache(self, cache: str, hit: bool) -> None:
        self.cache_counts(cache, int(hit), int(not hit))

    def cache_counts(self, cache: str, hits: int, misses: int) -> None:
        """`cache`: embeddings (chunks reused at ingestion), query_embeddings or answers (kernel/cache_stats.py)."""
        if self.enabled:
            if hits:
                self.cache_requests.labels(cache, "hit").inc(hits)
            if misses:
                self.cache_requests.labels(cache, "miss").inc(misses)

    def budget_refused(self, scope: str) -> None:
        """`scope`: which budget (key, collection)."""
        if self.enabled:
            self.budget_refusals.labels(scope).inc()

    def gateway_attempt(self, endpoint: str, outcome: str) -> None:
        if self.enabled:
            self.gateway_attempts.labels(endpoint, outcome).inc()

    def gateway_breaker_changed(self, endpoint: str, state: str) -> None:
        if self.enabled:
            self.gateway_breaker.labels(endpoint, state).inc()

    # ----- jobs ------------------------------------------------------------------------------------------------
    def ingest_job(self, outcome: str, seconds: float) -> None:
        if self.enabled:
            self.ingest_jobs.labels(outcome).inc()
            self.ingest_seconds.labels(outcome).observe(seconds)

    def score_job(self, outcome: str) -> None:
        if self.enabled:
            self.score_jobs.labels(outcome).inc()

    def embedded(self, chunks: int) -> None:
        if self.enabled and chunks:
            self.chunks_embedded.inc(chunks)

    def backlog(self, queued: int, owed: int) -> None:
        if self.enabled:
            self.queue_depth.set(queued)
            self.scores_owed.set(owed)

    # ----- drift and alerts (rag/drift.py) -----------------------------------------------------------------------
    def drift(self, collection: str, indicators: dict[str, float]) -> None:
        if self.enabled:
            for name, value in indicators.items():
                self.drift_indicators.labels(collection, name).set(value)

    def alert(self, indicator: str) -> None:
        if self.enabled:
            self.alerts_raised.labels(indicator).inc()

    def alert_delivery(self, outcome: str) -> None:
        if self.enabled:
            self.alert_deliveries.labels(outcome).inc()

    # ----- exposition ------------------------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type: every process's values in multiprocess mode."""
        where = multiprocess_dir()
        if where is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=str(where))
        return generate_latest(merged), CONTENT_TYPE_LATEST

"""Settings of drift indicators and their alerts (`RAG_DRIFT__...`, issue 11): the thresholds that raise an alert,
how many questions a day is judged on, and where an alert is POSTed.

Part of the settings model (`kernel/settings.py` holds the root `Settings`); kept apart so each module stays short.
"""

from __future__ import annotations

import ipaddress
from typing import Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from kernel.checks import http_url as _http_url


def loopback_url(url: str) -> bool:
    """Whether an http(s) URL names this machine (localhost or a loopback address)."""
    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DriftThresholds(BaseModel):
    """An alert is raised for a day and collection when an indicator crosses its threshold. null: never alert."""

    query_drift_collection: float | None = Field(
        default=0.05,
        ge=0.0,
        le=4.0,
        description="Most distance (unbiased squared distance of mean embeddings, MMD² with a linear kernel) of the "
        "day's questions from the collection's chunks. About 0 for on-topic traffic; 0.12 for another field's.",
    )
    query_drift_previous: float | None = Field(
        default=0.05,
        ge=0.0,
        le=4.0,
        description="Most distance (as above) of the day's questions from the previous period's questions.",
    )
    retrieval_score_drop: float | None = Field(
        default=0.08,
        ge=0.0,
        le=2.0,
        description="Most fall of the mean best dense retrieval score (cosine) from the previous period's.",
    )
    abstention_rate: float | None = Field(default=0.5, ge=0.0, le=1.0, description="Most share of abstentions.")
    faithfulness: float | None = Field(default=0.5, ge=0.0, le=1.0, description="Least mean faithfulness.")
    feedback_positive: float | None = Field(
        default=0.5, ge=0.0, le=1.0, description="Least share of 'up' among the day's feedback ratings."
    )


class DriftSettings(BaseModel):
    """Daily indicators per collection, their thresholds, and alerts (shown on /ops, counted in /metrics, POSTed
    to `webhook_url` if set). The worker evaluates them every hour; `POST /v1/ops/alerts/evaluate` does it now."""

    enabled: bool = Field(default=True, description="Evaluate the indicators hourly in the worker.")
    thresholds: DriftThresholds = DriftThresholds()
    previous_days: int = Field(
        default=7, ge=1, le=90, description="The previous period: this many days before the day judged."
    )
    min_questions: int = Field(
        default=10,
        ge=2,
        le=10_000,
        description="A day with fewer answers (or ratings, for the feedback ratio) raises no alert: too few to judge.",
    )
    max_questions_per_day: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Questions embedded per day and collection for query drift (the newest); bounds the work.",
    )
    collection_sample: int = Field(
        default=2000, ge=10, le=100_000, description="Chunk vectors read to estimate a collection's mean embedding."
    )
    webhook_url: str | None = Field(
        default=None,
        description="POST each new alert here as JSON (no question text, only figures). Loopback addresses only, "
        "unless webhook_allow_remote is true. Unset: alerts are shown and counted, not sent.",
    )
    webhook_allow_remote: bool = Field(
        default=False, description="Allow a webhook_url beyond this machine (alerts then leave it)."
    )
    webhook_timeout_seconds: float = Field(default=5.0, gt=0.0, le=60.0)

    _http = field_validator("webhook_url")(_http_url)

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> Self:
        if self.webhook_url and not self.webhook_allow_remote and not loopback_url(self.webhook_url):
            raise ValueError(
                f"the webhook {self.webhook_url!r} is not on this machine; alerts go only to loopback unless "
                "RAG_DRIFT__WEBHOOK_ALLOW_REMOTE=true"
            )
        return self

"""Settings of the operations layer: observability, caches, prompts and prompt variants (issue 11).

Part of the settings model (`kernel/settings.py` holds the root `Settings`); kept apart so each module stays short.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kernel.checks import http_url as _http_url
from kernel.types import COLLECTION_NAME_PATTERN


class ObservabilitySettings(BaseModel):
    """Metrics (`GET /metrics`), traces and logs. Nothing leaves the machine unless `otlp_endpoint` is set."""

    metrics: bool = Field(default=True, description="Count requests, stages, jobs and events; serve `GET /metrics`.")
    multiproc_dir: Path | None = Field(
        default=None,
        description="A directory shared by `rag api` and its `rag worker` processes (prometheus-client's "
        "PROMETHEUS_MULTIPROC_DIR): each process writes its metrics there and /metrics adds them up. Empty it when "
        "the deployment starts. Unset: each process counts its own (embedded mode needs nothing more).",
    )
    tracing: bool = Field(default=True, description="OpenTelemetry spans per request, pipeline stage and job.")
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces (needs the `otlp` extra). "
        "Unset: spans are made (their trace id is on every answer and log line) but sent nowhere.",
    )
    service_name: str = Field(default="rag", min_length=1, max_length=64)
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object a line, with request_id and trace_id on each."
    )
    log_text: bool = Field(
        default=False,
        description="Put questions in the request log lines. Off: logs hold ids and counts, never a question or a "
        "document's text.",
    )

    _http = field_validator("otlp_endpoint")(_http_url)


class CacheSettings(BaseModel):
    """Embedding, query-embedding and answer caches (README "Caching")."""

    embeddings: bool = Field(
        default=True,
        description="Reuse the dense vector of a chunk whose text (and embedding model) is already in the vector "
        "store instead of encoding it again: re-ingesting a document embeds only its changed chunks.",
    )
    query_embeddings: int = Field(
        default=1024, ge=0, le=1_000_000, description="Query embeddings kept in memory (LRU); 0 switches it off."
    )
    sentence_vectors: bool = Field(
        default=True,
        description="Encode each chunk's candidate answer sentences at ingestion and keep their vectors (table "
        "sentence_vectors), so the extractive generator reads them instead of encoding up to 24 sentences per "
        "answer. Documents indexed without them are answered by encoding, as before.",
    )
    answers: bool = Field(
        default=True,
        description="Serve a repeated question from an earlier answer while its documents, filters, grants, prompt "
        "version and generator are unchanged (marked cached, with the original answer id).",
    )
    answer_ttl_seconds: int = Field(
        default=86400, ge=1, description="A cached answer older than this is answered afresh."
    )
    answer_opt_out: list[str] = Field(
        default_factory=list,
        description="Collections whose answers are never served from cache (a question over any of them is "
        'answered afresh). In the environment a JSON list: RAG_CACHE__ANSWER_OPT_OUT=["news"].',
    )

    @field_validator("answer_opt_out")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [name for name in v if not re.fullmatch(COLLECTION_NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a collection name (lower-case letters, digits, '-' and '_')")
        return v


class PromptSettings(BaseModel):
    directory: Path | None = Field(
        default=None,
        description="A directory of the operator's own prompt templates (TOML, like rag/prompts/templates), looked "
        "up after the shipped ones: candidates for a variant, or a replacement for RAG_ANSWER__PROMPT.",
    )


class VariantSettings(BaseModel):
    """A canary in one collection: `share` of its conversations are answered by the candidate prompt and/or
    generator, the rest as configured (the control). The split is sticky: a hash of the conversation id (or of the
    key and question outside a conversation) decides."""

    model_config = ConfigDict(extra="forbid")  # a misspelt RAG_VARIANTS__... must not be ignored

    prompt: str | None = Field(default=None, description="The candidate prompt template's id.")
    generator: Literal["extractive", "llm"] | None = Field(
        default=None, description="The candidate generator, for requests that do not name one."
    )
    share: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of conversations the candidate answers.")
    name: str = Field(
        default="candidate", pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$", description="Recorded on its answers."
    )

    @model_validator(mode="after")
    def _something_to_try(self) -> Self:
        if self.prompt is None and self.generator is None:
            raise ValueError(
                "a variant needs a candidate prompt or generator (e.g. RAG_VARIANTS__COLLECTIONS__<name>__PROMPT=...)"
            )
        if self.name == "control":
            raise ValueError("'control' names the answers outside the candidate; name the candidate otherwise")
        return self


class VariantsSettings(BaseModel):
    """Per collection: RAG_VARIANTS__COLLECTIONS__<collection>__PROMPT / __GENERATOR / __SHARE / __NAME, or all at
    once as JSON: RAG_VARIANTS__COLLECTIONS='{"handbook": {"prompt": "grounded_answer_v2", "share": 0.1}}'.
    Promote: make the candidate the setting (RAG_ANSWER__PROMPT, RAG_LLM__...) and remove the variant; roll back:
    share 0 or remove it. The service records each change of this configuration in the audit log at start."""

    collections: dict[str, VariantSettings] = Field(default_factory=dict)
    salt: str = Field(default="", max_length=64, description="Changing it reshuffles which conversations are in.")


def _rate(v: str | None) -> str | None:
    """A rate in the notation of the `limits` library; empty or "off" turns the limit off."""
    if v is None or v.strip().lower() in ("", "off", "none"):
        return None
    from limits import parse_many  # the library that enforces it also judges the notation

    try:
        items = parse_many(v)
    except ValueError:
        raise ValueError(f"{v!r} is not a rate such as '1200/minute' or '20/second;1200/minute'") from None
    if any(item.amount < 1 for item in items):
        raise ValueError(f"{v!r} allows no request at all; use 'off' to turn the limit off")
    return v.strip()


class LimitsSettings(BaseModel):
    """What one caller may ask of the API. Requests over a limit get 429 with a Retry-After header."""

    rate: str | None = Field(
        default="1200/minute",
        description="Requests per API key (per client address in single-user mode), in the notation of the limits "
        "library: '1200/minute', '20/second;1200/minute'. 'off' turns it off. A safety net against a runaway "
        "client, not a quota: job polling at 10 per second stays under the default.",
    )
    storage: Literal["memory", "redis"] = Field(
        default="memory",
        description="memory: counted in each process (N processes allow N times the rate); redis: counted in the "
        "Redis/Valkey server the job queue uses (RAG_REDIS__URL, or the embedded Valkey), shared by all processes "
        "that use it.",
    )
    evaluate_concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="/v1/evaluate calls scored at once per process. Each runs the encoder that ingestion and online "
        "scoring share; more would make them wait.",
    )
    evaluate_wait_seconds: float = Field(
        default=0.0,
        ge=0.0,
        le=300.0,
        description="How long an /v1/evaluate call over the concurrency waits for a turn before it gets 429.",
    )
    max_json_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest JSON request body (413 beyond it); uploads and imports have their own limits "
        "(RAG_INGESTION__MAX_UPLOAD_BYTES, RAG_INGESTION__MAX_IMPORT_BYTES).",
    )

    _rate = field_validator("rate")(_rate)

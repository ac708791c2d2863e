"""Settings of the model gateway: several OpenAI-compatible endpoints, routes and a fallback chain (issue 11).

Part of the settings model (`kernel/settings.py` holds the root `Settings`); kept apart so each module stays short.
Unset (no endpoints), the single endpoint of `RAG_LLM__*` works exactly as before. With endpoints, the "llm"
generator is the gateway; `RAG_LLM__BASE_URL`, if also set, is one more endpoint of it, named "llm".
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kernel.checks import http_url as _http_url
from kernel.types import COLLECTION_NAME_PATTERN

ENDPOINT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
# "extractive" names the last resort in an answer's attempts; "llm" is RAG_LLM's endpoint when that is set.
RESERVED = ("extractive", "llm")


class GatewayEndpointSettings(BaseModel):
    """One OpenAI-compatible endpoint of the gateway."""

    model_config = ConfigDict(extra="forbid")  # a misspelt RAG_GATEWAY__ENDPOINTS__<name>__... must not be ignored

    base_url: str = Field(description="e.g. http://127.0.0.1:8080/v1")
    model: str = "default"
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="The most one attempt may take (to its first token when streaming); then the next endpoint.",
    )
    # 0 by default: a retry on the same failing endpoint only delays the next one in the chain.
    max_retries: int = Field(default=0, ge=0, le=10)
    max_tokens: int = Field(default=512, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)

    _http = field_validator("base_url")(_http_url)


class GatewayRoute(BaseModel):
    """Questions this route matches go to its chain. A route matches when the question is over one of its
    collections (any collection if none are listed) and its length is within the bounds; the first route that
    matches wins, else the gateway's default chain."""

    model_config = ConfigDict(extra="forbid")

    chain: list[str] = Field(description="Endpoint names, tried in this order.")
    collections: list[str] = Field(default_factory=list)
    min_question_chars: int = Field(default=0, ge=0)
    max_question_chars: int | None = Field(default=None, ge=1)

    @field_validator("collections")
    @classmethod
    def _collection_names(cls, v: list[str]) -> list[str]:
        bad = [name for name in v if not re.fullmatch(COLLECTION_NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a collection name (lower-case letters, digits, '-' and '_')")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.max_question_chars is not None and self.max_question_chars < self.min_question_chars:
            raise ValueError("max_question_chars must be at least min_question_chars")
        return self

    def matches(self, collections: list[str], question: str) -> bool:
        if self.collections and not set(collections) & set(self.collections):
            return False
        size = len(question)
        return size >= self.min_question_chars and (self.max_question_chars is None or size <= self.max_question_chars)


class GatewaySettings(BaseModel):
    """RAG_GATEWAY__ENDPOINTS__<name>__BASE_URL / __MODEL / __TIMEOUT_SECONDS ..., or all at once as JSON:
    RAG_GATEWAY__ENDPOINTS='{"fast": {"base_url": "http://127.0.0.1:8080/v1"}, "big": {...}}'. Each answer goes
    to the first endpoint of its chain; an endpoint that errs, times out, answers 5xx, is over budget or whose
    breaker is open hands the question to the next one, and finally (unless switched off) to the extractive
    generator. Every attempt is recorded on the answer."""

    model_config = ConfigDict(extra="forbid")

    endpoints: dict[str, GatewayEndpointSettings] = Field(default_factory=dict)
    chain: list[str] | None = Field(
        default=None,
        description="The default order of endpoints. Unset: RAG_LLM's endpoint (if set), then every endpoint as "
        'listed. In the environment a JSON list: RAG_GATEWAY__CHAIN=["fast", "big"].',
    )
    routes: list[GatewayRoute] = Field(
        default_factory=list,
        description='JSON list, e.g. RAG_GATEWAY__ROUTES=\'[{"collections": ["legal"], "chain": ["big"]}, '
        '{"min_question_chars": 400, "chain": ["big", "fast"]}]\'.',
    )
    extractive_fallback: bool = Field(
        default=True, description="When every endpoint of the chain failed, answer extractively (marked as such)."
    )
    breaker_threshold: int = Field(
        default=5, ge=1, le=1000, description="Failures in a row after which an endpoint's breaker opens."
    )
    breaker_recovery_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="How long an open breaker skips its endpoint before one request probes it again.",
    )

    @field_validator("endpoints")
    @classmethod
    def _endpoint_names(cls, v: dict[str, GatewayEndpointSettings]) -> dict[str, GatewayEndpointSettings]:
        for name in v:
            if not re.fullmatch(ENDPOINT_NAME_PATTERN, name):
                raise ValueError(f"endpoint name {name!r}: lower-case letters, digits, '-' and '_' (at most 32)")
            if name in RESERVED:
                raise ValueError(f"endpoint name {name!r} is reserved ({', '.join(RESERVED)}); choose another")
        return v

    @model_validator(mode="after")
    def _chains(self) -> Self:
        if not self.endpoints and (self.chain is not None or self.routes):
            raise ValueError("a chain or routes without endpoints: configure RAG_GATEWAY__ENDPOINTS__<name>__BASE_URL")
        if self.chain is not None and not self.chain:
            raise ValueError("RAG_GATEWAY__CHAIN is empty: name at least one endpoint, or leave it unset")
        for i, route in enumerate(self.routes):
            if not route.chain:
                raise ValueError(f"RAG_GATEWAY__ROUTES[{i}] has an empty chain: name at least one endpoint")
        return self

    def check_names(self, *, llm: bool) -> None:
        """Every chain names a configured endpoint ("llm" only when RAG_LLM__BASE_URL is set); ValueError if not."""
        known = set(self.endpoints) | ({"llm"} if llm else set())
        chains = [("RAG_GATEWAY__CHAIN", self.chain or [])]
        chains += [(f"RAG_GATEWAY__ROUTES[{i}]", r.chain) for i, r in enumerate(self.routes)]
        for where, chain in chains:
            for name in chain:
                if name not in known:
                    hint = " (set RAG_LLM__BASE_URL for 'llm')" if name == "llm" else ""
                    raise ValueError(
                        f"{where} names the unknown endpoint {name!r}{hint}; configured: {', '.join(sorted(known))}"
                    )
            if len(set(chain)) != len(chain):
                raise ValueError(f"{where} names an endpoint twice: {chain}")

    def default_chain(self, *, llm: bool) -> list[str]:
        if self.chain is not None:
            return list(self.chain)
        return (["llm"] if llm else []) + list(self.endpoints)

"""The bodies a store owner (`rag store`) and its clients (`RemoteStore`) exchange: the VectorStore protocol as JSON.

One module for both ends, so the two cannot drift apart. Every value is already a pydantic model in the kernel; these
only name the arguments of each call.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from kernel.filters import FieldType, FilterSpec
from kernel.protocols import SearchMode, SearchPlan
from kernel.types import ChunkRecord, ChunkSelector, ChunkState, Hit, SparseVector

# Paths of the calls, under one prefix so a store owner is never mistaken for another service on the same port.
PREFIX = "/store/v1"


class EnsureBody(BaseModel):
    dim: int = Field(ge=1, le=65536)


class UpsertBody(BaseModel):
    records: list[ChunkRecord]


class SelectorBody(BaseModel):
    selector: ChunkSelector


class DropGenerationsBody(BaseModel):
    collection: str
    keep: int


class SetStateBody(BaseModel):
    selector: ChunkSelector
    state: ChunkState


class CountResult(BaseModel):
    count: int


class FieldIndexBody(BaseModel):
    field: str = Field(min_length=1, max_length=256)
    type: FieldType


class PlanBody(BaseModel):
    limit: int = Field(ge=1)
    candidates: int = Field(ge=1)
    mode: SearchMode = "hybrid"
    rrf_k: int = Field(default=60, ge=1)

    @classmethod
    def of(cls, plan: SearchPlan) -> PlanBody:
        return cls(limit=plan.limit, candidates=plan.candidates, mode=plan.mode, rrf_k=plan.rrf_k)

    def plan(self) -> SearchPlan:
        return SearchPlan(limit=self.limit, candidates=self.candidates, mode=self.mode, rrf_k=self.rrf_k)


class SearchBody(BaseModel):
    dense: list[float]
    sparse: SparseVector
    spec: FilterSpec
    plan: PlanBody


class SearchResult(BaseModel):
    hits: list[Hit]


class DenseByTextBody(BaseModel):
    model_id: str = Field(min_length=1, max_length=512)
    text_sha256: list[str]


class DenseByTextResult(BaseModel):
    vectors: dict[str, list[float]]


class SampleBody(BaseModel):
    selector: ChunkSelector
    limit: int = Field(ge=1, le=100_000)


class SampleResult(BaseModel):
    vectors: list[list[float]]


class StoreError(BaseModel):
    """A refusal the caller can act on (`kind` "invalid", HTTP 409) or a store that is failing ("unavailable", 503)."""

    kind: str
    error: str

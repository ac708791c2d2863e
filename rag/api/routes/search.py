from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from rag.api.bodies import CheckedRoute
from rag.api.deps import get_services
from rag.api.errors import COMMON, errors
from rag.api.guard import note_search
from rag.api.params import CollectionName
from rag.redaction import needs_redaction
from rag.security import Asker
from rag.services import Services
from retrieval.search import SearchOptions

router = APIRouter(tags=["search"], route_class=CheckedRoute, responses=errors(*COMMON, 403, 404))
Svc = Annotated[Services, Depends(get_services)]


class SearchRequest(BaseModel):
    # strict: booleans and numbers only as JSON has them, as the schema says (lax, 0 was false and "5" was 5).
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"examples": [{"query": "When did the bridge open?", "collections": ["handbook"]}]},
    )

    query: str = Field(min_length=1, max_length=4000)
    collections: list[CollectionName] = Field(min_length=1, max_length=20)
    filters: dict[str, Any] | None = Field(default=None, max_length=32, description="ANDed per field.")
    # The schema shows the configured maximum (rag/api/schema.py); the retriever refuses more with a 422 that names
    # RAG_RETRIEVAL__MAX_TOP_K, which a fixed bound here would not.
    top_k: int = Field(default=10, ge=1)
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    rerank: bool | None = Field(default=None, description="Default: the configured reranker, if any.")


class StageScores(BaseModel):
    fused: float
    dense: float | None
    dense_rank: int | None
    sparse: float | None
    sparse_rank: int | None
    rerank: float | None


class SearchHit(BaseModel):
    chunk_id: str
    document_id: str
    version: int
    collection: str
    filename: str
    chunk_index: int
    page: int | None
    section: str | None
    text: str
    metadata: dict[str, Any]
    flags: list[str] = Field(
        default_factory=list, description='"injection": the chunk addresses the model (flagged at ingestion).'
    )
    scores: StageScores


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    timings_ms: dict[str, float]


@router.post("/v1/search", response_model=SearchResponse)
async def search(body: SearchRequest, svc: Svc, caller: Asker, request: Request) -> SearchResponse:
    # Recorded, not refused: a search query is matched against the index and no model reads it.
    note_search(svc, request, body.query)
    options = SearchOptions(
        filters=body.filters, top_k=body.top_k, mode=body.mode, rerank=body.rerank, grants=caller.grants()
    )
    result = await svc.retriever.retrieve(body.query, body.collections, options)
    texts = [h.payload["text"] for h in result.hits]
    # Hits quote the documents as citations do: a redact_answers collection must not show here what its answers
    # hide (redact_ingest chunks are redacted already; the check is cheap next to the search).
    if texts and await needs_redaction(svc.catalog.collections, body.collections):
        texts = await asyncio.to_thread(svc.redactor.redact_many, texts)
    hits = []
    for h, text in zip(result.hits, texts, strict=True):
        p = h.payload
        hits.append(
            SearchHit(
                chunk_id=h.chunk_id,
                document_id=p["document_id"],
                version=p["version"],
                collection=p["collection"],
                filename=p["filename"],
                chunk_index=p["chunk_index"],
                page=p.get("page"),
                section=p.get("section"),
                text=text,
                metadata=p.get("metadata") or {},
                flags=list(p.get("flags") or []),
                scores=StageScores(
                    fused=h.score,
                    dense=h.dense_score,
                    dense_rank=h.dense_rank,
                    sparse=h.sparse_score,
                    sparse_rank=h.sparse_rank,
                    rerank=h.rerank_score,
                ),
            )
        )
    return SearchResponse(hits=hits, timings_ms=result.timings_ms)

"""Hybrid retrieval: embed the query, fuse dense and sparse candidates, keep one version per document, drop
near-duplicates, rerank.

Only chunks of a document's active version survive: the store filters on `state == active` and every hit is then
checked against the catalog's active version, which switches in one transaction.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any, cast

from kernel.errors import InvalidInput, collection_not_found
from kernel.filters import FieldType, FilterSpec
from kernel.ports import DocumentCatalog, FieldRegistry, GenerationReader
from kernel.protocols import Embedder, SearchMode, SearchPlan, SparseEncoder, VectorStore
from kernel.settings import RerankSettings, RetrievalSettings
from kernel.types import Hit
from retrieval.filters import BUILTIN_FIELDS, parse_filters
from retrieval.rerank import Reranker

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class SearchOptions:
    filters: dict[str, Any] | None = None
    top_k: int = 10
    mode: SearchMode = "hybrid"
    rerank: bool | None = None
    # The caller's collections (None: every one). Enforced here, so the store's filter never names another.
    grants: frozenset[str] | None = None


@dataclass
class Retrieval:
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


def collapse_duplicates(hits: list[Hit], threshold: float, keep: int | None = None) -> list[Hit]:
    """Drop a hit whose word trigrams overlap a better-ranked kept hit by at least `threshold` (Jaccard).

    Stops once `keep` hits are kept: only the ones returned are worth the comparison."""
    if threshold >= 1.0:
        return hits[:keep]
    kept: list[tuple[Hit, set[tuple[str, ...]]]] = []
    for hit in hits:
        if keep is not None and len(kept) >= keep:
            break
        grams = _trigrams(str(hit.payload.get("text", "")))
        if any(len(grams & g) / max(1, len(grams | g)) >= threshold for _, g in kept):
            continue
        kept.append((hit, grams))
    return [h for h, _ in kept]


@dataclass
class Retriever:
    """Hybrid search over the vector store, restricted to each document's active version, then reranked."""

    embedder: Embedder
    sparse: SparseEncoder
    store: VectorStore
    fields: FieldRegistry
    documents: DocumentCatalog
    reranker: Reranker
    retrieval: RetrievalSettings
    rerank: RerankSettings
    # The collections' live generations (`rag reindex`): a search sees one generation of each, never a mix. None:
    # every chunk, as before generations.
    generations: GenerationReader | None = None

    async def allowed_fields(self, collections: list[str]) -> dict[str, FieldType]:
        allowed: dict[str, FieldType] = dict(BUILTIN_FIELDS)
        for declared in (await self.fields.filterable_fields(collections)).values():  # 404 for an unknown name
            allowed.update({f"metadata.{k}": cast(FieldType, v) for k, v in declared.items()})
        return allowed

    async def retrieve(self, query: str, collections: list[str], options: SearchOptions | None = None) -> Retrieval:
        """`options.rerank`: None applies the configured reranker (if any); False skips it; True requires one."""
        opts = options or SearchOptions()
        cfg = self.retrieval
        top_k = opts.top_k
        if not query.strip():
            raise InvalidInput("the query is empty")
        if top_k > cfg.max_top_k:
            raise InvalidInput(f"top_k is {top_k}; the limit is {cfg.max_top_k} (RAG_RETRIEVAL__MAX_TOP_K)")
        started = time.perf_counter()
        unique = list(dict.fromkeys(collections))
        if opts.grants is not None:
            for name in unique:
                if name not in opts.grants:
                    raise collection_not_found(name)
        spec = FilterSpec(collections=unique, conditions=parse_filters(opts.filters, await self.allowed_fields(unique)))
        if self.generations is not None:
            spec.generations = await self.generations.live(unique)

        t0 = time.perf_counter()
        dense = await asyncio.to_thread(self.embedder.embed_query, query)
        sparse = self.sparse.encode_query(query)
        t1 = time.perf_counter()
        # Over-fetch: the version check and the duplicate collapse may remove some.
        limit = min(cfg.candidates, max(top_k * 3 + 10, self.rerank.candidates))
        plan = SearchPlan(limit, candidates=max(cfg.candidates, limit), mode=opts.mode, rrf_k=cfg.rrf_k)
        hits = await self.store.search(dense, sparse, spec, plan)
        active = await self.documents.active_versions(sorted({str(h.payload.get("document_id")) for h in hits}))
        hits = [h for h in hits if active.get(str(h.payload.get("document_id"))) == h.payload.get("version")]
        t2 = time.perf_counter()
        reranker = self.reranker
        if opts.rerank and reranker.name == "none":
            raise InvalidInput("rerank was requested but no reranker is configured (RAG_RERANK__KIND)")
        if opts.rerank is not False and reranker.name != "none":
            head = hits[: self.rerank.candidates]
            hits = await reranker.rerank(query, head, len(head))
        t3 = time.perf_counter()
        # After reranking, so that of two near-copies the better-ranked one stays.
        hits = collapse_duplicates(hits, cfg.duplicate_jaccard, keep=top_k)
        t4 = time.perf_counter()
        return Retrieval(
            hits=hits,
            timings_ms={
                "embed": round((t1 - t0) * 1000, 2),
                "search": round((t2 - t1 + t4 - t3) * 1000, 2),  # the collapse counts as search
                "rerank": round((t3 - t2) * 1000, 2),
                "total": round((time.perf_counter() - started) * 1000, 2),
            },
        )

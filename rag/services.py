"""Builds every backend from settings: used by the API lifespan and by the worker's startup alike.

One `if` per backend is the whole plugin system: server URL set, the server implementation; unset, the embedded
one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from evals.checker import SupportChecker
from evals.online import AnswerScoring
from evals.scores import Scorer
from ingestion.index import Indexer
from ingestion.optimize import AutoOptimizer
from ingestion.pii import PresidioRedactor
from ingestion.sentences import SentenceEncoder
from kernel.cache_stats import CacheStats
from kernel.llm import Endpoint
from kernel.privacy import enforce_offline
from kernel.protocols import Embedder, SentenceVectors, SparseEncoder, VectorStore
from kernel.settings import Settings
from rag.blobs import BlobStore
from rag.generation.base import Generator
from rag.guarded import GuardStats
from rag.locks import CollectionLocks
from rag.observability.instruments import CountedEmbedder, CountedRedactor, MeteredScorer
from rag.observability.metrics import Metrics
from rag.observability.telemetry import Telemetry
from rag.queue import JobQueue
from rag.storage.answers import AnswerStore
from rag.storage.audit import AuditLog
from rag.storage.catalog import Catalog
from rag.storage.keys import KeyStore
from rag.storage.sentence_vectors import SentenceVectorStore
from rag.valkey import EmbeddedValkey
from retrieval.rerank import Reranker
from retrieval.search import Retriever

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    blobs: BlobStore
    store: VectorStore
    embedder: Embedder
    sparse: SparseEncoder
    queue: JobQueue
    redis_url: str
    answers: AnswerStore
    generators: dict[str, Generator]
    reranker: Reranker
    scorer: Scorer
    checker: SupportChecker | None
    indexer: Indexer
    retriever: Retriever
    scoring: AnswerScoring
    keys: KeyStore
    audit: AuditLog
    # Collections with a `pii` policy other than allow; builds its models on first use, so a service whose
    # collections never redact never loads them.
    redactor: PresidioRedactor
    # The per-collection write guard: deletes hold it, and jobs write chunks only while holding it.
    locks: CollectionLocks
    _valkey: EmbeddedValkey | None = None
    guard: GuardStats = field(default_factory=GuardStats)
    # Metrics and the service's own TracerProvider (rag/observability).
    telemetry: Telemetry = field(default_factory=Telemetry.quiet)
    # Hits and misses of the embedding, query-embedding and answer caches (README "Caching"), for metrics.
    cache_stats: CacheStats = field(default_factory=CacheStats)
    # Run first on close, newest first: what depends on these services (worker processes on the embedded Valkey).
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Builds the embedded store's search index after large imports, in the background (ingestion/optimize.py).
    optimizer: AutoOptimizer | None = None

    async def close(self) -> None:
        for hook in reversed(self.on_close):
            try:
                await hook()
            except Exception:
                log.exception("a close hook failed")
        if self.optimizer is not None:
            await self.optimizer.idle()  # the store closes next: a build ends first
        for name, closer in (
            ("parser", self.indexer.close),
            ("queue", self.queue.close),
            ("store", self.store.close),
            ("catalog", self.catalog.close),
        ):
            try:
                await closer()
            except Exception:
                log.exception("closing the %s failed", name)
        if self._valkey is not None:
            await self._valkey.stop()
        self.telemetry.close()


def make_store(settings: Settings) -> VectorStore:
    if settings.qdrant.url:
        from retrieval.stores.qdrant_server import CollectionLayout, QdrantServerStore

        cfg = settings.qdrant
        key = cfg.api_key.get_secret_value() if cfg.api_key else None
        layout = CollectionLayout(cfg.shards, cfg.replication_factor, cfg.write_consistency_factor)
        return QdrantServerStore(settings.qdrant.url, cfg.collection, key, cfg.timeout_seconds, layout=layout)
    if settings.qdrant.store_url:
        from retrieval.stores.remote import RemoteStore

        return RemoteStore(settings.qdrant.store_url, settings.qdrant.timeout_seconds)
    from retrieval.stores.qdrant_edge import QdrantEdgeStore

    return QdrantEdgeStore(settings.qdrant_path)


def make_embedder(settings: Settings) -> Embedder:
    from ingestion.embed import SentenceTransformerEmbedder, bundled_model_path

    if settings.embedding.encoder == "int8" and settings.embedding.model is None:
        from ingestion.embed_onnx import OnnxInt8Embedder, int8_model_file

        return OnnxInt8Embedder(bundled_model_path(), int8_model_file())
    return SentenceTransformerEmbedder(
        settings.embedding.model, settings.embedding.device, settings.embedding.batch_size
    )


async def build_services(settings: Settings) -> Services:
    enforce_offline()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    valkey: EmbeddedValkey | None = None
    redis_url = settings.redis.url
    if redis_url is None:
        valkey = EmbeddedValkey()
        redis_url = await valkey.start()
    catalog = Catalog(settings.database_url)
    try:
        await catalog.prepare_schema(auto_upgrade=settings.database.auto_upgrade)
        embedder = await asyncio.to_thread(make_embedder, settings)
        checker = await asyncio.to_thread(make_checker, settings)
        store = make_store(settings)
        await store.ensure(embedder.dim)
        queue = await JobQueue.connect(redis_url, settings.redis.queue_name)
    except BaseException:
        await catalog.close()
        if valkey is not None:
            await valkey.stop()
        raise
    from retrieval.sparse import Bm25Encoder

    # Serialises encoding: two jobs encoding at once on a small machine only thrash the same cores.
    encode_lock = asyncio.Lock()
    blobs = BlobStore(settings.blob_dir)
    swept = await asyncio.to_thread(blobs.sweep_incoming)
    if swept:
        log.info("removed %d partial uploads left by a process that stopped mid-request", swept)
    locks = CollectionLocks(queue.pool)
    sparse = Bm25Encoder()
    answers = AnswerStore(catalog.engine)
    reranker = make_reranker(settings, checker)
    scorer = make_scorer(settings, embedder, encode_lock, checker)
    telemetry = Telemetry.build(settings.observability)
    redactor = CountedRedactor(telemetry)
    cache_stats = CacheStats(listener=telemetry.metrics.cache_counts)
    sentence_vectors = SentenceVectorStore(catalog.engine) if settings.cache.sentence_vectors else None
    return Services(
        settings=settings,
        catalog=catalog,
        blobs=blobs,
        store=store,
        embedder=embedder,
        sparse=sparse,
        queue=queue,
        redis_url=redis_url,
        answers=answers,
        generators=make_generators(settings, embedder, checker, telemetry.metrics, sentence_vectors),
        reranker=reranker,
        scorer=scorer,
        checker=checker,
        indexer=Indexer(
            jobs=catalog.jobs,
            versions=catalog.versions,
            documents=catalog.documents,
            blobs=blobs,
            store=store,
            embedder=CountedEmbedder(embedder, telemetry),
            sparse=sparse,
            ingestion=settings.ingestion,
            chunking=settings.chunking,
            policies=catalog.collections,
            redactor=redactor,
            guard=locks,
            encode_lock=encode_lock,
            work_dir=settings.work_dir,
            stored_vectors=store if settings.cache.embeddings else None,
            cache_stats=cache_stats,
            generations=catalog.generations,
            sentences=None if sentence_vectors is None else SentenceEncoder(embedder, sentence_vectors),
        ),
        locks=locks,
        retriever=Retriever(
            query_embedder(settings, embedder, cache_stats),
            sparse,
            store,
            catalog.collections,
            catalog.documents,
            reranker,
            settings.retrieval,
            settings.rerank,
            catalog.generations,
        ),
        scoring=AnswerScoring(answers, answers.scores, queue, MeteredScorer(scorer, telemetry), settings.scoring),
        keys=KeyStore(catalog.engine),
        audit=AuditLog(catalog.engine),
        redactor=redactor,
        _valkey=valkey,
        telemetry=telemetry,
        cache_stats=cache_stats,
        optimizer=AutoOptimizer(store, settings.ingestion.optimize_after_chunks),
    )


def query_embedder(settings: Settings, embedder: Embedder, stats: CacheStats) -> Embedder:
    """The retriever's embedder: behind an LRU of query vectors unless RAG_CACHE__QUERY_EMBEDDINGS is 0."""
    if settings.cache.query_embeddings == 0:
        return embedder
    from retrieval.query_cache import CachingQueryEmbedder

    return CachingQueryEmbedder(embedder, settings.cache.query_embeddings, stats)


def make_reranker(settings: Settings, checker: SupportChecker | None = None) -> Reranker:
    from retrieval.rerank import CheckerReranker, CrossEncoderReranker, NoReranker, ScoreFusionReranker

    cfg = settings.rerank
    if cfg.kind == "score_fusion" or (cfg.kind == "checker" and checker is None):
        return ScoreFusionReranker(cfg.dense_weight)
    if cfg.kind == "checker" and checker is not None:
        return CheckerReranker(checker, ScoreFusionReranker(cfg.dense_weight), cfg.checker_weight)
    if cfg.kind == "cross_encoder" and cfg.model:
        return CrossEncoderReranker(cfg.model)
    return NoReranker()


def make_generators(
    settings: Settings,
    embedder: Embedder,
    checker: SupportChecker | None = None,
    metrics: Metrics | None = None,
    sentence_vectors: SentenceVectors | None = None,
) -> dict[str, Generator]:
    from rag.generation.extractive import ExtractiveGenerator

    picker = checker if settings.checker.answer_selection else None
    extractive = ExtractiveGenerator(embedder, checker=picker, sentence_vectors=sentence_vectors)
    generators: dict[str, Generator] = {"extractive": extractive}
    llm = settings.llm
    single: Generator | None = None
    if llm.base_url:
        from rag.generation.openai_compat import OpenAICompatibleGenerator

        key = llm.api_key.get_secret_value() if llm.api_key else None
        endpoint = Endpoint(
            llm.base_url, llm.model, key, llm.timeout_seconds, llm.max_retries, llm.max_tokens, llm.temperature
        )
        single = OpenAICompatibleGenerator(endpoint)
    if settings.gateway.endpoints:
        generators["llm"] = make_gateway(settings, generators["extractive"], single, metrics)
    elif single is not None:
        generators["llm"] = single  # one endpoint and no gateway settings: exactly as before the gateway
    return generators


def make_gateway(
    settings: Settings, extractive: Generator, single: Generator | None, metrics: Metrics | None = None
) -> Generator:
    """The model gateway over RAG_GATEWAY__ENDPOINTS (and RAG_LLM's endpoint as "llm", if set)."""
    from functools import partial

    # Imported at start: on first use its import (seconds on a busy machine) would count against the first attempt's
    # timeout, and blocks the event loop.
    import openai  # noqa: F401

    from rag.generation.extractive import enough_evidence
    from rag.generation.gateway import Breakers, GatewayCore, GatewayEndpoint, GatewayGenerator
    from rag.generation.openai_compat import OpenAICompatibleGenerator

    cfg = settings.gateway
    endpoints: dict[str, GatewayEndpoint] = {}
    if single is not None:
        endpoints["llm"] = GatewayEndpoint("llm", single, settings.llm.model, settings.llm.timeout_seconds)
    for name, ep in cfg.endpoints.items():
        key = ep.api_key.get_secret_value() if ep.api_key else None
        spec = Endpoint(ep.base_url, ep.model, key, ep.timeout_seconds, ep.max_retries, ep.max_tokens, ep.temperature)
        endpoints[name] = GatewayEndpoint(name, OpenAICompatibleGenerator(spec), ep.model, ep.timeout_seconds)
    answer = settings.answer
    core = GatewayCore(
        endpoints=endpoints,
        chain=cfg.default_chain(llm=single is not None),
        breakers=Breakers(
            cfg.breaker_threshold,
            cfg.breaker_recovery_seconds,
            metrics.gateway_breaker_changed if metrics is not None else None,
        ),
        routes=list(cfg.routes),
        fallback=extractive if cfg.extractive_fallback else None,
        sufficient=partial(enough_evidence, min_evidence=answer.min_evidence, min_answerable=answer.min_answerable),
        on_attempt=(lambda a: metrics.gateway_attempt(a.endpoint, a.outcome)) if metrics is not None else None,
    )
    return GatewayGenerator(core)


def make_checker(settings: Settings) -> SupportChecker | None:
    """The support checker, or None when it is switched off or its model file is missing (logged)."""
    cfg = settings.checker
    if not cfg.enabled:
        return None
    from evals.checker import load_checker

    return load_checker(cfg.model, cfg.threads)


def make_scorer(
    settings: Settings,
    embedder: Embedder,
    encode_lock: asyncio.Lock | None = None,
    checker: SupportChecker | None = None,
) -> Scorer:
    cfg = settings.scoring
    if cfg.judge_base_url:
        from evals.ragas_scorer import RagasScorer, judge_endpoint

        return RagasScorer(
            judge_endpoint(
                cfg.judge_base_url,
                cfg.judge_model,
                cfg.judge_api_key.get_secret_value() if cfg.judge_api_key else None,
                cfg.judge_timeout_seconds,
            )
        )
    from evals.faithfulness import OfflineFaithfulness
    from evals.offline import ClaimJudge, OfflineScorer

    judge: ClaimJudge = OfflineFaithfulness(embedder, threshold=cfg.claim_threshold)
    if checker is not None:
        from evals.checked_claims import CheckedClaims
        from evals.offline import CombinedJudge

        checked = CheckedClaims(checker, settings.checker.threshold, settings.checker.windows_per_claim)
        judge = checked if settings.checker.claims == "checker" else CombinedJudge(judge, checked)
    return OfflineScorer(judge, encode_lock)

"""Reindexing a collection without downtime (`rag reindex`): a new generation of its chunks is built beside the
live one while queries keep being answered from the live one, the catalog then switches the collection to it in
one transaction, and the old generation is dropped once the queries that started before the switch have ended.

Every search reads its collections' live generations first and filters the store on them (`Retriever`), so a
response holds chunks of one generation only: the old one's before the switch, the new one's after. Queries that
read the old generation just before the switch finish on it: the drop waits `drain_seconds` for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ingestion.parse.sandbox import ParseSandbox
from ingestion.reindex import ChunkSizes, Progress, Rebuilder
from kernel.errors import RagError
from kernel.types import ChunkSelector
from rag.services import Services

log = logging.getLogger(__name__)

DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class ReindexReport:
    collection: str
    generation: int  # the live one now
    versions: int
    chunks: int
    model_id: str
    seconds: float


def default_sizes(services: Services) -> ChunkSizes:
    """The chunking ingestion uses: the configured sizes within the model's limit."""
    budget = min(services.settings.chunking.max_tokens, services.embedder.max_tokens - 2)
    return ChunkSizes(budget, min(services.settings.chunking.overlap_tokens, budget // 2))


async def reindex_collection(
    services: Services,
    name: str,
    sizes: ChunkSizes | None = None,
    *,
    force: bool = False,
    drain_seconds: float = DRAIN_SECONDS,
    progress: Progress | None = None,
) -> ReindexReport:
    """Build generation n+1 of `name`, switch to it, drop generation n. NotFound, Conflict (one already running,
    unfinished ingestion jobs) or InvalidInput (chunk sizes) before anything is written."""
    started = time.perf_counter()
    sizes = sizes or default_sizes(services)
    sizes.check(services.embedder)
    generations = services.catalog.generations
    settings = {"max_tokens": sizes.max_tokens, "overlap_tokens": sizes.overlap_tokens}
    ticket = await generations.begin(name, {"chunking": settings, "model_id": services.embedder.model_id}, force=force)
    log.info("reindexing %s: building generation %d beside %d", name, ticket.target, ticket.current)
    redact = (await services.catalog.collections.policies([name]))[name].pii == "redact_ingest"
    parser = ParseSandbox(services.settings.ingestion)
    rebuilder = Rebuilder(
        blobs=services.blobs,
        parser=parser,
        store=services.store,
        embedder=services.embedder,
        sparse=services.sparse,
        documents=services.catalog.documents,
        guard=services.locks,
        encode_lock=services.indexer.encode_lock,
        redactor=services.redactor if redact else None,
        stored_vectors=services.store if services.settings.cache.embeddings else None,
        sentences=services.indexer.sentences,
    )
    try:
        items = await generations.items(name)
        indexed = await rebuilder.build(items, ticket.target, sizes, progress)
        await generations.switch(ticket, indexed, services.embedder.model_id)
    except BaseException:
        # The live generation was never touched: release the collection and remove what was built.
        await generations.abort(ticket)
        await _drop_built(services, name, ticket.target)
        raise
    finally:
        await parser.close()
    log.info(
        "reindexed %s: generation %d is live; dropping %d in %.1fs", name, ticket.target, ticket.current, drain_seconds
    )
    await asyncio.sleep(drain_seconds)
    await services.store.drop_generations(name, keep=ticket.target)
    if services.optimizer is not None:
        services.optimizer.note(sum(v.chunk_count for v in indexed))  # a rebuild is a large import
    return ReindexReport(
        collection=name,
        generation=ticket.target,
        versions=len(indexed),
        chunks=sum(v.chunk_count for v in indexed),
        model_id=services.embedder.model_id,
        seconds=round(time.perf_counter() - started, 2),
    )


async def _drop_built(services: Services, name: str, generation: int) -> None:
    try:
        await services.store.delete(ChunkSelector(collection=name, generation=generation))
    except RagError:
        log.exception("could not remove the unfinished generation %d of %s; the next reindex does", generation, name)

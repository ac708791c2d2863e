"""`rag reindex`: rebuild a collection's chunks (new chunking, or the model now configured) beside the live ones
and switch queries to them atomically (see `rag.reindex`).

It opens the same backends as a worker: run it with the service's RAG_DATABASE__URL, RAG_REDIS__URL and
RAG_QDRANT__URL (or RAG_QDRANT__STORE_URL) while the service keeps answering. In embedded mode the Qdrant Edge
folder belongs to the running service: stop it first, or run the store owner (`rag store`) to share it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from rag.cli_support import cli_settings


def reindex(
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection to rebuild.")],
    chunk_tokens: Annotated[
        int | None, typer.Option(help="Chunk size in tokens for the new index (default: RAG_CHUNKING__MAX_TOKENS).")
    ] = None,
    overlap_tokens: Annotated[
        int | None, typer.Option(help="Overlap between chunks (default: RAG_CHUNKING__OVERLAP_TOKENS).")
    ] = None,
    drain_seconds: Annotated[
        float, typer.Option(min=0, help="Seconds queries that began before the switch get to finish.")
    ] = 5.0,
    force: Annotated[bool, typer.Option(help="Take over a reindex of this collection whose process died.")] = False,
) -> None:
    """Re-chunk and re-embed a collection from its stored documents without downtime: queries are answered from
    the live index until the new one is complete, then switch to it at once; the old one is then dropped."""
    from kernel.errors import RagError

    settings = cli_settings()

    async def go() -> None:
        from rag.reindex import default_sizes, reindex_collection
        from rag.services import build_services

        services = await build_services(settings)
        try:
            base = default_sizes(services)
            from ingestion.reindex import ChunkSizes

            max_tokens = chunk_tokens if chunk_tokens is not None else base.max_tokens
            overlap = overlap_tokens if overlap_tokens is not None else min(base.overlap_tokens, max_tokens // 2)
            sizes = ChunkSizes(max_tokens, overlap)

            def progress(done: int, total: int) -> None:
                if done == total or done % 100 == 0:
                    typer.echo(f"  {done}/{total} versions", err=True)

            report = await reindex_collection(
                services, collection, sizes, force=force, drain_seconds=drain_seconds, progress=progress
            )
        finally:
            await services.close()
        typer.echo(
            f"{report.collection}: generation {report.generation} is live ({report.versions} versions, "
            f"{report.chunks} chunks, {report.model_id}, {report.seconds}s)"
        )

    try:
        asyncio.run(go())
    except RagError as exc:
        typer.echo(f"reindex of {collection!r} failed: {exc.message}", err=True)
        raise typer.Exit(1) from None

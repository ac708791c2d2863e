"""Ingestion throughput on SciFact, against the raw encoder on the same chunks, in the same run.

    .venv/bin/python bench/ingest.py [--limit N] [--repeat R]

Imports the corpus through the real API (import endpoint, queue, worker, Qdrant Edge, MiniLM) into a fresh data
directory, then encodes exactly the chunks that were indexed with the bare model. The ratio of the two
throughputs says how much of the machine's encoding capacity the pipeline keeps. Figures are medians of R runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import local_service, wait_job  # noqa: E402

if TYPE_CHECKING:
    from rag.services import Services

CORPUS = REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def load_body(limit: int | None) -> tuple[bytes, int]:
    lines = []
    with CORPUS.open() as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            row = json.loads(line)
            lines.append(json.dumps({"id": row["_id"], "title": row["title"], "text": row["text"]}))
    return "\n".join(lines).encode(), len(lines)


async def one_run(body: bytes, n_docs: int) -> dict[str, float]:
    from kernel.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        async with local_service(load_settings(data_dir=Path(tmp))) as (client, app):
            (await client.post("/v1/collections", json={"name": "scifact"})).raise_for_status()
            start = time.perf_counter()
            resp = await client.post("/v1/collections/scifact/documents/import", content=body)
            resp.raise_for_status()
            job = await wait_job(client, resp.json()["job_id"])
            pipeline_s = time.perf_counter() - start
            if job["status"] != "succeeded":
                raise SystemExit(f"import failed: {job}")
            svc = app.state.services
            texts = await chunk_texts(svc)
            start = time.perf_counter()
            await asyncio.to_thread(svc.embedder.embed_documents, texts)
            encoder_s = time.perf_counter() - start
    chunks = job["total"]
    assert len(texts) == chunks, (len(texts), chunks)
    return {
        "docs": n_docs,
        "chunks": chunks,
        "pipeline_s": pipeline_s,
        "docs_per_s": n_docs / pipeline_s,
        "chunks_per_s": chunks / pipeline_s,
        "encoder_chunks_per_s": chunks / encoder_s,
        "ratio": (chunks / pipeline_s) / (chunks / encoder_s),
    }


async def chunk_texts(svc: Services) -> list[str]:
    import qdrant_edge as qe

    from kernel.types import ChunkSelector
    from retrieval.stores.qdrant_edge import QdrantEdgeStore, edge_filter

    # The benchmark runs the embedded service, whose store is Qdrant Edge.
    assert isinstance(svc.store, QdrantEdgeStore)
    texts: list[str] = []
    offset = None
    flt = edge_filter(ChunkSelector(collection="scifact"))
    while True:
        points, offset = svc.store.shard.scroll(
            qe.ScrollRequest(filter=flt, limit=2000, offset=offset, with_payload=["text"])
        )
        for p in points:
            assert p.payload is not None  # requested with with_payload
            texts.append(p.payload["text"])
        if offset is None:
            return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="first N documents only (default: all 5,183)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    from kernel.privacy import enforce_offline

    enforce_offline()
    body, n_docs = load_body(args.limit)
    runs = [asyncio.run(one_run(body, n_docs)) for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"SciFact import: {int(med['docs'])} documents -> {int(med['chunks'])} chunks, {args.repeat} run(s), medians")
    print(f"  pipeline (API -> queue -> worker -> Qdrant Edge): {med['pipeline_s']:.1f} s")
    print(f"  docs/s                 {med['docs_per_s']:.1f}")
    print(f"  chunks/s               {med['chunks_per_s']:.1f}")
    print(f"  raw encoder chunks/s   {med['encoder_chunks_per_s']:.1f}   (same chunks, same model, same process)")
    print(f"  ratio pipeline/encoder {med['ratio']:.3f}   (goal >= 0.85)")


if __name__ == "__main__":
    main()

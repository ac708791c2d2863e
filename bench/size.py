"""Figures at size: the embedded Qdrant Edge store with 10k, 100k and 300k chunks.

    .venv/bin/python bench/size.py [--sizes 10000,100000,300000] [--base 400] [--queries 100] [--samples 200]

For each size, a fresh store (in a temporary directory) is filled and measured:
- ingest: chunks/s written to the store (upserts of 256 records with real payloads), embedding excluded; the
  model's own rate, measured once on the base documents, is printed beside it (it bounds a real ingestion);
- disk: the store's folder; RSS: this process (which also holds the model), and its growth since before the build;
- retrieval p50/p95 of `store.search` as the retriever calls it (hybrid, its default candidates and limit, the
  collection, state and generation filter), for 1 client and for 8 concurrent clients;
  before and after `optimize()` (Edge builds its HNSW index only when asked; the service does it by itself after
  RAG_INGESTION__OPTIMIZE_AFTER_CHUNKS written chunks, see ingestion/optimize.py).

Embedding 100k chunks with the real model takes hours on this machine (~19 chunks/s), so the chunks are synthetic:
`--base` SciFact abstracts are embedded once with the real model, and every chunk is a copy of one of them with a
distinct id and its dense vector slightly perturbed (Gaussian noise, cosine ~0.95 to the original, renormalised);
the sparse vector and text are the original's. Queries are real SciFact queries embedded with the real model.
Latencies are wall-clock on a shared machine: compare figures of one run with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kernel.filters import FilterSpec  # noqa: E402
from kernel.protocols import SearchPlan  # noqa: E402
from kernel.settings import load_settings  # noqa: E402
from kernel.types import ChunkRecord, SparseVector  # noqa: E402
from retrieval.sparse import Bm25Encoder  # noqa: E402
from retrieval.stores.qdrant_edge import QdrantEdgeStore  # noqa: E402

SHARED = Path(os.environ.get("RAG_SHARED_DATA", REPO.parent / "shared" / "data"))
CORPUS = SHARED / "scifact" / "corpus.jsonl"
QUERIES = SHARED / "scifact" / "queries.jsonl"
BATCH = 256
COLLECTION = "size"


def read_jsonl(path: Path, limit: int) -> list[dict]:
    with path.open() as fh:
        return [json.loads(line) for _, line in zip(range(limit), fh, strict=False)]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Base:
    """The real part: SciFact abstracts and queries, embedded once."""

    def __init__(self, n_docs: int, n_queries: int) -> None:
        from rag.services import make_embedder

        settings = load_settings()
        self.retrieval, self.rerank = settings.retrieval, settings.rerank
        embedder = make_embedder(settings)
        bm25 = Bm25Encoder()
        docs = read_jsonl(CORPUS, n_docs)
        self.texts = [f"{d['title']}\n\n{d['text']}" for d in docs]
        started = time.perf_counter()
        self.dense = np.asarray(embedder.embed_documents(self.texts), dtype=np.float32)
        self.embed_rate = len(self.texts) / (time.perf_counter() - started)
        self.sparse = [bm25.encode_document(t) for t in self.texts]
        queries = read_jsonl(QUERIES, n_queries)
        self.queries = [(embedder.embed_query(q["text"]), bm25.encode_query(q["text"])) for q in queries]
        self.model_id = embedder.model_id

    def plan(self) -> SearchPlan:
        """The plan the retriever uses for top_k=10 (retrieval/search.py)."""
        limit = min(self.retrieval.candidates, max(10 * 3 + 10, self.rerank.candidates))
        return SearchPlan(limit, candidates=max(self.retrieval.candidates, limit), rrf_k=self.retrieval.rrf_k)

    def records(self, start: int, count: int, rng: np.random.Generator) -> list[ChunkRecord]:
        idx = np.arange(start, start + count) % len(self.texts)
        noise = rng.normal(0.0, 0.016, size=(count, self.dense.shape[1])).astype(np.float32)
        vecs = self.dense[idx] + noise
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        out = []
        for j, (i, vec) in enumerate(zip(idx.tolist(), vecs.tolist(), strict=True)):
            n = start + j
            sp = self.sparse[i]
            out.append(
                ChunkRecord(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"size:{n}")),
                    dense=vec,
                    sparse=SparseVector(indices=sp.indices, values=sp.values),
                    payload={
                        "collection": COLLECTION,
                        "document_id": f"doc-{n // 4}",
                        "version": 1,
                        "chunk_index": n % 4,
                        "text": self.texts[i],
                        "state": "active",
                        "generation": 0,
                        "model_id": self.model_id,
                        "job_id": "bench",
                        "created_at": "2026-12-03T00:00:00+00:00",
                        "metadata": {},
                    },
                )
            )
        return out


async def latencies(store: QdrantEdgeStore, base: Base, clients: int, samples: int) -> list[float]:
    spec = FilterSpec(collections=[COLLECTION], generations={COLLECTION: 0})
    plan = base.plan()
    out: list[float] = []

    async def client(lane: int) -> None:
        for k in range(lane, samples, clients):
            dense, sparse = base.queries[k % len(base.queries)]
            t = time.perf_counter()
            hits = await store.search(dense, sparse, spec, plan)
            out.append((time.perf_counter() - t) * 1000)
            assert hits, "a search found nothing"

    await asyncio.gather(*(client(lane) for lane in range(clients)))
    return out


async def measure(store: QdrantEdgeStore, base: Base, samples: int) -> dict[str, float]:
    await latencies(store, base, 1, 10)  # warm up: first touches of the files
    figures = {}
    for clients in (1, 8):
        ms = await latencies(store, base, clients, samples)
        figures[f"p50_{clients}"] = statistics.median(ms)
        figures[f"p95_{clients}"] = pct(ms, 0.95)
    return figures


async def one_size(size: int, base: Base, samples: int, workdir: Path) -> dict[str, float]:
    path = workdir / f"edge-{size}"
    rss_before = rss_mb()
    store = QdrantEdgeStore(path)
    await store.ensure(base.dense.shape[1])
    rng = np.random.default_rng(size)
    written, upsert_s = 0, 0.0
    while written < size:
        records = base.records(written, min(BATCH, size - written), rng)
        t = time.perf_counter()
        await store.upsert(records)
        upsert_s += time.perf_counter() - t
        written += len(records)
    row: dict[str, float] = {"size": size, "ingest_cps": size / upsert_s}
    row |= {f"{k}_before": v for k, v in (await measure(store, base, samples)).items()}
    t = time.perf_counter()
    await store.optimize()
    row["optimize_s"] = time.perf_counter() - t
    row |= {f"{k}_after": v for k, v in (await measure(store, base, samples)).items()}
    row["disk_mb"] = disk_mb(path)
    row["rss_mb"], row["rss_growth_mb"] = rss_mb(), rss_mb() - rss_before
    await store.close()
    shutil.rmtree(path, ignore_errors=True)
    return row


def show(row: dict[str, float], base: Base) -> None:
    print(
        f"\n== {int(row['size']):,} chunks ==\n"
        f"ingest (store upserts, embedding excluded): {row['ingest_cps']:,.0f} chunks/s; "
        f"the model embeds {base.embed_rate:.1f} chunks/s here\n"
        f"disk {row['disk_mb']:,.0f} MB; RSS {row['rss_mb']:,.0f} MB (+{row['rss_growth_mb']:,.0f} MB for this store)\n"
        f"optimize(): {row['optimize_s']:.1f} s\n"
        f"retrieval ms        p50(1)  p95(1)  p50(8)  p95(8)\n"
        f"  before optimize  {row['p50_1_before']:7.1f} {row['p95_1_before']:7.1f} "
        f"{row['p50_8_before']:7.1f} {row['p95_8_before']:7.1f}\n"
        f"  after optimize   {row['p50_1_after']:7.1f} {row['p95_1_after']:7.1f} "
        f"{row['p50_8_after']:7.1f} {row['p95_8_after']:7.1f}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,300000", help="Chunk counts, comma-separated.")
    parser.add_argument("--base", type=int, default=400, help="SciFact abstracts embedded with the real model.")
    parser.add_argument("--queries", type=int, default=100, help="SciFact queries embedded with the real model.")
    parser.add_argument("--samples", type=int, default=200, help="Searches per latency figure.")
    parser.add_argument("--work-dir", type=Path, default=None, help="Where the stores are built (default: /tmp).")
    args = parser.parse_args()
    base = Base(args.base, args.queries)
    print(f"bench/size.py {' '.join(sys.argv[1:])}: base of {len(base.texts)} abstracts ({base.model_id})")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            show(await one_size(size, base, args.samples, Path(tmp)), base)


if __name__ == "__main__":
    asyncio.run(main())

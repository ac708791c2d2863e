"""Retrieval quality on SciFact: dense, sparse, hybrid (and hybrid+rerank when a reranker is configured),
on the train and test splits, next to a bm25s baseline computed in the same run.

    .venv/bin/python bench/retrieval.py [--data-dir DIR] [--splits train,test]

The collection is built through the import API into DIR (kept between runs: the first run ingests the corpus,
about ten minutes here). Parameters are chosen on train only; test is for reporting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import scifact  # noqa: E402
from bench.common import local_service, wait_job  # noqa: E402


async def ensure_collection(client: httpx.AsyncClient, rows: list[dict]) -> None:
    resp = await client.get("/v1/collections/scifact")
    if resp.status_code == 200 and resp.json()["document_count"] == len(rows):
        return
    if resp.status_code == 404:
        (await client.post("/v1/collections", json={"name": "scifact"})).raise_for_status()
    started = time.perf_counter()
    res = (await client.post("/v1/collections/scifact/documents/import", content=scifact.import_body(rows))).json()
    if res.get("job_id"):
        job = await wait_job(client, res["job_id"], interval=1.0)
        print(f"indexed SciFact: {job['status']}, {job['total']} chunks in {time.perf_counter() - started:.0f} s")


async def run_mode(client: httpx.AsyncClient, qs: dict[str, str], mode: str) -> dict:
    """Raw hits per query (top 100 chunks, no reranking) and the median latency of /v1/search."""
    hits: dict[str, list[dict]] = {}
    latencies = []
    for qid, text in qs.items():
        t = time.perf_counter()
        resp = await client.post(
            "/v1/search", json={"query": text, "collections": ["scifact"], "top_k": 100, "mode": mode, "rerank": False}
        )
        latencies.append(time.perf_counter() - t)
        resp.raise_for_status()
        hits[qid] = resp.json()["hits"]
    latencies.sort()
    return {"hits": hits, "p50_ms": 1000 * latencies[len(latencies) // 2]}


def doc_runs(hits: dict[str, list[dict]], keys: dict[str, str]) -> dict[str, list[str]]:
    """Chunk rankings to document rankings: a document ranks where its best chunk does."""
    runs = {}
    for qid, ranked_hits in hits.items():
        ranked: list[str] = []
        for hit in ranked_hits:
            doc = keys[hit["document_id"]]
            if doc not in ranked:
                ranked.append(doc)
        runs[qid] = ranked
    return runs


async def score_fusion(hits: dict[str, list[dict]], alpha: float, depth: int = 50) -> dict[str, list[dict]]:
    """The score_fusion reranker (retrieval/rerank.py) applied to the top `depth` fused hits of each query."""
    from rag.types import Hit
    from retrieval.rerank import ScoreFusionReranker

    reranker = ScoreFusionReranker(alpha)
    out = {}
    for qid, ranked in hits.items():
        objs = [
            Hit(
                chunk_id=h["chunk_id"],
                score=h["scores"]["fused"],
                dense_score=h["scores"]["dense"],
                sparse_score=h["scores"]["sparse"],
                payload={"i": i},
            )
            for i, h in enumerate(ranked[:depth])
        ]
        reranked = await reranker.rerank("", objs, depth)
        order = [o.payload["i"] for o in reranked]
        out[qid] = [ranked[i] for i in order] + ranked[depth:]
    return out


def bm25_runs(rows: list[dict], qs: dict[str, str]) -> dict[str, list[str]]:
    import bm25s

    ids = [r["_id"] for r in rows]
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([f"{r['title']} {r['text']}" for r in rows], stopwords="en", show_progress=False),
        show_progress=False,
    )
    qids = list(qs)
    results, _ = retriever.retrieve(
        bm25s.tokenize([qs[q] for q in qids], stopwords="en", show_progress=False), k=100, show_progress=False
    )
    return {q: [ids[i] for i in row] for q, row in zip(qids, results, strict=True)}


async def main_async(args: argparse.Namespace) -> None:
    from rag.settings import load_settings

    rows = scifact.corpus()
    queries = scifact.queries()
    settings = load_settings(data_dir=Path(args.data_dir), retrieval={"max_top_k": 100})
    async with local_service(settings) as (client, app):
        await ensure_collection(client, rows)
        keys = {}
        offset = 0
        while page := (await client.get(f"/v1/collections/scifact/documents?limit=1000&offset={offset}")).json():
            keys.update({d["document_id"]: d["key"] for d in page})
            offset += len(page)
        svc = app.state.services
        chosen: dict[str, float] = {}
        for split in args.splits.split(","):
            judgments = scifact.qrels(split)
            qs = {q: queries[q] for q in judgments}
            print(f"\nSciFact {split}: {len(qs)} queries")
            print(f"  {'method':<30} {'nDCG@10':>8} {'R@100':>8} {'p50 ms':>8}")
            base = scifact.evaluate(bm25_runs(rows, qs), judgments)
            print(f"  {'bm25s baseline':<30} {base['ndcg@10']:8.4f} {base['recall@100']:8.4f} {'':>8}")
            results = {}
            for mode in ("dense", "sparse", "hybrid"):
                results[mode] = await run_mode(client, qs, mode)
                m = scifact.evaluate(doc_runs(results[mode]["hits"], keys), judgments)
                print(f"  {mode:<30} {m['ndcg@10']:8.4f} {m['recall@100']:8.4f} {results[mode]['p50_ms']:8.1f}")
            if split == "train":
                # Parameters are chosen here, on train only.
                default_k = svc.settings.retrieval.rrf_k
                for k in (10, 30, 100):
                    svc.settings.retrieval.rrf_k = k
                    out = await run_mode(client, qs, "hybrid")
                    m = scifact.evaluate(doc_runs(out["hits"], keys), judgments)
                    print(f"  {f'hybrid rrf_k={k}':<30} {m['ndcg@10']:8.4f} {m['recall@100']:8.4f}")
                svc.settings.retrieval.rrf_k = default_k
                sweep = {}
                for alpha in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                    runs = doc_runs(await score_fusion(results["hybrid"]["hits"], alpha), keys)
                    sweep[alpha] = scifact.evaluate(runs, judgments)
                    print(
                        f"  {f'hybrid+score_fusion a={alpha}':<30} {sweep[alpha]['ndcg@10']:8.4f} "
                        f"{sweep[alpha]['recall@100']:8.4f}"
                    )
                chosen["alpha"] = max(sweep, key=lambda a: sweep[a]["ndcg@10"])
            if "alpha" in chosen:
                alpha = chosen["alpha"]
                m = scifact.evaluate(doc_runs(await score_fusion(results["hybrid"]["hits"], alpha), keys), judgments)
                label = f"hybrid+rerank (a={alpha}, train)"
                print(f"  {label:<30} {m['ndcg@10']:8.4f} {m['recall@100']:8.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO / "bench" / ".data" / "scifact"))
    parser.add_argument("--splits", default="train,test")
    args = parser.parse_args()
    from rag.privacy import enforce_offline

    enforce_offline()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

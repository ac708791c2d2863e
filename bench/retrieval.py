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


async def run_mode(client: httpx.AsyncClient, qs: dict[str, str], mode: str, keys: dict[str, str]) -> dict:
    runs: dict[str, list[str]] = {}
    latencies = []
    for qid, text in qs.items():
        t = time.perf_counter()
        resp = await client.post(
            "/v1/search", json={"query": text, "collections": ["scifact"], "top_k": 100, "mode": mode}
        )
        latencies.append(time.perf_counter() - t)
        resp.raise_for_status()
        ranked: list[str] = []
        for hit in resp.json()["hits"]:
            doc = keys[hit["document_id"]]
            if doc not in ranked:
                ranked.append(doc)
        runs[qid] = ranked
    latencies.sort()
    return {"runs": runs, "p50_ms": 1000 * latencies[len(latencies) // 2]}


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
    async with local_service(settings) as (client, _app):
        await ensure_collection(client, rows)
        keys = {}
        offset = 0
        while page := (await client.get(f"/v1/collections/scifact/documents?limit=1000&offset={offset}")).json():
            keys.update({d["document_id"]: d["key"] for d in page})
            offset += len(page)
        for split in args.splits.split(","):
            judgments = scifact.qrels(split)
            qs = {q: queries[q] for q in judgments}
            print(f"\nSciFact {split}: {len(qs)} queries")
            print(f"  {'method':<18} {'nDCG@10':>8} {'R@100':>8} {'p50 ms':>8}")
            base = scifact.evaluate(bm25_runs(rows, qs), judgments)
            print(f"  {'bm25s baseline':<18} {base['ndcg@10']:8.4f} {base['recall@100']:8.4f} {'':>8}")
            for mode in ("dense", "sparse", "hybrid"):
                out = await run_mode(client, qs, mode, keys)
                m = scifact.evaluate(out["runs"], judgments)
                print(f"  {mode:<18} {m['ndcg@10']:8.4f} {m['recall@100']:8.4f} {out['p50_ms']:8.1f}")


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

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import scifact  # noqa: E402
from bench.common import local_service, wait_job  # noqa: E402
from retrieval.rerank import Reranker  # noqa: E402

if TYPE_CHECKING:
    from kernel.protocols import PassageChecker


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


async def rerank_runs(
    hits: dict[str, list[dict]], qs: dict[str, str], reranker: Reranker, depth: int
) -> dict[str, list[dict]]:
    """A service reranker (retrieval/rerank.py) applied to the top `depth` fused hits of each query."""
    from kernel.types import Hit

    out = {}
    for qid, ranked in hits.items():
        objs = [
            Hit(
                chunk_id=h["chunk_id"],
                score=h["scores"]["fused"],
                dense_score=h["scores"]["dense"],
                sparse_score=h["scores"]["sparse"],
                payload={"i": i, "text": h["text"]},
            )
            for i, h in enumerate(ranked[:depth])
        ]
        reranked = await reranker.rerank(qs.get(qid, ""), objs, depth)
        order = [o.payload["i"] for o in reranked]
        out[qid] = [ranked[i] for i in order] + ranked[depth:]
    return out


async def score_fusion(hits: dict[str, list[dict]], alpha: float, depth: int = 50) -> dict[str, list[dict]]:
    from retrieval.rerank import ScoreFusionReranker

    return await rerank_runs(hits, {}, ScoreFusionReranker(alpha), depth)


class _Memo:
    """The checker's probabilities, kept per (query, passage): every blend weight reuses them."""

    def __init__(self, checker: PassageChecker) -> None:
        self._checker = checker
        self._seen: dict[tuple[str, str], float] = {}

    def answers(self, question: str, passages: Sequence[str]) -> list[float]:
        missing = [p for p in dict.fromkeys(passages) if (question, p) not in self._seen]
        for p, prob in zip(missing, self._checker.answers(question, missing), strict=True):
            self._seen[(question, p)] = prob
        return [self._seen[(question, p)] for p in passages]


async def checker_rerank(
    hits: dict[str, list[dict]], qs: dict[str, str], memo: _Memo, weight: float, alpha: float, depth: int
) -> dict[str, list[dict]]:
    from retrieval.rerank import CheckerReranker, ScoreFusionReranker

    return await rerank_runs(hits, qs, CheckerReranker(memo, ScoreFusionReranker(alpha), weight), depth)


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
    from kernel.settings import load_settings

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
            if svc.checker is not None and args.checker_depth:
                data = SplitRuns(split, results["hybrid"]["hits"], qs, keys, judgments)
                await report_checker(args, svc.checker, data, chosen)


@dataclass
class SplitRuns:
    split: str
    hits: dict[str, list[dict]]
    qs: dict[str, str]
    keys: dict[str, str]
    judgments: dict[str, dict[str, int]]


async def report_checker(args: argparse.Namespace, checker: PassageChecker, data: SplitRuns, chosen: dict) -> None:
    """The checker reranker over the top --checker-depth hybrid hits: the blend weight is chosen on (a sample of)
    train, and the chosen weight is reported on test. Its time per query is printed beside."""
    import random

    split, hits, qs, keys, judgments = data.split, data.hits, data.qs, data.keys, data.judgments
    alpha = chosen.get("alpha", 0.4)
    memo = _Memo(checker)
    ids = sorted(qs)
    if split == "train" and args.checker_queries and len(ids) > args.checker_queries:
        ids = sorted(random.Random(7).sample(ids, args.checker_queries))
    sub_hits, sub_judgments = {q: hits[q] for q in ids}, {q: judgments[q] for q in ids}
    base = scifact.evaluate(doc_runs(await score_fusion(sub_hits, alpha), keys), sub_judgments)
    print(f"  {f'score_fusion on {len(ids)} queries':<30} {base['ndcg@10']:8.4f} {base['recall@100']:8.4f}")
    weights = (0.2, 0.4, 0.6, 0.8, 1.0) if split == "train" else (chosen.get("checker_weight", 0.5),)
    sweep = {}
    for w in weights:
        started = time.perf_counter()
        runs = doc_runs(await checker_rerank(sub_hits, qs, memo, w, alpha, args.checker_depth), keys)
        per_query_ms = 1000 * (time.perf_counter() - started) / len(ids)
        sweep[w] = scifact.evaluate(runs, sub_judgments)
        label = f"+checker w={w} top{args.checker_depth}"
        print(f"  {label:<30} {sweep[w]['ndcg@10']:8.4f} {sweep[w]['recall@100']:8.4f} {per_query_ms:8.1f} ms/q")
    if split == "train":
        chosen["checker_weight"] = max(sweep, key=lambda w: sweep[w]["ndcg@10"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO / "bench" / ".data" / "scifact"))
    parser.add_argument("--splits", default="train,test")
    parser.add_argument("--checker-depth", type=int, default=20, help="hits the checker reranks (0: skip)")
    parser.add_argument("--checker-queries", type=int, default=200, help="train queries for the checker sweep")
    args = parser.parse_args()
    from kernel.privacy import enforce_offline

    enforce_offline()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

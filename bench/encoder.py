"""The int8 ONNX encoder against the PyTorch one, in one run: encoding speed, agreement of the vectors, and SciFact
test nDCG@10 through the service with each.

    .venv/bin/python bench/encoder.py [--limit 500] [--rounds 3]

Speed: chunk-sized texts (SciFact abstracts, "title. text", cut at the model's window as chunks are) encoded by
each encoder in alternating rounds; medians of chunks/s. Agreement: cosine of each text's int8 vector with its
fp32 vector. Retrieval: a service per encoder indexes the same documents (every abstract a test claim is judged
against, then others up to --limit) through the import API and answers the test claims on /v1/search (hybrid,
the default, and dense alone, which isolates the encoder); nDCG@10 and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import scifact  # noqa: E402
from bench.common import local_service, wait_job  # noqa: E402
from bench.retrieval import doc_runs, run_mode  # noqa: E402


def subset(limit: int) -> list[dict]:
    rows = scifact.corpus()
    judged = {d for rel in scifact.qrels("test").values() for d in rel}
    first = [r for r in rows if r["_id"] in judged]
    rest = [r for r in rows if r["_id"] not in judged]
    return first + rest[: max(0, limit - len(first))]


def speed(encoders: dict, texts: list[str], rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, enc in encoders.items():
            started = time.perf_counter()
            enc.embed_documents(texts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    return rates


async def ndcg(encoder: str, rows: list[dict]) -> dict[str, float]:
    from kernel.settings import load_settings

    judgments = scifact.qrels("test")
    queries = scifact.queries()
    qs = {q: queries[q] for q in judgments}
    with tempfile.TemporaryDirectory(prefix="rag-encoder-") as tmp:
        settings = load_settings(
            data_dir=Path(tmp),
            embedding={"encoder": encoder},
            retrieval={"max_top_k": 100},
            scoring={"enabled": False},
            cache={"sentence_vectors": False},
        )
        async with local_service(settings) as (client, _app):
            (await client.post("/v1/collections", json={"name": "scifact"})).raise_for_status()
            started = time.perf_counter()
            res = await client.post("/v1/collections/scifact/documents/import", content=scifact.import_body(rows))
            job = await wait_job(client, res.json()["job_id"], interval=0.5)
            assert job["status"] == "succeeded", job
            took = time.perf_counter() - started
            keys, offset = {}, 0
            while page := (await client.get(f"/v1/collections/scifact/documents?limit=1000&offset={offset}")).json():
                keys.update({d["document_id"]: d["key"] for d in page})
                offset += len(page)
            out = {"ingest_s": took, "chunks": float(job["total"])}
            for mode in ("hybrid", "dense"):
                hits = (await run_mode(client, qs, mode))["hits"]
                out[mode] = scifact.evaluate(doc_runs(hits, keys), judgments)["ndcg@10"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=500, help="documents (test-judged ones first)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed-texts", type=int, default=0, help="texts for speed and agreement (0: all)")
    parser.add_argument("--no-retrieval", action="store_true", help="speed and agreement only")
    args = parser.parse_args()
    from kernel.privacy import enforce_offline

    enforce_offline()
    from ingestion.embed import SentenceTransformerEmbedder, bundled_model_path
    from ingestion.embed_onnx import OnnxInt8Embedder, int8_model_file

    rows = subset(args.limit)
    texts = [f"{r['title']}. {r['text']}" for r in rows][: args.speed_texts or None]
    fp32 = SentenceTransformerEmbedder(None)
    int8 = OnnxInt8Embedder(bundled_model_path(), int8_model_file())
    int8_b32 = OnnxInt8Embedder(bundled_model_path(), int8_model_file(), batch_size=32)
    tokens = fp32.count_tokens(texts)
    print(f"{len(texts)} texts, median {statistics.median(tokens):.0f} word pieces (window {fp32.max_tokens})")
    fp32.embed_documents(texts[:8]), int8.embed_documents(texts[:8]), int8_b32.embed_documents(texts[:8])  # warm
    rates = speed({"pytorch fp32": fp32, "int8 (1/run)": int8, "int8 (32/run)": int8_b32}, texts, args.rounds)
    base = statistics.median(rates["pytorch fp32"])
    for name, r in rates.items():
        m = statistics.median(r)
        each = ", ".join(f"{x:.1f}" for x in r)
        print(f"  {name:<14} {m:7.1f} chunks/s (median of {len(r)}: {each})  x{m / base:.2f}")
    a, b = np.asarray(fp32.embed_documents(texts)), np.asarray(int8.embed_documents(texts))
    cos = (a * b).sum(axis=1)
    print(
        f"cosine int8 vs fp32 over {len(cos)} texts: median {np.median(cos):.4f}, p5 {np.percentile(cos, 5):.4f}, "
        f"min {cos.min():.4f}"
    )
    if args.no_retrieval:
        return
    results = {enc: asyncio.run(ndcg(enc, rows)) for enc in ("pytorch", "int8")}
    for enc, got in results.items():
        print(
            f"  {enc:<8} SciFact test ({len(rows)} docs, {got['chunks']:.0f} chunks, ingest {got['ingest_s']:.0f} s): "
            f"nDCG@10 hybrid {got['hybrid']:.4f}, dense {got['dense']:.4f}"
        )
    for mode in ("hybrid", "dense"):
        print(f"  nDCG@10 {mode} int8 - fp32: {results['int8'][mode] - results['pytorch'][mode]:+.4f}")


if __name__ == "__main__":
    main()

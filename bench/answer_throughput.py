"""Extractive answers per second with 8 clients, before (sentence vectors off: every answer encodes its candidate
sentences) and after (vectors stored at ingestion and read when answering), in one run, on CLAP-NQ dev.

    .venv/bin/python bench/answer_throughput.py [--clients 8] [--questions 300]

Each side is its own embedded service (scoring and the answer cache off, so every request answers afresh) with
all CLAP-NQ dev passages in one collection. Every question is asked once through /v1/query by N concurrent
clients. Prints answers/s, request p50/p95, the generate stage's p50, and the CLAP-NQ figures of bench/abstain.py
at the configured threshold (answerable answered, answers citing the gold passage, unanswerable abstained), which
must be the same on both sides, and how many answers differ in text.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.abstain import load  # noqa: E402
from bench.common import local_service, wait_job  # noqa: E402
from bench.query import pct  # noqa: E402


async def side(stored: bool, rows: list[dict], clients: int) -> dict:
    from kernel.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="rag-throughput-") as tmp:
        settings = load_settings(
            data_dir=Path(tmp),
            scoring={"enabled": False},
            cache={"sentence_vectors": stored, "answers": False},
            limits={"rate": "off"},
        )
        async with local_service(settings) as (client, _app):
            (await client.post("/v1/collections", json={"name": "clapnq"})).raise_for_status()
            body = "\n".join(
                json.dumps({"id": r["gold"], "title": r["passage"]["title"], "text": r["passage"]["text"]})
                for r in rows
            ).encode()
            started = time.perf_counter()
            res = (await client.post("/v1/collections/clapnq/documents/import", content=body)).json()
            job = await wait_job(client, res["job_id"])
            assert job["status"] == "succeeded", job
            ingest_s = time.perf_counter() - started
            docs, offset = {}, 0
            while page := (await client.get(f"/v1/collections/clapnq/documents?limit=1000&offset={offset}")).json():
                docs.update({d["document_id"]: d["key"] for d in page})
                offset += len(page)

            async def ask(r: dict) -> dict:
                t = time.perf_counter()
                resp = await client.post(
                    "/v1/query", json={"question": r["question"], "collections": ["clapnq"], "generator": "extractive"}
                )
                took = time.perf_counter() - t
                resp.raise_for_status()
                out = resp.json()
                return {
                    "ms": 1000 * took,
                    "generate_ms": out["timings_ms"].get("generate", 0.0),
                    "answer": out["answer"],
                    "abstained": out["abstained"],
                    "cites_gold": any(docs.get(c["document_id"]) == r["gold"] for c in out["citations"]),
                }

            for r in rows[:8]:  # warm-up: lazily imported code, first queries of each path
                await ask(r)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(len(rows)):
                queue.put_nowait(i)
            results: dict[int, dict] = {}

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    results[i] = await ask(rows[i])

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            wall = time.perf_counter() - started
    ordered = [results[i] for i in range(len(rows))]
    return {"wall": wall, "ingest_s": ingest_s, "results": ordered}


def figures(rows: list[dict], results: list[dict]) -> dict[str, float]:
    ans = [res for r, res in zip(rows, results, strict=True) if r["answerable"]]
    una = [res for r, res in zip(rows, results, strict=True) if not r["answerable"]]
    answered = [res for res in ans if not res["abstained"]]
    return {
        "answered": len(answered) / len(ans),
        "gold_cited": sum(res["cites_gold"] for res in answered) / max(1, len(answered)),
        "abstained": sum(res["abstained"] for res in una) / len(una),
    }


async def main_async(args: argparse.Namespace) -> None:
    rows = load()
    for r in rows:
        r["gold"] = f"{r['id']}-{'a' if r['answerable'] else 'u'}"
    if args.questions < len(rows):
        # Both files, evenly: every other answerable and unanswerable row up to the count.
        step = max(1, len(rows) // args.questions)
        rows = rows[::step][: args.questions]
    out = {}
    for stored in (False, True):
        out[stored] = await side(stored, rows, args.clients)
    for stored in (False, True):
        o = out[stored]
        ms = [r["ms"] for r in o["results"]]
        gen = [r["generate_ms"] for r in o["results"]]
        f = figures(rows, o["results"])
        label = "after (sentence vectors stored)" if stored else "before (sentence vectors off)"
        print(
            f"{label}: ingest {o['ingest_s']:.0f} s; {len(rows)} questions, {args.clients} clients: "
            f"{len(rows) / o['wall']:.2f} answers/s, request p50 {statistics.median(ms):.0f} ms "
            f"p95 {pct(ms, 0.95):.0f} ms, generate p50 {statistics.median(gen):.1f} ms\n"
            f"  CLAP-NQ answered {f['answered']:.3f}  gold cited {f['gold_cited']:.3f}  abstained {f['abstained']:.3f}"
        )
    before, after = out[False], out[True]
    differ = sum(
        (a["answer"], a["abstained"]) != (b["answer"], b["abstained"])
        for a, b in zip(before["results"], after["results"], strict=True)
    )
    speedup = (len(rows) / after["wall"]) / (len(rows) / before["wall"])
    print(f"answers differing between the two: {differ} of {len(rows)}; answers/s after / before: x{speedup:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--questions", type=int, default=300)
    args = parser.parse_args()
    from kernel.privacy import enforce_offline

    enforce_offline()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

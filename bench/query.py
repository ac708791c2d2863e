"""/v1/query latency (extractive generator) over the SciFact collection, for 1 and 8 concurrent clients.

    .venv/bin/python bench/query.py [--data-dir DIR] [--queries N]

Uses the collection bench/retrieval.py builds (same --data-dir). Prints p50/p95 of the whole request and of each
stage the service reports (embed, search, rerank, generate), and retrieval alone (embed + search + rerank).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import scifact  # noqa: E402
from bench.common import local_service, pct  # noqa: E402
from bench.retrieval import ensure_collection  # noqa: E402

if TYPE_CHECKING:
    import httpx


async def run(client: httpx.AsyncClient, questions: list[str], concurrency: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {
        "request": [],
        "embed": [],
        "search": [],
        "rerank": [],
        "generate": [],
        "retrieval": [],
    }
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)

    async def worker() -> None:
        while not queue.empty():
            question = queue.get_nowait()
            t = time.perf_counter()
            resp = await client.post(
                "/v1/query", json={"question": question, "collections": ["scifact"], "generator": "extractive"}
            )
            samples["request"].append(1000 * (time.perf_counter() - t))
            resp.raise_for_status()
            timings = resp.json()["timings_ms"]
            for stage in ("embed", "search", "rerank", "generate"):
                samples[stage].append(timings.get(stage, 0.0))
            samples["retrieval"].append(timings["embed"] + timings["search"] + timings.get("rerank", 0.0))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def main_async(args: argparse.Namespace) -> None:
    from kernel.settings import load_settings

    rows = scifact.corpus()
    queries = scifact.queries()
    questions = [queries[q] for q in scifact.qrels("test")][: args.queries]
    async with local_service(load_settings(data_dir=Path(args.data_dir))) as (client, _app):
        await ensure_collection(client, rows)
        await run(client, questions[:10], 1)  # warm-up: first calls load lazily-imported code
        for concurrency in (1, 8):
            started = time.perf_counter()
            s = await run(client, questions, concurrency)
            wall = time.perf_counter() - started
            print(f"\n{concurrency} client(s), {len(questions)} queries, {len(questions) / wall:.1f} queries/s")
            for name in ("request", "retrieval", "embed", "search", "rerank", "generate"):
                print(f"  {name:<10} p50 {statistics.median(s[name]):8.1f} ms   p95 {pct(s[name], 0.95):8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(REPO / "bench" / ".data" / "scifact"))
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    from kernel.privacy import enforce_offline

    enforce_offline()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

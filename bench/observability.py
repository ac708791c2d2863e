"""The cost of metrics and tracing on /v1/query: two services in this process, one with both on (the defaults:
spans made, exported nowhere) and one with both off, on the same SciFact documents, asked the same questions in
alternation (A B, B A, ...) so that load on the machine falls on both alike.

    .venv/bin/python bench/observability.py [--docs 300] [--queries 60]

Prints the p50 and p95 of the whole request for each and the ratio on/off. Online scoring is off in both: its jobs
would compete for the cores in the middle of the measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import scifact  # noqa: E402
from bench.common import indexed_service, pct  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--cheap", type=int, default=200, help="GET /v1/collections/scifact requests each")
    args = parser.parse_args()

    rows = scifact.corpus()[: args.docs]
    questions = list(scifact.queries().values())[: args.queries]
    modes = {"on": {"metrics": True, "tracing": True}, "off": {"metrics": False, "tracing": False}}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, observability in modes.items():
            client = await indexed_service(stack, f"obs-{name}", rows, observability=observability)
            clients[name] = client
        body = {"collections": ["scifact"], "generator": "extractive"}
        for client in clients.values():  # warm-up: first-call costs out of the figures
            (await client.post("/v1/query", json={**body, "question": questions[0]})).raise_for_status()
        latencies: dict[str, list[float]] = {name: [] for name in modes}
        for i, question in enumerate(questions):
            order = ["on", "off"] if i % 2 == 0 else ["off", "on"]
            for name in order:
                t = time.perf_counter()
                resp = await clients[name].post("/v1/query", json={**body, "question": question})
                latencies[name].append(1000 * (time.perf_counter() - t))
                resp.raise_for_status()
        report(f"/v1/query, {len(questions)} questions each", latencies)
        # A cheap request (key check, one catalog read): the fixed cost per request is a larger share of it.
        cheap: dict[str, list[float]] = {name: [] for name in modes}
        for i in range(args.cheap):
            for name in ["on", "off"] if i % 2 == 0 else ["off", "on"]:
                t = time.perf_counter()
                resp = await clients[name].get("/v1/collections/scifact")
                cheap[name].append(1000 * (time.perf_counter() - t))
                resp.raise_for_status()
        report(f"GET /v1/collections/scifact, {args.cheap} each", cheap)


def report(title: str, latencies: dict[str, list[float]]) -> None:
    print(f"\n{title}, in alternation (ms)")
    for name, values in latencies.items():
        print(f"  {name:<4} p50 {statistics.median(values):8.2f}  p95 {pct(values, 0.95):8.2f}")
    ratio = statistics.median(latencies["on"]) / statistics.median(latencies["off"])
    print(f"  p50 ratio on/off: {ratio:.3f}")


if __name__ == "__main__":
    asyncio.run(main())

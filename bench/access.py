"""The cost of access control and the audit log per request: three services in this process on the same SciFact
documents, asked the same questions in rotation (A B C, B C A, ...) so that load on the machine falls on all alike.
"open" is single-user (no key exists) with the audit log off; "keys" has every request carry a reader key granted
the collection (a key lookup and the any_key() probe), audit log off; "keyed" is "keys" with the audit log on (the
default), adding an append under the chain's write lock: the two differences split the cost.

    .venv/bin/python bench/access.py [--docs 300] [--queries 60] [--cheap 200]

Prints the p50 and p95 of the whole request for each, for /v1/query (extractive) and for a cheap request
(GET /v1/collections/scifact, where the fixed cost per request is a larger share), and each keyed service's ratio
to "open" and difference at p50 in ms. Online scoring and rate limits are off in both: scoring jobs would compete
for the cores in the middle of the measurements, and a limit would turn the cheap requests away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import scifact  # noqa: E402
from bench.common import indexed_service, pct  # noqa: E402

MODES = ("open", "keys", "keyed")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--cheap", type=int, default=200, help="GET /v1/collections/scifact requests each")
    args = parser.parse_args()

    rows = scifact.corpus()[: args.docs]
    questions = list(scifact.queries().values())[: args.queries]
    audit = {"open": {"enabled": False}, "keys": {"enabled": False}, "keyed": {"enabled": True}}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        headers: dict[str, dict[str, str]] = {name: {} for name in MODES}
        for name in MODES:
            # The collection and its documents first, in single-user mode (no key yet).
            client = await indexed_service(stack, f"access-{name}", rows, audit=audit[name])
            if name != "open":
                # The first key must be an admin's, made while still single-user; the admin then makes the reader's.
                made = await client.post("/v1/keys", json={"role": "admin", "collections": ["*"]})
                made.raise_for_status()
                admin = {"Authorization": f"Bearer {made.json()['key']}"}
                made = await client.post("/v1/keys", json={"role": "reader", "collections": ["scifact"]}, headers=admin)
                made.raise_for_status()
                headers[name] = {"Authorization": f"Bearer {made.json()['key']}"}
                # Keys are now required: a request without one is refused.
                assert (await client.get("/v1/collections/scifact")).status_code == 401
            clients[name] = client
        body: dict[str, Any] = {"collections": ["scifact"], "generator": "extractive"}
        for name in MODES:  # warm-up: first-call costs out of the figures
            resp = await clients[name].post("/v1/query", json={**body, "question": questions[0]}, headers=headers[name])
            resp.raise_for_status()
            (await clients[name].get("/v1/collections/scifact", headers=headers[name])).raise_for_status()
        latencies: dict[str, list[float]] = {name: [] for name in MODES}
        for i, question in enumerate(questions):
            for name in rotated(i):
                t = time.perf_counter()
                resp = await clients[name].post("/v1/query", json={**body, "question": question}, headers=headers[name])
                latencies[name].append(1000 * (time.perf_counter() - t))
                resp.raise_for_status()
        report(f"/v1/query, {len(questions)} questions each", latencies)
        # A cheap request (key check, one catalog read, an audit entry): the fixed cost is a larger share of it.
        cheap: dict[str, list[float]] = {name: [] for name in MODES}
        for i in range(args.cheap):
            for name in rotated(i):
                t = time.perf_counter()
                resp = await clients[name].get("/v1/collections/scifact", headers=headers[name])
                cheap[name].append(1000 * (time.perf_counter() - t))
                resp.raise_for_status()
        report(f"GET /v1/collections/scifact, {args.cheap} each", cheap)


def rotated(i: int) -> tuple[str, ...]:
    k = i % len(MODES)
    return MODES[k:] + MODES[:k]


def report(title: str, latencies: dict[str, list[float]]) -> None:
    print(f"\n{title}, in rotation (ms)")
    for name, values in latencies.items():
        print(f"  {name:<6} p50 {statistics.median(values):8.2f}  p95 {pct(values, 0.95):8.2f}")
    opened = statistics.median(latencies["open"])
    for name in MODES[1:]:
        p50 = statistics.median(latencies[name])
        print(f"  p50 ratio {name}/open: {p50 / opened:.3f}  ({name} - open: {p50 - opened:+.2f} ms)")


if __name__ == "__main__":
    asyncio.run(main())

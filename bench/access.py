"""The cost of access control and the audit log per request: two services in this process on the same SciFact
documents, asked the same questions in alternation (A B, B A, ...) so that load on the machine falls on both alike.
"open" is single-user (no key exists) with the audit log off; "keyed" has the audit log on (the default) and every
request carries a reader key granted the collection, so each one costs a key lookup, the any_key() probe and an
audit append under the chain's write lock.

    .venv/bin/python bench/access.py [--docs 300] [--queries 60] [--cheap 200]

Prints the p50 and p95 of the whole request for each, for /v1/query (extractive) and for a cheap request
(GET /v1/collections/scifact, where the fixed cost per request is a larger share), the ratio keyed/open and the
difference keyed - open at p50 in ms. Online scoring and rate limits are off in both: scoring jobs would compete
for the cores in the middle of the measurements, and a limit would turn the cheap requests away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import scifact  # noqa: E402
from bench.common import local_service, wait_job  # noqa: E402

MODES = ("open", "keyed")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--cheap", type=int, default=200, help="GET /v1/collections/scifact requests each")
    args = parser.parse_args()
    from kernel.settings import load_settings

    rows = scifact.corpus()[: args.docs]
    questions = list(scifact.queries().values())[: args.queries]
    audit = {"open": {"enabled": False}, "keyed": {"enabled": True}}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        headers: dict[str, dict[str, str]] = {"open": {}, "keyed": {}}
        for name in MODES:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-access-{name}-")))
            settings = load_settings(
                data_dir=data, scoring={"enabled": False}, limits={"rate": "off"}, audit=audit[name]
            )
            client, _ = await stack.enter_async_context(local_service(settings))
            # The collection and its documents first, in single-user mode (no key yet).
            (await client.post("/v1/collections", json={"name": "scifact"})).raise_for_status()
            res = await client.post("/v1/collections/scifact/documents/import", content=scifact.import_body(rows))
            job = await wait_job(client, res.json()["job_id"], interval=0.5)
            print(f"{name}: indexed {len(rows)} documents ({job['status']}, {job['total']} chunks)")
            if name == "keyed":
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
            for name in MODES if i % 2 == 0 else MODES[::-1]:
                t = time.perf_counter()
                resp = await clients[name].post("/v1/query", json={**body, "question": question}, headers=headers[name])
                latencies[name].append(1000 * (time.perf_counter() - t))
                resp.raise_for_status()
        report(f"/v1/query, {len(questions)} questions each", latencies)
        # A cheap request (key check, one catalog read, an audit entry): the fixed cost is a larger share of it.
        cheap: dict[str, list[float]] = {name: [] for name in MODES}
        for i in range(args.cheap):
            for name in MODES if i % 2 == 0 else MODES[::-1]:
                t = time.perf_counter()
                resp = await clients[name].get("/v1/collections/scifact", headers=headers[name])
                cheap[name].append(1000 * (time.perf_counter() - t))
                resp.raise_for_status()
        report(f"GET /v1/collections/scifact, {args.cheap} each", cheap)


def report(title: str, latencies: dict[str, list[float]]) -> None:
    print(f"\n{title}, in alternation (ms)")
    for name, values in latencies.items():
        print(f"  {name:<6} p50 {statistics.median(values):8.2f}  p95 {pct(values, 0.95):8.2f}")
    keyed, opened = statistics.median(latencies["keyed"]), statistics.median(latencies["open"])
    print(f"  p50 ratio keyed/open: {keyed / opened:.3f}  (keyed - open: {keyed - opened:+.2f} ms)")


if __name__ == "__main__":
    asyncio.run(main())

"""Scoring lag under load: does the worker keep up with the answers, and what does online scoring cost answering?

    .venv/bin/python bench/scoring.py [--clients 8] [--rounds 2]

Builds a CLAP-NQ collection (every passage of the 300 dev questions) in a temporary data directory, then asks the
questions with N concurrent clients twice, each time in a freshly started embedded service over the same data:
1. baseline: scoring disabled — answers/s;
2. scoring enabled — answers/s, then the worker's scoring throughput (answers scored per second from the first
   answer to the last score) and the lag from answer to score (p50/p95).
Prints the ratios: answering with scoring / without, and scoring throughput / answering throughput (>= 1: the
worker keeps up with that load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import local_service, wait_job  # noqa: E402

CLAPNQ = REPO.parent / "shared" / "data" / "clapnq"


def load() -> tuple[list[dict], list[str]]:
    records, questions, seen = [], [], set()
    for name in ("dev_answerable.jsonl", "dev_unanswerable.jsonl"):
        with (CLAPNQ / name).open() as fh:
            for line in fh:
                row = json.loads(line)
                questions.append(row["input"])
                for i, p in enumerate(row["passages"]):
                    key = f"{row['id']}-{i}"
                    if key not in seen:
                        seen.add(key)
                        records.append({"id": key, "title": p["title"], "text": p["text"]})
    return records, questions


async def ask_all(client, questions: list[str], clients: int) -> tuple[list[str], float]:  # type: ignore[no-untyped-def]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)
    ids: list[str] = []

    async def worker() -> None:
        while not queue.empty():
            resp = await client.post("/v1/query", json={"question": queue.get_nowait(), "collections": ["clapnq"]})
            resp.raise_for_status()
            ids.append(resp.json()["answer_id"])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return ids, time.perf_counter() - started


async def phase(data_dir: Path, questions: list[str], clients: int, scoring: bool) -> dict[str, float]:
    from rag.settings import load_settings

    settings = load_settings(data_dir=data_dir, scoring={"enabled": scoring})
    async with local_service(settings) as (client, _app):
        await ask_all(client, questions[:10], 1)  # warm-up
        ids, wall = await ask_all(client, questions, clients)
        out = {"answers_per_s": len(ids) / wall}
        if not scoring:
            return out
        started = time.perf_counter() - wall
        lags, pending = [], set(ids)
        while pending:
            for answer_id in list(pending):
                data = (await client.get(f"/v1/answers/{answer_id}")).json()
                if data["scores"]["status"] == "done":
                    pending.discard(answer_id)
                    scored = datetime.fromisoformat(str(data["scores"]["scored_at"]).replace(" ", "T"))
                    created = datetime.fromisoformat(str(data["created_at"]).replace(" ", "T"))
                    lags.append((scored.replace(tzinfo=None) - created.replace(tzinfo=None)).total_seconds())
            await asyncio.sleep(0.2)
        total = time.perf_counter() - started
        lags.sort()
        out |= {
            "scored_per_s": len(ids) / total,
            "lag_p50_s": statistics.median(lags),
            "lag_p95_s": lags[min(len(lags) - 1, round(0.95 * (len(lags) - 1)))],
        }
        return out


async def main_async(args: argparse.Namespace) -> None:
    from rag.settings import load_settings

    records, questions = load()
    questions = questions * args.rounds
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        data_dir = Path(tmp)
        async with local_service(load_settings(data_dir=data_dir)) as (client, _app):
            (await client.post("/v1/collections", json={"name": "clapnq"})).raise_for_status()
            body = "\n".join(json.dumps(r) for r in records).encode()
            job = (await client.post("/v1/collections/clapnq/documents/import", content=body)).json()
            assert (await wait_job(client, job["job_id"]))["status"] == "succeeded"
        print(f"{len(records)} passages; {len(questions)} questions; {args.clients} clients; extractive generator")
        base = await phase(data_dir, questions, args.clients, scoring=False)
        print(f"scoring off: {base['answers_per_s']:.1f} answers/s")
        on = await phase(data_dir, questions, args.clients, scoring=True)
        print(f"scoring on:  {on['answers_per_s']:.1f} answers/s; worker scored {on['scored_per_s']:.1f} answers/s")
        print(f"lag from answer to score: p50 {on['lag_p50_s']:.2f} s, p95 {on['lag_p95_s']:.2f} s")
        print(f"ratio answering with/without scoring: {on['answers_per_s'] / base['answers_per_s']:.2f}")
        print(f"ratio scoring throughput / answering throughput: {on['scored_per_s'] / on['answers_per_s']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="Times each question is asked.")
    args = parser.parse_args()
    from rag.privacy import enforce_offline

    enforce_offline()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

"""Scoring lag under load: does the worker keep up with the answers, and what does online scoring cost answering?

    .venv/bin/python bench/scoring.py [--clients 8] [--rounds 2]

Builds a CLAP-NQ collection (every passage of the 300 dev questions) in a temporary data directory, then asks the
questions with N concurrent clients twice, each time in a freshly started embedded service over the same data:
1. baseline: scoring disabled, closed loop — answers/s;
2. scoring enabled, closed loop (the CPU saturated by answering) — answers/s (ratio to the baseline), the backlog of
   owed scores when answering stops and the rate the worker drains it, the lag from answer to score;
3. scoring enabled, open loop at --load of the baseline rate — the lag, which stays small when the worker keeps up.
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
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import local_service, wait_job  # noqa: E402

if TYPE_CHECKING:
    import httpx

    from rag.storage.answers import AnswerStore

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


async def ask_all(
    client: httpx.AsyncClient, questions: list[str], clients: int, rate: float | None = None
) -> tuple[list[str], float]:
    """Closed loop (each client asks again as soon as it has its answer) or, with `rate`, open loop at that pace."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)
    ids: list[str] = []
    started = time.perf_counter()

    async def one(question: str) -> None:
        resp = await client.post("/v1/query", json={"question": question, "collections": ["clapnq"]})
        resp.raise_for_status()
        ids.append(resp.json()["answer_id"])

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    if rate is None:
        await asyncio.gather(*(worker() for _ in range(clients)))
    else:
        tasks = []
        for i, q in enumerate(questions):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(q)))
        await asyncio.gather(*tasks)
    return ids, time.perf_counter() - started


async def until_scored(answers: AnswerStore) -> None:
    # The database is the only place that knows: poll it with one cheap query.
    while await answers.scores.pending(limit=1):  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def lags(client: httpx.AsyncClient, ids: list[str]) -> list[float]:
    out = []
    for answer_id in ids:
        data = (await client.get(f"/v1/answers/{answer_id}")).json()
        scored = datetime.fromisoformat(str(data["scores"]["scored_at"]))
        created = datetime.fromisoformat(str(data["created_at"]))
        out.append((scored.replace(tzinfo=None) - created.replace(tzinfo=None)).total_seconds())
    return sorted(out)


async def phase(
    data_dir: Path, questions: list[str], clients: int, scoring: bool, rate: float | None = None
) -> dict[str, float]:
    from kernel.settings import load_settings

    settings = load_settings(data_dir=data_dir, scoring={"enabled": scoring})
    async with local_service(settings) as (client, app):
        answers = app.state.services.answers
        await ask_all(client, questions[:10], 1)  # warm-up
        await until_scored(answers)
        ids, wall = await ask_all(client, questions, clients, rate)
        out = {"answers_per_s": len(ids) / wall}
        if not scoring:
            return out
        # Polled with one cheap query, so that watching adds no load of its own.
        backlog, drain_started = len(await answers.scores.pending()), time.perf_counter()
        await until_scored(answers)
        drained = time.perf_counter() - drain_started
        lag = await lags(client, ids)
        return out | {
            "scored_per_s": len(ids) / (wall + drained),
            "backlog": backlog,
            "drain_per_s": backlog / drained if backlog else float("nan"),
            "lag_p50_s": statistics.median(lag),
            "lag_p95_s": lag[min(len(lag) - 1, round(0.95 * (len(lag) - 1)))],
        }


async def main_async(args: argparse.Namespace) -> None:
    from kernel.settings import load_settings

    records, questions = load()
    questions = questions * args.rounds
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        data_dir = Path(tmp)
        async with local_service(load_settings(data_dir=data_dir)) as (client, _app):
            (await client.post("/v1/collections", json={"name": "clapnq"})).raise_for_status()
            body = "\n".join(json.dumps(r) for r in records).encode()
            job = (await client.post("/v1/collections/clapnq/documents/import", content=body)).json()
            assert (await wait_job(client, job["job_id"]))["status"] == "succeeded"
        print(f"{len(records)} passages; {len(questions)} questions; extractive generator")
        base = await phase(data_dir, questions, args.clients, scoring=False)
        print(f"{args.clients} clients, scoring off: {base['answers_per_s']:.1f} answers/s")
        on = await phase(data_dir, questions, args.clients, scoring=True)
        print(
            f"{args.clients} clients, scoring on:  {on['answers_per_s']:.1f} answers/s;"
            f" overall {on['scored_per_s']:.1f} scored/s;"
            f" backlog {on['backlog']} drained at {on['drain_per_s']:.1f} scored/s;"
            f" lag p50 {on['lag_p50_s']:.1f} s, p95 {on['lag_p95_s']:.1f} s"
        )
        print(f"  ratio answering with/without scoring: {on['answers_per_s'] / base['answers_per_s']:.2f}")
        rate = args.load * base["answers_per_s"]
        paced = await phase(data_dir, questions, args.clients, scoring=True, rate=rate)
        print(
            f"open loop at {rate:.1f} answers/s ({args.load:.0%} of the baseline), scoring on:"
            f" backlog at the end {paced['backlog']},"
            f" lag p50 {paced['lag_p50_s']:.2f} s, p95 {paced['lag_p95_s']:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="Times each question is asked.")
    parser.add_argument("--load", type=float, default=0.5, help="Open-loop rate as a share of the baseline.")
    args = parser.parse_args()
    from kernel.privacy import enforce_offline

    enforce_offline()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

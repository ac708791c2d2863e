"""What the caches save, on SciFact, against an uncached baseline in the same run.

    .venv/bin/python bench/cache.py [--limit 1000] [--changed 0.01] [--questions 20]

In one embedded service (API, queue, worker, Qdrant Edge, MiniLM), on the first `--limit` SciFact abstracts:

1. full import into an empty store (the baseline: every chunk encoded);
2. re-import of the corpus after `--changed` of its documents were edited (a sentence appended): unchanged records
   are skipped by their digest and the edited ones reuse the vectors of their unchanged chunks;
3. the corpus with another `--changed` of its documents edited, imported as a new collection: no document is
   known there, so only the embedding cache (vectors found by text digest and model) saves encoding;
4. answers: `--questions` SciFact claims asked once (uncached) and again (served from the answer cache).

Prints wall time and chunks encoded per import and the ratios to the full import (goal <= 0.1 for the re-import),
and the median latency of cached and uncached answers.
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

from bench.common import local_service, wait_job  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "scifact"


def corpus(limit: int) -> list[dict]:
    rows: list[dict] = []
    with (DATA / "corpus.jsonl").open() as fh:
        for line in fh:
            if len(rows) >= limit:
                break
            row = json.loads(line)
            rows.append({"id": row["_id"], "title": row["title"], "text": row["text"]})
    return rows


def edited(rows: list[dict], share: float, first: int = 0, note: str = "revised") -> tuple[list[dict], int]:
    """The corpus with every (1/share)-th document from `first` given one more sentence; how many were edited."""
    step = max(1, round(1 / share))
    out = [dict(r) for r in rows]
    for i in range(first % step, len(out), step):
        out[i]["text"] += f" This abstract was {note} after publication."
    return out, len(range(first % step, len(out), step))


def body(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


async def timed_import(client, app, collection: str, rows: list[dict]) -> dict:
    from kernel.cache_stats import EMBEDDINGS

    stats = app.state.services.cache_stats
    before = stats.misses[EMBEDDINGS]
    start = time.perf_counter()
    resp = await client.post(f"/v1/collections/{collection}/documents/import", content=body(rows))
    resp.raise_for_status()
    job = await wait_job(client, resp.json()["job_id"])
    seconds = time.perf_counter() - start
    if job["status"] != "succeeded":
        raise SystemExit(f"import failed: {job}")
    return {"seconds": seconds, "encoded": stats.misses[EMBEDDINGS] - before, "indexed": job["total"]}


async def ask(client, question: str) -> tuple[float, dict]:
    start = time.perf_counter()
    resp = await client.post("/v1/query", json={"question": question, "collections": ["scifact"]})
    resp.raise_for_status()
    return (time.perf_counter() - start) * 1000, resp.json()


async def run(limit: int, share: float, n_questions: int) -> None:
    from kernel.privacy import enforce_offline
    from kernel.settings import load_settings

    enforce_offline()
    rows = corpus(limit)
    changed_rows, n_changed = edited(rows, share)
    # Another 1% edited, so that the new collection's import meets texts the store has not seen yet.
    other_rows, _ = edited(rows, share, first=max(1, round(1 / share)) // 2, note="corrected")
    questions: list[str] = []
    with (DATA / "queries.jsonl").open() as fh:
        for line in fh:
            if len(questions) >= n_questions:
                break
            questions.append(json.loads(line)["text"])
    with tempfile.TemporaryDirectory(prefix="rag-bench-cache-") as tmp:
        async with local_service(load_settings(data_dir=Path(tmp))) as (client, app):
            for name in ("scifact", "scifact-copy"):
                (await client.post("/v1/collections", json={"name": name})).raise_for_status()
            full = await timed_import(client, app, "scifact", rows)
            again = await timed_import(client, app, "scifact", changed_rows)
            copy = await timed_import(client, app, "scifact-copy", other_rows)
            uncached, cached = [], []
            for q in questions:
                ms, out = await ask(client, q)
                assert not out["cached"], out
                uncached.append(ms)
            for q in questions:
                ms, out = await ask(client, q)
                assert out["cached"], out
                cached.append(ms)

    print(f"SciFact, first {len(rows)} documents (a fixed subset), {n_changed} edited ({share:.0%}); one run")
    print(f"{'import':<44}{'seconds':>9}{'chunks encoded':>16}{'time ratio':>12}")
    for label, r in (
        ("1. full import (baseline)", full),
        ("2. re-import, same collection", again),
        ("3. other 1% edited, into a new collection", copy),
    ):
        print(f"{label:<44}{r['seconds']:>9.1f}{r['encoded']:>16}{r['seconds'] / full['seconds']:>12.3f}")
    print(f"   chunks indexed: full {full['indexed']}, re-import {again['indexed']}, new collection {copy['indexed']}")
    print(f"   goal for 2: time ratio <= 0.1 -> {'met' if again['seconds'] / full['seconds'] <= 0.1 else 'NOT met'}")
    mu, mc = statistics.median(uncached), statistics.median(cached)
    print(f"answers ({len(questions)} SciFact claims, extractive generator), median latency:")
    print(f"   uncached {mu:.1f} ms, cached {mc:.1f} ms, ratio cached/uncached {mc / mu:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1000, help="first N SciFact documents (default 1,000 of 5,183)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of documents edited (default 0.01)")
    parser.add_argument("--questions", type=int, default=20)
    args = parser.parse_args()
    if not 0 < args.changed <= 1:
        raise SystemExit("--changed is a share between 0 and 1")
    asyncio.run(run(args.limit, args.changed, args.questions))


if __name__ == "__main__":
    main()

"""How much slower ingestion is for a collection whose policy is `redact_ingest`, on a few shared documents.

    .venv/bin/python bench/redact_ingest.py [--rounds R]

The same files are uploaded to an `allow` and a `redact_ingest` collection of one embedded service, R rounds,
alternating which goes first. A round's time runs from its first job's start to its last job's finish (job
records), so waiting in the queue before the first start is not counted. The redactor is warmed up first (its
first use loads the analyser; reported apart). Prints the median time per policy and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import local_service, wait_job  # noqa: E402

DOCS = REPO.parent / "shared" / "data" / "docs"
FILES = ["norwich-city.txt", "example-10k-1p.html", "handbook-1p.docx", "fake-email.eml", "fake-memo.pdf"]


async def _ingest(client, name: str, policy: str) -> tuple[float, int]:
    (await client.post("/v1/collections", json={"name": name, "policy": {"pii": policy}})).raise_for_status()
    files = [("files", (f, (DOCS / f).read_bytes())) for f in FILES]
    resp = await client.post(f"/v1/collections/{name}/documents", files=files)
    resp.raise_for_status()
    spans, chunks = [], 0
    for job_id in dict.fromkeys(r["job_id"] for r in resp.json()):
        job = await wait_job(client, job_id)
        assert job["status"] == "succeeded", job
        spans.append(tuple(datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at")))
        chunks += job["total"]
    # The worker may run the files' jobs side by side: from the first start to the last finish.
    seconds = (max(f for _, f in spans) - min(s for s, _ in spans)).total_seconds()
    return seconds, chunks


async def main(rounds: int) -> None:
    from kernel.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        async with local_service(load_settings(data_dir=Path(tmp))) as (client, app):
            start = time.perf_counter()
            await asyncio.to_thread(app.state.services.redactor.redact, "Warm up, Jane Okafor.")
            print(f"redactor first use (loads the analyser): {time.perf_counter() - start:.1f} s")
            await _ingest(client, "warmup", "allow")  # the parsers' own first-use loading, out of the figures
            times: dict[str, list[float]] = {"allow": [], "redact_ingest": []}
            chunks = {}
            for i in range(rounds):
                order = ["allow", "redact_ingest"] if i % 2 == 0 else ["redact_ingest", "allow"]
                for policy in order:
                    seconds, chunks[policy] = await _ingest(client, f"{policy.replace('_', '-')}-{i}", policy)
                    times[policy].append(seconds)
    allow, redact = statistics.median(times["allow"]), statistics.median(times["redact_ingest"])
    print(f"{len(FILES)} files ({', '.join(FILES)}), {rounds} rounds, median of first start to last finish:")
    print(f"  allow          {allow:6.2f} s  ({chunks['allow']} chunks)")
    print(f"  redact_ingest  {redact:6.2f} s  ({chunks['redact_ingest']} chunks)")
    print(f"  ratio          {redact / allow:6.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))

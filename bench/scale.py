"""Ingestion throughput with 1 and 2 worker processes, for a parse-heavy and an embed-heavy corpus, as ratios.

    .venv/bin/python bench/scale.py [--repeat R] [--copies C] [--scifact-docs N] [--batches B]

Each run starts `rag serve` as a subprocess on a fresh data directory with RAG_INGESTION__WORKER_PROCESSES=P (the
embedded stack: one store owner that alone writes Qdrant Edge, P `rag worker` processes that parse and embed, the
API process running no jobs), waits until `/readyz` says a worker is alive, then submits every job at once and
times the first submission to the last finished job.

- parse-heavy: the shared sample documents (PDF, DOCX, PPTX, XLSX, HTML, e-mail, ...), uploaded into C collections
  (the same bytes in another collection are a job of their own); few chunks per document, so parsing dominates.
- embed-heavy: the first N SciFact abstracts, imported as B jobs of equal size; parsing is trivial, so the encoder
  dominates.

Runs alternate 1, 2, 1, 2, ... so that a change in the machine's load falls on both; figures are medians of R runs
and the ratio is the 2-process median over the 1-process median of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
# Rejected at upload (415 and 422), so they are no job at all.
NOT_DOCUMENTS = {"CantinaBand3.wav", "empty.txt"}
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Outcome:
    seconds: float
    jobs: int
    docs: int
    chunks: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _poll(check: Callable[[], bool], what: str, timeout_s: float = 900.0, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every_s)


class Service:
    """`rag serve` with P worker processes, on its own data directory and port."""

    def __init__(self, data_dir: Path, processes: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OTEL_"))}
        env = {
            **inherited,
            "RAG_DATA_DIR": str(data_dir),
            "RAG_LOG_LEVEL": "warning",
            "RAG_INGESTION__WORKER_PROCESSES": str(processes),
        }
        self.log = (data_dir.parent / f"serve-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "serve", "--port", str(self.port)], env=env, stdout=self.log, stderr=self.log
        )
        _poll(self._ready, f"the service at {self.url} to be ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise SystemExit(f"rag serve exited at start (log: {self.log.name})")
        try:
            return httpx.get(self.url + "/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()


def _wait_all(url: str, job_ids: list[str]) -> list[dict]:
    done: dict[str, dict] = {}

    def check() -> bool:
        for job_id in job_ids:
            if job_id not in done:
                job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=60).json()
                if job["status"] in FINISHED:
                    done[job_id] = job
                else:
                    return False
        return True

    _poll(check, f"{len(job_ids)} jobs to finish", every_s=0.2)
    return [done[j] for j in job_ids]


def parse_heavy(url: str, copies: int) -> Outcome:
    files = [p for p in sorted((SHARED / "docs").iterdir()) if p.name not in NOT_DOCUMENTS]
    bodies = [(p.name, p.read_bytes()) for p in files]
    for c in range(copies):
        httpx.post(url + "/v1/collections", json={"name": f"docs{c}"}, timeout=60).raise_for_status()
    start = time.perf_counter()
    job_ids = []
    for c in range(copies):
        for name, body in bodies:
            resp = httpx.post(f"{url}/v1/collections/docs{c}/documents", files={"files": (name, body)}, timeout=120)
            resp.raise_for_status()
            job_ids.append(resp.json()[0]["job_id"])
    jobs = _wait_all(url, job_ids)
    seconds = time.perf_counter() - start
    ok = [j for j in jobs if j["status"] == "succeeded"]
    return Outcome(seconds, len(jobs), len(jobs), sum(int(j.get("total") or 0) for j in ok))


def embed_heavy(url: str, n_docs: int, batches: int) -> Outcome:
    with (SHARED / "scifact" / "corpus.jsonl").open() as fh:
        rows = [json.loads(line) for _, line in zip(range(n_docs), fh, strict=False)]
    records = [json.dumps({"id": r["_id"], "title": r["title"], "text": r["text"]}) for r in rows]
    httpx.post(url + "/v1/collections", json={"name": "scifact"}, timeout=60).raise_for_status()
    size = -(-len(records) // batches)
    start = time.perf_counter()
    job_ids = []
    for b in range(batches):
        body = "\n".join(records[b * size : (b + 1) * size]).encode()
        resp = httpx.post(f"{url}/v1/collections/scifact/documents/import", content=body, timeout=120)
        resp.raise_for_status()
        job_ids.append(resp.json()["job_id"])
    jobs = _wait_all(url, job_ids)
    seconds = time.perf_counter() - start
    if any(j["status"] != "succeeded" for j in jobs):
        raise SystemExit(f"an import failed: {[j for j in jobs if j['status'] != 'succeeded']}")
    return Outcome(seconds, len(jobs), len(records), sum(int(j["total"]) for j in jobs))


def one_run(processes: int, corpus: str, args: argparse.Namespace) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="rag-scale-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        service = Service(data, processes)
        try:
            if corpus == "parse":
                return parse_heavy(service.url, args.copies)
            return embed_heavy(service.url, args.scifact_docs, args.batches)
        finally:
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=3, help="collections the sample documents are uploaded into")
    parser.add_argument("--scifact-docs", type=int, default=800)
    parser.add_argument("--batches", type=int, default=8, help="import jobs the SciFact documents are split into")
    parser.add_argument("--corpus", choices=("parse", "embed", "both"), default="both")
    args = parser.parse_args()
    corpora = ("parse", "embed") if args.corpus == "both" else (args.corpus,)
    print(f"cores: {os.cpu_count()}  repeat: {args.repeat}", flush=True)
    for corpus in corpora:
        runs: dict[int, list[Outcome]] = {1: [], 2: []}
        for i in range(args.repeat):
            for processes in (1, 2) if i % 2 == 0 else (2, 1):
                out = one_run(processes, corpus, args)
                runs[processes].append(out)
                print(
                    f"  {corpus} P={processes}: {out.jobs} jobs, {out.docs} docs, {out.chunks} chunks in "
                    f"{out.seconds:.1f} s",
                    flush=True,
                )
        med = {p: statistics.median(o.seconds for o in runs[p]) for p in runs}
        docs, chunks = runs[1][0].docs, runs[1][0].chunks
        for p in (1, 2):
            rate = f"{docs / med[p]:.2f} docs/s  {chunks / med[p]:.1f} chunks/s"
            print(f"{corpus}-heavy  P={p}: median {med[p]:.1f} s  {rate}")
        print(f"{corpus}-heavy  speed-up 2 vs 1 process: {med[1] / med[2]:.2f}x", flush=True)


if __name__ == "__main__":
    main()

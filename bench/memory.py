"""Peak memory (RSS) of the service for large uploads and imports, measured on a real service process.

    .venv/bin/python bench/memory.py [--files 10] [--file-mb 50] [--import-mb 500] [--no-job]

1. A service without a worker (`create_app(embedded_worker=False)` under uvicorn, embedded Valkey, SQLite, Qdrant
   Edge) receives one request with `--files` text files of `--file-mb` MB each, then one JSONL import of
   `--import-mb` MB. Its peak RSS is read from /proc (VmHWM, reset through clear_refs before each request).
2. Unless `--no-job`: a service with its worker (`rag serve`, a fresh data directory) ingests a small import to
   warm the model up, then takes the same import again and is measured from its 202 until the job has read,
   parsed and chunked every record (stage embedding): the part of a job whose memory grows with the import.

Only the HTTP API and the CLI are used, so the same script measures any revision of the service. Files and
records are SciFact abstracts, repeated with fresh ids until the size is reached; they are written to a
temporary directory first, and the client streams them from disk so that its own memory does not matter.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAG_SHARED_DATA", REPO.parent / "shared" / "data"))
CORPUS = SHARED / "scifact" / "corpus.jsonl"
MB = 1_000_000
# Uvicorn serving the API alone: the worker would start ingesting what is being measured.
API_ONLY = (
    "import uvicorn\n"
    "from kernel.settings import load_settings\n"
    "from rag.api.app import create_app\n"
    "uvicorn.run(create_app(load_settings(), embedded_worker=False), host='127.0.0.1', port={port},"
    " log_level='warning')\n"
)


def abstracts() -> Iterator[str]:
    with CORPUS.open() as fh:
        rows = [json.loads(line) for line in fh]
    for row in itertools.cycle(rows):
        yield f"{row['title']}\n\n{row['text']}\n\n"


def write_text(path: Path, size: int, source: Iterator[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        written = 0
        while written < size:
            chunk = next(source)[: size - written]
            fh.write(chunk)
            written += len(chunk.encode())


def write_jsonl(path: Path, size: int, source: Iterator[str]) -> int:
    """Records of about 15 kB (ten abstracts each); returns how many."""
    with path.open("w", encoding="utf-8") as fh:
        written, n = 0, 0
        while written < size:
            text = "".join(next(source) for _ in range(10))
            line = json.dumps({"id": f"rec-{n}", "title": f"Record {n}", "text": text}) + "\n"
            fh.write(line)
            written += len(line.encode())
            n += 1
    return n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, data_dir: Path, command: list[str], port: int) -> None:
        env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_LOG_LEVEL": "warning", "PYTHONPATH": str(REPO)}
        self.log = (data_dir.parent / f"service-{port}.log").open("ab")
        self.proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the service exited at start; see {self.log.name}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not become healthy")
            time.sleep(0.5)

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def rss(self) -> int:
        return self._status("VmRSS")

    def peak(self) -> int:
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        # "5" resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


def measure(svc: Service, label: str, request) -> tuple[str, int, int]:
    time.sleep(1)
    before = svc.rss()
    svc.reset_peak()
    resp = request()
    if resp.status_code != 202:
        raise SystemExit(f"{label}: {resp.status_code} {resp.text[:500]}")
    return label, before, svc.peak()


def requests_phase(data_dir: Path, uploads: list[Path], jsonl: Path) -> list[tuple[str, int, int]]:
    port = free_port()
    svc = Service(data_dir, [sys.executable, "-c", API_ONLY.format(port=port)], port)
    try:
        with httpx.Client(base_url=svc.url, timeout=3600) as client:
            for name in ("uploads", "imports"):
                client.post("/v1/collections", json={"name": name}).raise_for_status()
            handles = [p.open("rb") for p in uploads]
            try:
                files = [("files", (p.name, fh, "text/plain")) for p, fh in zip(uploads, handles, strict=True)]
                rows = [
                    measure(
                        svc,
                        f"upload {len(uploads)} x {uploads[0].stat().st_size / MB:.0f} MB",
                        lambda: client.post("/v1/collections/uploads/documents", files=files),
                    )
                ]
            finally:
                for fh in handles:
                    fh.close()

            def send_import() -> httpx.Response:
                with jsonl.open("rb") as fh:
                    body = iter(lambda: fh.read(1 << 20), b"")
                    return client.post("/v1/collections/imports/documents/import", content=body)

            rows.append(measure(svc, f"import {jsonl.stat().st_size / MB:.0f} MB (request)", send_import))
    finally:
        svc.stop()
    return rows


def job_phase(data_dir: Path, jsonl: Path) -> tuple[str, int, int]:
    port = free_port()
    svc = Service(data_dir, [sys.executable, "-m", "rag", "serve", "--port", str(port)], port)
    try:
        with httpx.Client(base_url=svc.url, timeout=3600) as client:
            # A small import first: the model's first batches allocate what every later batch reuses.
            client.post("/v1/collections", json={"name": "warmup"}).raise_for_status()
            texts = itertools.islice(abstracts(), 300)
            warm = "\n".join(json.dumps({"id": f"w{i}", "text": text}) for i, text in enumerate(texts))
            _wait(client, client.post("/v1/collections/warmup/documents/import", content=warm).json()["job_id"])
            client.post("/v1/collections", json={"name": "imports"}).raise_for_status()
            time.sleep(1)
            before = svc.rss()
            with jsonl.open("rb") as fh:
                body = iter(lambda: fh.read(1 << 20), b"")
                resp = client.post("/v1/collections/imports/documents/import", content=body)
            if resp.status_code != 202:
                raise SystemExit(f"import: {resp.status_code} {resp.text[:500]}")
            # The request's own peak is measured above; from here on it is the job's.
            svc.reset_peak()
            started = time.monotonic()
            job = _wait(client, resp.json()["job_id"], until_stage="embedding")
            peak = svc.peak()
            print(
                f"job: {job['total']:,} chunks of {job['documents']:,} records chunked in "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
    finally:
        svc.stop()
    return f"import {jsonl.stat().st_size / MB:.0f} MB (job, until chunked)", before, peak


def _wait(client: httpx.Client, job_id: str, until_stage: str | None = None) -> dict:
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if until_stage is not None or job["status"] != "succeeded":
                raise SystemExit(f"job {job_id} ended before it was measured: {job}")
            return job
        if until_stage is not None and job["stage"] == until_stage and job["total"]:
            return job
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--file-mb", type=float, default=50, help="MB (10^6 bytes) per uploaded file")
    parser.add_argument("--import-mb", type=float, default=500)
    parser.add_argument("--no-job", action="store_true", help="measure the requests only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-memory-") as tmp:
        root = Path(tmp)
        source = abstracts()
        uploads = []
        for i in range(args.files):
            path = root / f"upload-{i}.txt"
            write_text(path, int(args.file_mb * MB), source)
            uploads.append(path)
        jsonl = root / "import.jsonl"
        records = write_jsonl(jsonl, int(args.import_mb * MB), source)
        print(f"generated {args.files} files and an import of {records} records in {root}", flush=True)
        rows = requests_phase(root / "data", uploads, jsonl)
        for path in uploads:
            path.unlink()
        if not args.no_job:
            rows.append(job_phase(root / "data-job", jsonl))
    print(f"\n{'scenario':48} {'RSS before':>11} {'peak RSS':>10} {'peak - before':>14}")
    for label, before, peak in rows:
        print(f"{label:48} {before / 2**20:8.0f} MiB {peak / 2**20:6.0f} MiB {(peak - before) / 2**20:10.0f} MiB")


if __name__ == "__main__":
    main()

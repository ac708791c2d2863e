"""A service killed in the middle of a job finishes that job after a restart, with no duplicate or orphan chunk."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kernel.types import ChunkSelector, ChunkState
from tests.conftest import SHARED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.port, self.extra_env = data_dir, port, env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        env = {**os.environ, "RAG_DATA_DIR": str(self.data_dir), "RAG_LOG_LEVEL": "warning", **self.extra_env}
        log = (self.data_dir.parent / f"service-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "serve", "--port", str(self.port)], env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the service exited at start; see " + log.name
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the service did not become healthy")

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow
def test_killed_during_embedding_completes_after_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    svc = ServiceProcess(data_dir, free_port())
    svc.start()
    try:
        with (SHARED / "scifact" / "corpus.jsonl").open() as fh:
            rows = [json.loads(next(fh)) for _ in range(400)]
        body = "\n".join(json.dumps({"id": r["_id"], "title": r["title"], "text": r["text"]}) for r in rows)
        httpx.post(svc.url + "/v1/collections", json={"name": "killme"}).raise_for_status()
        resp = httpx.post(svc.url + "/v1/collections/killme/documents/import", content=body, timeout=60)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]

        deadline = time.monotonic() + 600
        while True:
            job = httpx.get(f"{svc.url}/v1/jobs/{job_id}").json()
            if job["stage"] == "embedding" and 0 < job["done"] < job["total"]:
                break
            assert job["status"] not in ("succeeded", "failed"), f"finished before it could be killed: {job}"
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        valkey_pids = svc.children()
        svc.kill()
        time.sleep(0.5)
        assert not [p for p in valkey_pids if _alive(p)], "the embedded valkey-server outlived its service"

        svc.start()
        deadline = time.monotonic() + 900
        while (job := httpx.get(f"{svc.url}/v1/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        assert job["done"] == job["total"]
        info = httpx.get(svc.url + "/v1/collections/killme").json()
        assert info["document_count"] == 400
        expected_chunks = info["chunk_count"]
        assert expected_chunks == job["total"]
    finally:
        svc.stop()

    # The shard is free again: count what is really in it.
    from retrieval.stores.qdrant_edge import QdrantEdgeStore

    async def counts() -> tuple[int, int]:
        store = QdrantEdgeStore(data_dir / "qdrant")
        await store.ensure(384)
        try:
            everything = await store.count(ChunkSelector(collection="killme"))
            active = await store.count(ChunkSelector(collection="killme", state=ChunkState.active))
            return everything, active
        finally:
            await store.close()

    everything, active = asyncio.run(counts())
    assert everything == active == expected_chunks

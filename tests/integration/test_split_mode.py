"""Split mode for real: `rag store`, `rag api` and two `rag worker` processes on PostgreSQL and Redis; one worker is
killed in the middle of a job and every document still ends up indexed exactly once.

No Qdrant server can run here, so the processes share one embedded Qdrant Edge store through its owner, `rag store`
(the store behind RAG_QDRANT__STORE_URL): the API and the workers are separate processes that may die, and only the
owner holds the store's folder. The Qdrant server store has its own contract tests (tests/contracts), and so has the
store owner's client.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from kernel.types import ChunkSelector, ChunkState
from tests.conftest import SHARED
from tests.support.databases import fresh_database
from tests.support.polling import poll, poll_sync
from tests.support.ports import free_port

REDIS_URL = os.environ.get("RAG_TEST_SPLIT_REDIS_URL", "redis://127.0.0.1:6379/12")
DOCS, ABSTRACTS_PER_DOC = 12, 8
LEASE_SECONDS = 10  # a killed worker's job runs again on the other worker after at most this long


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _reachable("127.0.0.1", 5432), reason="split mode needs PostgreSQL on 127.0.0.1:5432"),
    pytest.mark.skipif(not _reachable("127.0.0.1", 6379), reason="split mode needs Redis on 127.0.0.1:6379"),
]


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "rag", *self.args], env=self.env, stdout=out, stderr=out
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(30)


class Deployment:
    """The four processes of a split deployment on one machine, sharing a data directory (the blobs, and the
    store owner's folder), a PostgreSQL database and a Redis queue."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.store_url = f"http://127.0.0.1:{free_port()}"
        api_port = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env = {
            **inherited,
            "RAG_DATA_DIR": str(tmp / "data"),
            "RAG_LOG_LEVEL": "warning",
            "RAG_DATABASE__URL": database_url,
            "RAG_REDIS__URL": REDIS_URL,
            "RAG_REDIS__QUEUE_NAME": f"rag:split:{uuid.uuid4().hex[:12]}",
            "RAG_QDRANT__STORE_URL": self.store_url,
            # One job per worker at a time: two running jobs mean both workers are in the middle of one.
            "RAG_INGESTION__WORKER_CONCURRENCY": "1",
            "RAG_INGESTION__JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            # The test reads every job's status up to 20 times a second while it waits for both workers to be busy:
            # on a slow machine that passed the per-key limit (1,200 a minute) and the poll got a 429. Limits have
            # their own tests (test_rate_limits.py).
            "RAG_LIMITS__RATE": "off",
        }
        store_port = self.store_url.rsplit(":", 1)[1]
        self.store = Proc("store", ["store", "--port", store_port], env, tmp / "store.log")
        self.api = Proc("api", ["api", "--port", str(api_port)], env, tmp / "api.log")
        self.workers = [Proc(f"worker-{i}", ["worker"], env, tmp / f"worker-{i}.log") for i in (1, 2)]

    @property
    def procs(self) -> list[Proc]:
        return [self.store, self.api, *self.workers]

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def _up(self, proc: Proc, url: str) -> bool:
        assert proc.alive(), f"{proc.name} exited at start:\n{self.logs()}"
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def start(self) -> None:
        self.store.start()
        poll_sync(lambda: self._up(self.store, self.store_url), bool, what="the store owner", every_s=0.2)
        # The API first: it upgrades the fresh database's schema, then the workers find it ready.
        self.api.start()
        poll_sync(lambda: self._up(self.api, self.api_url), bool, what="the API", every_s=0.2)
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with fresh_database("postgresql", tmp_path) as database_url:
        deployment = Deployment(tmp_path, database_url)
        try:
            deployment.start()
            yield deployment
        finally:
            deployment.stop()  # before the database is dropped


def _documents() -> Iterator[tuple[str, str, str]]:
    """(filename, text, a sentence of it) for each document: SciFact abstracts, ABSTRACTS_PER_DOC to a file."""
    with (SHARED / "scifact" / "corpus.jsonl").open() as fh:
        for n in range(DOCS):
            rows = [json.loads(next(fh)) for _ in range(ABSTRACTS_PER_DOC)]
            text = "\n\n".join(f"{r['title']}\n\n{r['text']}" for r in rows)
            yield f"doc-{n:02d}.txt", text, rows[0]["title"]


async def _jobs(client: httpx.AsyncClient, job_ids: list[str]) -> dict[str, dict]:
    out = {}
    for job_id in job_ids:
        resp = await client.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        out[job_id] = resp.json()
    return out


async def test_a_killed_worker_leaves_every_document_indexed_exactly_once(deployment: Deployment) -> None:
    from retrieval.stores.remote import RemoteStore

    docs = list(_documents())
    async with httpx.AsyncClient(base_url=deployment.api_url, timeout=120) as client:
        assert (await client.post("/v1/collections", json={"name": "split"})).status_code == 201
        files = [("files", (name, text.encode(), "text/plain")) for name, text, _ in docs]
        resp = await client.post("/v1/collections/split/documents", files=files)
        assert resp.status_code == 202, resp.text
        uploads = resp.json()
        job_ids = [u["job_id"] for u in uploads]
        assert len(set(job_ids)) == DOCS

        # Both workers in the middle of a job (one job each at a time), then one of them dies without warning.
        def both_busy(jobs: dict[str, dict]) -> bool:
            assert any(j["status"] != "succeeded" for j in jobs.values()), "every job ended before a kill"
            return sum(j["status"] == "running" for j in jobs.values()) == 2

        at_kill = await poll(lambda: _jobs(client, job_ids), both_busy, what="both workers to be mid-job", every_s=0.05)
        victim = deployment.workers[0]
        assert victim.popen is not None and victim.alive(), deployment.logs()
        victim.popen.send_signal(signal.SIGKILL)
        victim.popen.wait(30)
        interrupted = {job_id for job_id, job in at_kill.items() if job["status"] == "running"}

        def all_finished(jobs: dict[str, dict]) -> bool:
            assert deployment.workers[1].alive(), deployment.logs()
            return all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs.values())

        jobs = await poll(lambda: _jobs(client, job_ids), all_finished, what="every job to finish", every_s=0.5)
        assert all(j["status"] == "succeeded" for j in jobs.values()), jobs
        # The killed worker's job ran again (on the survivor): its second attempt finished it; every other job ran once.
        again = {job_id: j["attempts"] for job_id, j in jobs.items() if j["attempts"] != 1}
        assert list(again.values()) == [2] and set(again) <= interrupted, (again, interrupted)

        # Exactly once: one active version per document, and the store holds exactly its chunks, all active.
        store = RemoteStore(deployment.store_url, 30)
        try:
            total = 0
            for upload in uploads:
                detail = (await client.get(f"/v1/documents/{upload['document_id']}")).json()
                assert detail["active_version"] == 1 and [v["status"] for v in detail["versions"]] == ["active"]
                chunks = detail["chunk_count"]
                assert chunks > 0
                selector = ChunkSelector(document_id=upload["document_id"])
                assert await store.count(selector) == chunks, detail
                active = ChunkSelector(document_id=upload["document_id"], state=ChunkState.active)
                assert await store.count(active) == chunks
                total += chunks
            assert await store.count(ChunkSelector(collection="split")) == total
            info = (await client.get("/v1/collections/split")).json()
            assert (info["document_count"], info["chunk_count"]) == (DOCS, total)
        finally:
            await store.close()

        # Questions are answered through the API, from the right document.
        for name, _, title in (docs[0], docs[DOCS // 2], docs[-1]):
            hits = (await client.post("/v1/search", json={"query": title, "collections": ["split"]})).json()["hits"]
            assert hits[0]["filename"] == name, hits[:3]
            assert len({h["chunk_id"] for h in hits}) == len(hits)  # no chunk twice
            resp = await client.post("/v1/query", json={"question": title, "collections": ["split"]})
            assert resp.status_code == 200, resp.text
            answer = resp.json()
            assert not answer["abstained"] and name in {c["filename"] for c in answer["citations"]}, answer

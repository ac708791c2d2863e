"""A service killed in the middle of a job finishes that job after a restart, with no duplicate or orphan chunk."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import pytest

from kernel.types import ChunkSelector, ChunkState
from tests.conftest import SHARED
from tests.support.polling import poll_sync, wait_job_sync
from tests.support.service import ServiceProcess


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _is_valkey(pid: int) -> bool:
    try:
        return "valkey" in Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return False


def _midway_through_embedding(job: dict) -> bool:
    assert job["status"] not in ("succeeded", "failed"), f"finished before it could be killed: {job}"
    return job["stage"] == "embedding" and 0 < job["done"] < job["total"]


@pytest.mark.slow
def test_killed_during_embedding_completes_after_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    svc = ServiceProcess(data_dir)
    svc.start()
    try:
        with (SHARED / "scifact" / "corpus.jsonl").open() as fh:
            rows = [json.loads(next(fh)) for _ in range(400)]
        body = "\n".join(json.dumps({"id": r["_id"], "title": r["title"], "text": r["text"]}) for r in rows)
        httpx.post(svc.url + "/v1/collections", json={"name": "killme"}).raise_for_status()
        resp = httpx.post(svc.url + "/v1/collections/killme/documents/import", content=body, timeout=60)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]

        poll_sync(
            lambda: httpx.get(f"{svc.url}/v1/jobs/{job_id}").json(),
            _midway_through_embedding,
            what=f"job {job_id} to be midway through embedding",
            every_s=0.05,
        )
        valkey_pids = [p for p in svc.children() if _is_valkey(p)]
        assert valkey_pids, f"no embedded valkey-server among the service's children {svc.children()}"
        svc.kill()
        poll_sync(
            lambda: [p for p in valkey_pids if _alive(p)],
            lambda alive: not alive,
            what="the embedded valkey-server to exit with its service",
        )

        svc.start()
        job = wait_job_sync(svc.url, job_id)
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

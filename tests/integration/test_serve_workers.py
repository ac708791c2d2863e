"""`rag serve` with worker processes (RAG_INGESTION__WORKER_PROCESSES): the embedded stack ingests in separate
processes around a store owner, and every one of them goes when the service is killed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import SHARED
from tests.support.polling import poll_sync
from tests.support.service import ServiceProcess, import_records_sync


def _command(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie still answers kill(0)
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow
def test_serve_runs_jobs_in_worker_processes_that_die_with_it(tmp_path: Path) -> None:
    svc = ServiceProcess(tmp_path / "data", env={"RAG_INGESTION__WORKER_PROCESSES": "2"})
    svc.start()
    try:
        children = {pid: _command(pid)[2:] for pid in svc.children()}
        roles = sorted(cmd[1] for cmd in children.values() if cmd[:1] == ["rag"])
        assert roles == ["store", "worker", "worker"], children

        with (SHARED / "scifact" / "corpus.jsonl").open() as fh:
            rows = [json.loads(next(fh)) for _ in range(30)]
        records = [{"id": r["_id"], "title": r["title"], "text": r["text"]} for r in rows]
        # The serving process runs no jobs here: the import finishes only if the worker processes run it.
        import_records_sync(svc.url, "pooled", records)
        body = {"query": rows[7]["title"], "collections": ["pooled"]}
        hits = httpx.post(svc.url + "/v1/search", json=body, timeout=120).json()["hits"]
        top = httpx.get(f"{svc.url}/v1/documents/{hits[0]['document_id']}", timeout=60).json()
        assert top["key"] == rows[7]["_id"], (top, hits[:2])
        assert all(_alive(pid) for pid in children), "a child process died while the service ran"

        svc.kill()  # SIGKILL: no chance to stop its children itself
        poll_sync(
            lambda: [pid for pid in children if _alive(pid)],
            lambda alive: not alive,
            what="the store owner, the workers and Valkey to go with the killed service",
        )
    finally:
        svc.stop()

"""`rag ingest`: upload files to a running service and follow their jobs with a progress bar."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rag.cli_support import service_transport


@dataclass
class Outcome:
    path: Path
    status: str  # indexed | unchanged | failed | rejected
    detail: str = ""
    chunks: int = 0


def collect_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")))
        else:
            files.append(p)
    return files


def _error(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except ValueError:
        return resp.text


def ingest_paths(paths: list[Path], collection: str, url: str, timeout: float) -> int:
    console = Console(stderr=True)
    files = collect_files(paths)
    if not files:
        console.print("nothing to upload")
        return 1
    outcomes: list[Outcome] = []
    # Polling many jobs can go over the service's rate: the transport waits out each 429.
    with httpx.Client(base_url=url, timeout=120, transport=service_transport()) as client:
        try:
            resp = client.get(f"/v1/collections/{collection}")
        except httpx.ConnectError:
            console.print(f"[red]cannot reach the service at {url}[/red]: start it with `make run`")
            return 2
        if resp.status_code == 404:
            created = client.post("/v1/collections", json={"name": collection})
            if created.status_code != 201:
                console.print(f"[red]cannot create collection {collection!r}[/red]: {_error(created)}")
                return 2
        jobs: dict[str, tuple[Outcome, str]] = {}
        for path in files:
            with path.open("rb") as fh:
                resp = client.post(f"/v1/collections/{collection}/documents", files={"files": (path.name, fh)})
            if resp.status_code != 202:
                outcomes.append(Outcome(path, "rejected", f"{resp.status_code}: {_error(resp)}"))
                continue
            result = resp.json()[0]
            outcome = Outcome(path, "queued")
            outcomes.append(outcome)
            if result["status"] == "unchanged":
                outcome.status = "unchanged"
                continue
            jobs[result["job_id"]] = (outcome, result["document_id"])
        _follow(client, jobs, timeout, console)
    _summary(outcomes, console)
    return 0 if all(o.status in ("indexed", "unchanged") for o in outcomes) else 1


def _follow(client: httpx.Client, jobs: dict[str, tuple[Outcome, str]], timeout: float, console: Console) -> None:
    if not jobs:
        return
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("indexing", total=len(jobs))
        pending = dict(jobs)
        while pending and time.monotonic() < deadline:
            for job_id, (outcome, _doc) in list(pending.items()):
                info = client.get(f"/v1/jobs/{job_id}").json()
                if info["status"] == "succeeded":
                    outcome.status, outcome.chunks = "indexed", info["total"]
                elif info["status"] in ("failed", "cancelled"):
                    # Cancelled: the document was deleted (by someone else) before it was indexed.
                    outcome.status, outcome.detail = "failed", info.get("error") or info["status"]
                else:
                    continue
                del pending[job_id]
                progress.advance(bar)
            time.sleep(0.5)
        for outcome, _doc in pending.values():
            outcome.status, outcome.detail = "failed", "still running when the wait ended"


def _summary(outcomes: list[Outcome], console: Console) -> None:
    table = Table(title="ingestion summary")
    for col in ("file", "outcome", "chunks", "reason"):
        table.add_column(col)
    colors = {"indexed": "green", "unchanged": "cyan", "failed": "red", "rejected": "red"}
    for o in outcomes:
        table.add_row(str(o.path), f"[{colors.get(o.status, 'white')}]{o.status}[/]", str(o.chunks or ""), o.detail)
    console.print(table)
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("indexed", "unchanged", "failed", "rejected")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))

"""The `rag` command: run the service (embedded or split into API and worker) and talk to a running one."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kernel.privacy import enforce_offline
from kernel.settings import Settings
from rag.cli_admin import audit_app, keys_app
from rag.cli_reindex import reindex
from rag.cli_support import cli_settings, run_on_database, service_transport

T = TypeVar("T")

app = typer.Typer(add_completion=False, no_args_is_help=True, help="RAG service: grounded answers with citations.")


def _observe(settings: Settings) -> None:
    """This process's logging and metric storage, before anything logs or counts."""
    from rag.observability.logs import configure_logging
    from rag.observability.metrics import prepare_multiprocess

    configure_logging(settings)
    if settings.observability.multiproc_dir is not None:
        prepare_multiprocess(settings.observability.multiproc_dir)


def _serve(settings: Settings, embedded_worker: bool) -> None:
    _require_schema(settings)
    _observe(settings)
    import uvicorn

    from rag.api.app import create_app

    if embedded_worker and settings.ingestion.worker_processes:
        _serve_with_pool(settings)
        return
    app_ = create_app(settings, embedded_worker=embedded_worker)
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"RAG service on {base} — API docs at {base}/docs, health at {base}/healthz", err=True)
    # log_config=None: the root logger set up by _observe (JSON lines with ids) writes uvicorn's lines too.
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level=settings.log_level, log_config=None)


def _serve_with_pool(settings: Settings) -> None:
    """Embedded mode whose jobs run in worker processes around a store owner (RAG_INGESTION__WORKER_PROCESSES)."""
    import uvicorn

    from rag.api.app import create_app
    from rag.services import Services, build_services
    from rag.worker_pool import LocalPool

    pool = LocalPool(settings)
    try:
        settings = pool.start_store()

        async def services_with_workers(s: Settings) -> Services:
            svc = await build_services(s)
            await pool.start_workers(svc.redis_url)
            svc.on_close.append(pool.stop_workers)  # before the embedded Valkey they use stops
            return svc

        app_ = create_app(settings, embedded_worker=False, services_factory=services_with_workers)
        base = f"http://{settings.host}:{settings.port}"
        typer.echo(
            f"RAG service on {base} with {settings.ingestion.worker_processes} worker processes — API docs at "
            f"{base}/docs, health at {base}/healthz",
            err=True,
        )
        uvicorn.run(app_, host=settings.host, port=settings.port, log_level=settings.log_level)
    finally:
        pool.stop()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Embedded mode: the API and an in-process worker in one process (the default deployment)."""
    _serve(cli_settings(host=host, port=port), embedded_worker=True)


@app.command()
def api(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """The API alone; `rag worker` processes run the jobs. Needs Redis, PostgreSQL and Qdrant servers."""
    settings = cli_settings(host=host, port=port)
    _require_servers(settings)
    _serve(settings, embedded_worker=False)


@app.command()
def worker() -> None:
    """An ingestion worker for a split deployment (see `rag api`)."""
    settings = cli_settings()
    _require_servers(settings)
    _require_schema(settings)
    _observe(settings)
    enforce_offline()
    from rag.worker import run_standalone

    asyncio.run(run_standalone(settings))


@app.command()
def store(
    host: Annotated[str, typer.Option(help="Address to listen on; keep it on loopback or a private network.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8001,
) -> None:
    """Own the embedded Qdrant Edge store (in RAG_DATA_DIR) and serve it to `rag api` and `rag worker` processes
    that set RAG_QDRANT__STORE_URL=http://HOST:PORT: split mode on one machine without a Qdrant server."""
    settings = cli_settings()
    enforce_offline()
    import uvicorn

    from rag.store_owner import create_store_app
    from retrieval.stores.qdrant_edge import QdrantEdgeStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app_ = create_store_app(QdrantEdgeStore(settings.qdrant_path))
    typer.echo(f"vector store owner for {settings.qdrant_path} on http://{host}:{port}", err=True)
    # No access log: every chunk upsert and search is a request here.
    uvicorn.run(app_, host=host, port=port, log_level=settings.log_level, access_log=False)


def _require_servers(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("RAG_REDIS__URL", settings.redis.url),
            ("RAG_DATABASE__URL", settings.database.url),
            ("RAG_QDRANT__URL or RAG_QDRANT__STORE_URL", settings.qdrant.url or settings.qdrant.store_url),
        )
        if not value
    ]
    if missing:
        typer.echo(
            f"split API/worker processes share servers; set {', '.join(missing)} "
            "(the embedded Qdrant and Valkey belong to one process: use `rag serve` for that, or `rag store` "
            "to share one embedded Qdrant between processes)",
            err=True,
        )
        raise typer.Exit(2)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to upload.", exists=True)],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Target collection (created if missing).")],
    url: Annotated[str, typer.Option(envvar="RAG_URL", help="Base URL of the running service.")] = (
        "http://127.0.0.1:8000"
    ),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the jobs.")] = 3600.0,
) -> None:
    """Upload files and folders to a running service and follow the jobs to the end."""
    from rag.client_ingest import ingest_paths

    code = ingest_paths(paths, collection, url, timeout)
    raise typer.Exit(code)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: Annotated[list[str], typer.Option("--collection", "-c", help="Collection(s) to answer from.")],
    url: Annotated[str, typer.Option(envvar="RAG_URL", help="Base URL of the running service.")] = (
        "http://127.0.0.1:8000"
    ),
    generator: Annotated[str | None, typer.Option(help="'extractive' or 'llm'.")] = None,
) -> None:
    """Ask a running service; prints the answer and its numbered sources."""
    import httpx

    body = {"question": question, "collections": collection, "generator": generator}
    try:
        with httpx.Client(timeout=300, transport=service_transport()) as client:
            resp = client.post(f"{url}/v1/query", json=body)
    except httpx.ConnectError:
        typer.echo(f"cannot reach the service at {url}: start it with `make run`", err=True)
        raise typer.Exit(2) from None
    data = resp.json()
    if resp.status_code != 200:
        typer.echo(f"error {resp.status_code}: {data.get('error', data)}", err=True)
        raise typer.Exit(1)
    typer.echo(data["answer"])
    if data["abstained"]:
        typer.echo(f"(abstained: {data['abstain_reason']})")
    for c in data["citations"]:
        where = f", page {c['page']}" if c.get("page") else ""
        typer.echo(f"  [{c['n']}] {c['filename']}{where} (version {c['version']})")


app.command()(reindex)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")

db_app = typer.Typer(no_args_is_help=True, help="The metadata database: its schema revision, upgrades.")
app.add_typer(db_app, name="db")


def _require_schema(settings: Settings) -> None:
    """With auto-upgrade off, an out-of-date schema stops the start here, in one line that names the command."""
    if settings.database.auto_upgrade:
        return  # the service upgrades it at start
    from rag.storage import migrate

    status = run_on_database(migrate.status, settings)
    if not status.up_to_date:
        typer.echo(status.refusal(), err=True)
        raise typer.Exit(1)


@db_app.command("current")
def db_current() -> None:
    """The database's schema revision and the one this release needs; exit 1 when an upgrade is due."""
    from rag.storage import migrate

    status = run_on_database(migrate.status)
    typer.echo(status.describe())
    if not status.up_to_date:
        if status.known:
            typer.echo(f"upgrade it with `{migrate.UPGRADE_COMMAND}`", err=True)
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the schema (a database from before migrations is adopted as 0001 first). Back the database up first."""
    from rag.storage import migrate

    before, after = run_on_database(lambda url: migrate.upgrade(url, revision))
    if before.current == after.current:
        typer.echo(f"nothing to do: {after.describe()}")
    else:
        typer.echo(f"upgraded from {before.current or '(no revision)'} to {after.current}: {after.describe()}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="The revision to go back to (0001 or later).")],
) -> None:
    """Go back to an earlier revision, before running an earlier release. Back the database up first."""
    from rag.storage import migrate

    before, after = run_on_database(lambda url: migrate.downgrade(url, revision))
    if before.current == after.current:
        typer.echo(f"nothing to do: {after.describe()}")
    else:
        typer.echo(f"downgraded from {before.current} to {after.current}")


eval_app = typer.Typer(no_args_is_help=True, help="Offline evaluation runs against a running service.")
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
def eval_run(
    dataset: Annotated[
        Path, typer.Argument(help="JSONL: question, reference?, gold_ids?, id?", exists=True, dir_okay=False)
    ],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to answer from.")],
    url: Annotated[str, typer.Option(envvar="RAG_URL", help="Base URL of the running service.")] = (
        "http://127.0.0.1:8000"
    ),
    out: Annotated[Path, typer.Option(help="Folder for eval-report.json and eval-report.html.")] = Path("eval-out"),
    generator: Annotated[str | None, typer.Option(help="'extractive' or 'llm'.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 4,
    min_faithfulness: Annotated[float | None, typer.Option(min=0, max=1, help="Gate: least mean.")] = None,
    min_context_precision: Annotated[float | None, typer.Option(min=0, max=1)] = None,
    min_context_recall: Annotated[float | None, typer.Option(min=0, max=1)] = None,
    min_id_context_precision: Annotated[float | None, typer.Option(min=0, max=1)] = None,
    min_id_context_recall: Annotated[float | None, typer.Option(min=0, max=1)] = None,
    max_abstention_rate: Annotated[float | None, typer.Option(min=0, max=1)] = None,
    gate_file: Annotated[
        Path | None,
        typer.Option("--gate", dir_okay=False, help="JSON of thresholds (tests/data/gate/*.json); flags override."),
    ] = None,
) -> None:
    """Run a dataset through the service; exit 1 when the quality gate fails, 2 when the run cannot start."""
    import httpx

    from evals.runner import DatasetError, Gate, RunOptions, load_dataset, run_eval, write_reports

    flags = Gate(
        faithfulness=min_faithfulness,
        context_precision=min_context_precision,
        context_recall=min_context_recall,
        id_context_precision=min_id_context_precision,
        id_context_recall=min_id_context_recall,
        max_abstention_rate=max_abstention_rate,
    )
    gate = _gate(gate_file, flags)

    async def go() -> dict:
        # Concurrent questions that poll their scores can go over the service's rate: each 429 is waited out.
        async with httpx.AsyncClient(base_url=url, timeout=300, transport=service_transport()) as client:
            options = RunOptions(generator=generator, concurrency=concurrency)
            return await run_eval(client, load_dataset(dataset, limit), collection, gate, options)

    try:
        report = asyncio.run(go())
    except DatasetError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except httpx.ConnectError:
        typer.echo(f"cannot reach the service at {url}: start it with `make run`", err=True)
        raise typer.Exit(2) from None
    except httpx.HTTPError as exc:
        typer.echo(f"the service at {url} failed: {exc}", err=True)
        raise typer.Exit(2) from None
    json_path, html_path = write_reports(report, out)
    summary = report["summary"]
    for metric, mean in summary["means"].items():
        typer.echo(f"{metric:22} {'—' if mean is None else f'{mean:.3f}'}")
    typer.echo(f"{summary['count']} questions, abstention rate {summary['abstention_rate']}; {json_path}, {html_path}")
    if not summary["passed"]:
        typer.echo("quality gate FAILED: " + "; ".join(summary["gate_failures"]), err=True)
        raise typer.Exit(1)
    typer.echo("quality gate passed")


def _gate(path: Path | None, flags: Any) -> Any:
    """The thresholds of a gate file (kept in the repository beside its dataset), with the flags given over them."""
    if path is None:
        return flags
    from pydantic import ValidationError

    from evals.runner import Gate

    try:
        base = Gate.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ValidationError) as exc:
        typer.echo(f"--gate {path}: {exc}", err=True)
        raise typer.Exit(2) from None
    return base.model_copy(update=flags.model_dump(exclude_none=True))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        time.sleep(0)
        sys.exit(130)

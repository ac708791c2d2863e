"""What every `rag` subcommand shares: settings from the environment and a database run that fails in one line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer

from kernel.settings import Settings, SettingsError, load_settings

T = TypeVar("T")


def cli_settings(**overrides: object) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def service_transport(inner: Any = None) -> Any:
    """An httpx transport (sync and async) for the `rag` commands that call a running service: a 429 (over the
    key's rate, RAG_LIMITS__RATE) is waited out as its Retry-After says and sent again. The service refuses before
    it does anything, so even a POST is safe to resend. `inner`: the transport underneath (default: the network)."""
    from httpx_retries import Retry, RetryTransport

    retry = Retry(
        total=10,
        allowed_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
        status_forcelist=[429],
        respect_retry_after_header=True,
        max_backoff_wait=120,
    )
    return RetryTransport(transport=inner, retry=retry)


def run_on_database(run: Callable[[str], Coroutine[Any, Any, T]], settings: Settings | None = None) -> T:
    """Run a schema operation on the configured database; a problem is one line for the operator, not a trace."""
    from sqlalchemy.exc import DBAPIError

    from kernel.errors import RagError

    settings = settings or cli_settings()
    if settings.database.url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the embedded SQLite file lives there
    try:
        return asyncio.run(run(settings.database_url))
    except RagError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    except (DBAPIError, OSError) as exc:
        typer.echo(f"cannot use the database (RAG_DATABASE__URL): {exc}", err=True)
        raise typer.Exit(2) from None

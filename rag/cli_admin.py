"""`rag keys` and `rag audit`: work on the database directly, with or without the service running (that is how the
first admin key is made)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer

from kernel.access import ALL_COLLECTIONS, Role
from kernel.records import NewKey
from rag.cli_support import run_on_database

T = TypeVar("T")

keys_app = typer.Typer(no_args_is_help=True, help="API keys: create (shown once), list, revoke.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")


def _on_storage(run: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run with the database upgraded to this release's schema, as the service itself would."""

    async def go(url: str) -> T:
        from rag.storage.catalog import Catalog

        catalog = Catalog(url)
        try:
            await catalog.prepare_schema()
            return await run(catalog.engine)
        finally:
            await catalog.close()

    return run_on_database(go)


def _parse_expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. 2027-01-01T00:00:00+00:00") from None
    if moment.tzinfo is None:
        raise typer.BadParameter("the expiry needs a time zone, e.g. 2027-01-01T00:00:00+00:00")
    return moment


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="reader, owner, analyst or admin.")],
    collections: Annotated[str, typer.Option(help=f"Comma-separated collection names, or '{ALL_COLLECTIONS}'.")],
    name: Annotated[str, typer.Option(help="Who or what the key is for.")] = "",
    expires: Annotated[str | None, typer.Option(help="ISO 8601 time with a zone; default: never.")] = None,
) -> None:
    """Make a key; the key itself is printed once, as the last line, and never again."""
    from rag.storage.keys import KeyStore

    names = sorted({c.strip() for c in collections.split(",") if c.strip()})
    if not names:
        raise typer.BadParameter("name at least one collection, or '*'")
    new = NewKey(role.value, names, name, _parse_expiry(expires))
    stored, key = _on_storage(lambda engine: KeyStore(engine).create(new))
    typer.echo(f"created key {stored.id} ({stored.role}; collections: {', '.join(stored.collections)})", err=True)
    typer.echo("store it now: only its hash is kept", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, role, collections, and whether it is revoked or expired (never the key itself)."""
    from rag.storage.keys import KeyStore

    for k in _on_storage(lambda engine: KeyStore(engine).list_all()):
        state = "revoked" if k.revoked_at else f"expires {k.expires_at.isoformat()}" if k.expires_at else "active"
        typer.echo(f"{k.id}\t{k.role}\t{','.join(k.collections)}\t{state}\t{k.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `rag keys list`).")]) -> None:
    """Revoke a key: its next request is refused."""
    from rag.storage.keys import KeyStore

    revoked = _on_storage(lambda engine: KeyStore(engine).revoke(key_id))
    typer.echo(f"revoked {revoked.id}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; exit 1 at the first entry that was changed, removed or inserted."""
    from rag.storage.audit import AuditLog

    check = _on_storage(lambda engine: AuditLog(engine).verify())
    if not check.ok:
        typer.echo(f"BROKEN at entry {check.broken_at}: {check.reason} ({check.entries} entries verified before it)")
        raise typer.Exit(1)
    typer.echo(f"ok: {check.entries} entries, chain intact")

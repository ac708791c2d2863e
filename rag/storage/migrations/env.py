"""Alembic's entry point. Migrations run only through `rag.storage.migrate`, which hands over the connection."""

from __future__ import annotations

from alembic import context

from rag.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the migrations with `rag db upgrade` (it connects with the service's settings)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()

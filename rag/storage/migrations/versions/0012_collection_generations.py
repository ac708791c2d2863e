"""collections.generation and collections.reindex: which generation of a collection's chunks queries see, and the
reindex building the next one (`rag reindex`).

Every existing collection is at generation 0, with no reindex running; chunks indexed before carry no generation
and count as generation 0.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collections", sa.Column("generation", sa.Integer, nullable=False, server_default="0"))
    op.add_column("collections", sa.Column("reindex", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("reindex")
        batch.drop_column("generation")

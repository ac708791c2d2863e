"""collections.policy: how a collection's answers treat injection attempts and personal data.

Null for the collections that exist: the defaults of kernel.types.CollectionPolicy apply to them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collections", sa.Column("policy", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("policy")

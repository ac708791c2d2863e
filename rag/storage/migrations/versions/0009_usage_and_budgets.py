"""Budgets and budget fallbacks (issue 11, Cost): the `budgets` table, and answers.fallback, set on an answer made
by the extractive generator because an LLM answer was over budget.

Token usage itself was already stored with every answer (answers.usage); `GET /v1/usage` sums it. No budget exists
after the upgrade, and no existing answer was a fallback.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("answers", sa.Column("fallback", sa.String(160), nullable=True))
    op.create_table(
        "budgets",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("target", sa.String(64), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("tokens", sa.BigInteger, nullable=True),
        sa.Column("cost", sa.Float, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("budgets")
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("fallback")

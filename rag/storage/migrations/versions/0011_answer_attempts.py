"""answers.attempts: the model gateway's attempts for an answer (endpoint, model, outcome, duration_ms each).

Null for the answers that exist: they were made without the gateway.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("answers", sa.Column("attempts", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("attempts")

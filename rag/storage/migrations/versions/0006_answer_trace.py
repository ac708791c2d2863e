"""answers.request_id, answers.trace_id: the request that made an answer and its OpenTelemetry trace.

Null for the answers that exist: they were made before requests had ids.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("answers", sa.Column("request_id", sa.String(64), nullable=True))
    op.add_column("answers", sa.Column("trace_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("trace_id")
        batch.drop_column("request_id")

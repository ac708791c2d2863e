"""question_vectors and ops_alerts: drift indicators and their alerts (issue 11, the /ops page).

`question_vectors` keeps the embedding of an answered question (float32 bytes, with the model that made it), so a
day's query drift is read rather than encoded again; rows are written when the indicators are first computed.
`ops_alerts` holds each alert once per day, collection and indicator, with whether its webhook took it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "question_vectors",
        sa.Column("answer_id", sa.String(36), sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "ops_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("day", sa.String(10), nullable=False, index=True),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("indicator", sa.String(48), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("above", sa.Boolean, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_error", sa.Text, nullable=True),
        sa.UniqueConstraint("day", "collection", "indicator", name="uq_ops_alerts_day_collection_indicator"),
    )


def downgrade() -> None:
    op.drop_table("ops_alerts")
    op.drop_table("question_vectors")

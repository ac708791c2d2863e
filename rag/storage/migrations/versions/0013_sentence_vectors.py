"""sentence_vectors: the vectors of candidate answer sentences, encoded at ingestion and read when answering.

Empty after the upgrade: answers over documents indexed before it encode their sentences as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sentence_vectors",
        sa.Column("model_id", sa.String(256), primary_key=True),
        sa.Column("text_sha256", sa.String(64), primary_key=True),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sentence_vectors")

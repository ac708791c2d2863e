"""answer_scores.claimed_by / claimed_until: which scoring batch holds an owed score, and until when.

Before it, the answers a batch was scoring were remembered by the process: two workers could take, and score, the
same answers. A batch now claims them with one compare-and-set UPDATE and renews the claim while it runs; a claim
that runs out (its worker died) frees the answers for the next batch.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("answer_scores", sa.Column("claimed_by", sa.String(128), nullable=True))
    op.add_column("answer_scores", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("answer_scores") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")

"""answers.variant and answers.replay_of: which variant of a collection's experiment answered (RAG_VARIANTS), and
the answer a replay replays.

Null for the answers that exist: they were answered outside any experiment, and none is a replay.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("answers", sa.Column("variant", sa.String(32), nullable=True))
    op.add_column("answers", sa.Column("replay_of", sa.String(36), nullable=True))
    op.create_index("ix_answers_replay_of", "answers", ["replay_of"])


def downgrade() -> None:
    op.drop_index("ix_answers_replay_of", table_name="answers")
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("replay_of")
        batch.drop_column("variant")

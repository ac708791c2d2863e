"""answers.cache_key and answers.cached_from: the answer cache (rag/answer_cache.py).

`cache_key` is set on an answer that may be served again (a digest of its normalised question, collections,
filters, the caller's grants, prompt version and generator); `cached_from` is set on an answer that was served
from cache and names the original. Both null for the answers that exist.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("answers", sa.Column("cache_key", sa.String(64), nullable=True))
    op.add_column("answers", sa.Column("cached_from", sa.String(36), nullable=True))
    op.create_index("ix_answers_cache_key", "answers", ["cache_key"])


def downgrade() -> None:
    op.drop_index("ix_answers_cache_key", table_name="answers")
    with op.batch_alter_table("answers") as batch:
        batch.drop_column("cached_from")
        batch.drop_column("cache_key")

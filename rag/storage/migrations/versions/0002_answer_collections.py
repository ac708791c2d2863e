"""answer_collections: one row per collection an answer drew on, so reports filter by collection in SQL.

Before it, the report read the newest N answers and only then kept those of the collection: answers of other
collections could push the collection's own out of the window, and `truncated` and the counts were wrong. The rows
are back-filled from the JSON list every answer keeps.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answer_collections",
        sa.Column("answer_id", sa.String(36), sa.ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("collection", sa.String(64), primary_key=True),
    )
    op.create_index("ix_answer_collections_collection", "answer_collections", ["collection", "answer_id"])
    # One statement in the database, however many answers there are; DISTINCT: a list may name a collection twice.
    if op.get_bind().dialect.name == "postgresql":
        elements = "json_array_elements_text(a.collections) AS c(value)"
    else:
        elements = "json_each(a.collections) AS c"
    op.execute(
        "INSERT INTO answer_collections (answer_id, collection) "
        f"SELECT DISTINCT a.id, c.value FROM answers AS a CROSS JOIN {elements}"
    )


def downgrade() -> None:
    op.drop_index("ix_answer_collections_collection", table_name="answer_collections")
    op.drop_table("answer_collections")

"""sentence_refs: which document versions (and generation of their collection's chunks) have which sentence
vectors, so that a vector is deleted once no kept chunk has its sentence (a deleted document's text must not stay
behind as vectors).

sentence_vectors is emptied: the rows stored before this upgrade have no references, so nothing could ever tell
when they may go. It is a cache: answers over documents indexed before it encode their sentences as before, and
`rag reindex` (or a new upload) stores them again, with references.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sentence_refs",
        sa.Column("document_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("generation", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.String(256), primary_key=True),
        sa.Column("text_sha256", sa.String(64), primary_key=True),
        sa.ForeignKeyConstraint(
            ["document_id", "version"], ["versions.document_id", "versions.version"], ondelete="CASCADE"
        ),
    )
    op.create_index("ix_sentence_refs_vector", "sentence_refs", ["model_id", "text_sha256"])
    op.execute("DELETE FROM sentence_vectors")


def downgrade() -> None:
    op.drop_index("ix_sentence_refs_vector", table_name="sentence_refs")
    op.drop_table("sentence_refs")

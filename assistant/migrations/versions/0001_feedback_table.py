"""The feedback table, as it was before migrations (one row per rated answer).

Frozen: later changes are new revisions, never edits here. Timestamps stay ISO-8601 text
(UTC, "+00:00") so that a SQLite file made by the code before migrations is this revision
as it stands, and the retention cut-off compares alike on every database.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("user_input", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("citations", sa.Text, nullable=False),  # JSON list of Citation objects
        sa.Column("triage_level", sa.Text, nullable=False),
        sa.Column("rating", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("history", sa.Text, nullable=False, server_default="[]"),  # JSON {role, content}
        sa.CheckConstraint("rating IN ('up', 'down')", name="feedback_rating"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("feedback")

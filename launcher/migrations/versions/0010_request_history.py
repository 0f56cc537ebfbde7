"""Requests for missing apps close the loop: a history of closed requests, and notices.

app_request_closed: one row per request an admin dismissed or marked as added (the app's name,
how many people asked, their departments, the outcome, which admin and when); no pseudonyms of
the people who asked.
app_request.added_app, app_request.notice_shown_at: a request marked as added stays until its
asker's grid has told them the app is there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "app_request_closed",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.Column("departments", sa.String(2000), nullable=False),
        sa.Column("first_asked", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_asked", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_app_request_closed_closed_at", "app_request_closed", ["closed_at"])
    with op.batch_alter_table("app_request") as batch:
        batch.add_column(sa.Column("added_app", sa.String(64), nullable=True))
        batch.add_column(sa.Column("notice_shown_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("app_request") as batch:
        batch.drop_column("notice_shown_at")
        batch.drop_column("added_app")
    op.drop_index("ix_app_request_closed_closed_at", table_name="app_request_closed")
    op.drop_table("app_request_closed")

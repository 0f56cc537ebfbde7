"""Announcements, who saw or dismissed them, and the digest's subscribers.

announcement: news written by editors on /admin/announcements.
announcement_seen: one row per person per announcement they were shown (its reach), with
whether they dismissed it.
digest_subscriber: people who opted in to the weekly digest; their e-mail address is kept only
while they are opted in.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "announcement",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("body", sa.String(1000), nullable=False),
        sa.Column("link", sa.String(2000), nullable=True),
        sa.Column("starts", sa.Date(), nullable=False),
        sa.Column("ends", sa.Date(), nullable=False),
        sa.Column("groups", sa.String(2000), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
    )
    op.create_index("ix_announcement_window", "announcement", ["ends", "starts"])
    op.create_table(
        "announcement_seen",
        sa.Column(
            "announcement_id",
            _ID,
            sa.ForeignKey("announcement.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("dismissed", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "digest_subscriber",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("groups", sa.String(4000), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_week", sa.String(8), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("digest_subscriber")
    op.drop_table("announcement_seen")
    op.drop_index("ix_announcement_window", table_name="announcement")
    op.drop_table("announcement")

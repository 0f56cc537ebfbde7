"""Launches by source per month: month_source (counts with their cell keys, kept) and
user_month_source (who launched from which source in a month, purged with the raw events).

The tables start empty: ``launcher db rebuild-rollups`` after upgrading fills them for the
months whose raw launches are still there (older months have no figures by source).

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_month_source",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "month_source",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("users", sa.Integer, nullable=False, server_default="0"),
        sa.Column("launches_key", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("users_key", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("month_source")
    op.drop_table("user_month_source")

"""Rollup tables for reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _user_cols() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), nullable=False, server_default=""),
    ]


def upgrade() -> None:
    op.create_table(
        "usage_day",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), primary_key=True),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "user_day",
        sa.Column("day", sa.Date, primary_key=True),
        *_user_cols(),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("signins", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "user_day_app",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        *_user_cols(),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "user_month",
        sa.Column("month", sa.Date, primary_key=True),
        *_user_cols(),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("signins", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "user_first",
        *_user_cols(),
        sa.Column("first_day", sa.Date, nullable=False),
    )
    op.create_table(
        "month_stats",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("active_users", sa.Integer, nullable=False, server_default="0"),
        sa.Column("launchers", sa.Integer, nullable=False, server_default="0"),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("signins", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "month_cell",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("weekday", sa.Integer, primary_key=True),
        sa.Column("hour", sa.Integer, primary_key=True),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("users", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "user_month_app",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "month_app",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("users", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "cohort_month",
        sa.Column("cohort", sa.Date, primary_key=True),
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("users", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "cell_seen",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("weekday", sa.Integer, primary_key=True),
        sa.Column("hour", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    for table in (
        "cohort_month",
        "month_app",
        "user_month_app",
        "cell_seen",
        "month_cell",
        "month_stats",
        "user_first",
        "user_month",
        "user_day_app",
        "user_day",
        "usage_day",
    ):
        op.drop_table(table)

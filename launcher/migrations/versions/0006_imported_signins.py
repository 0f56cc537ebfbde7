"""Imported sign-ins: the identity provider's sign-in logs, joined with the portal's launches.

imported_signin: one row per successful interactive sign-in (pseudonymous user id), unique per
provider and record id so that a record imported twice is stored once. signin_day,
signin_user_day, signin_user_month: the gateway report's rollups (see launcher/models.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _counts() -> list[sa.Column[int]]:
    return [
        sa.Column("signins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("via_portal", sa.Integer, nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    op.create_table(
        "imported_signin",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("provider_app_id", sa.String(128), nullable=False),
        sa.Column("provider_app", sa.String(200), nullable=False),
        sa.Column("department", sa.String(128), nullable=False),
        sa.Column("via_portal", sa.SmallInteger, nullable=False),
        sa.UniqueConstraint("provider", "record_id", name="uq_imported_signin_record"),
    )
    op.create_index("ix_imported_signin_user_ts", "imported_signin", ["user_id", "ts"])
    op.create_index("ix_imported_signin_ts", "imported_signin", ["ts"])
    op.create_table(
        "signin_day",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("provider_app", sa.String(200), primary_key=True),
        sa.Column("department", sa.String(128), primary_key=True),
        *_counts(),
    )
    for name, period in (("signin_user_day", "day"), ("signin_user_month", "month")):
        op.create_table(
            name,
            sa.Column(period, sa.Date, primary_key=True),
            sa.Column("app_id", sa.String(64), primary_key=True),
            sa.Column("provider_app", sa.String(200), primary_key=True),
            sa.Column("user_id", sa.String(64), primary_key=True),
            sa.Column("department", sa.String(128), nullable=False, server_default=""),
            *_counts(),
        )


def downgrade() -> None:
    op.drop_table("signin_user_month")
    op.drop_table("signin_user_day")
    op.drop_table("signin_day")
    op.drop_index("ix_imported_signin_ts", table_name="imported_signin")
    op.drop_index("ix_imported_signin_user_ts", table_name="imported_signin")
    op.drop_table("imported_signin")

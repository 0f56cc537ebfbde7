"""Favourite apps per user, an index for each user's recent launches, requests for apps.

favourite: the apps a user starred on the grid (pseudonymous user id, as everywhere).
ix_launch_event_user_ts: "recently used" on the grid reads one user's latest launches.
app_request: "missing an app?" on the grid; the admin page lists them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "favourite",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_launch_event_user_ts", "launch_event", ["user_id", "ts"])
    op.create_table(
        "app_request",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("department", sa.String(128), nullable=True),
    )
    op.create_index("ix_app_request_key", "app_request", ["key"])
    op.create_index("ix_app_request_user_id", "app_request", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_app_request_user_id", table_name="app_request")
    op.drop_index("ix_app_request_key", table_name="app_request")
    op.drop_table("app_request")
    op.drop_index("ix_launch_event_user_ts", table_name="launch_event")
    op.drop_table("favourite")

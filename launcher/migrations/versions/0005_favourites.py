"""Favourite apps per user, and an index for each user's recent launches.

favourite: the apps a user starred on the grid (pseudonymous user id, as everywhere).
ix_launch_event_user_ts: "recently used" on the grid reads one user's latest launches.

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


def downgrade() -> None:
    op.drop_index("ix_launch_event_user_ts", table_name="launch_event")
    op.drop_table("favourite")

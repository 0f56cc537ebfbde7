"""App status: the last background check of each app's status_url (launcher/status.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_status",
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("last_checked", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("app_status")

"""Single-use values: sign-in states and logout-token jtis that were used.

spent_token keeps each (as a hash) until it expires, so that a replay is refused in every
worker (launcher/auth/spent.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spent_token",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_spent_token_expires_at", "spent_token", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_spent_token_expires_at", table_name="spent_token")
    op.drop_table("spent_token")

"""Launch and sign-in events, session revocations.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "launch_event",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("department", sa.String(128), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
    )
    op.create_index("ix_launch_event_ts", "launch_event", ["ts"])
    op.create_table(
        "signin_event",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("department", sa.String(128), nullable=True),
    )
    op.create_index("ix_signin_event_ts", "signin_event", ["ts"])
    op.create_table(
        "revocation",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_index("ix_revocation_expires_at", "revocation", ["expires_at"])


def downgrade() -> None:
    op.drop_table("revocation")
    op.drop_table("signin_event")
    op.drop_table("launch_event")

"""Batch ids of written events, so that a batch written twice counts once.

The event writer runs in a process of its own; a batch it committed but did not acknowledge
before it died is spooled by the portal as well. Its id, written in the same transaction as
its events, lets the replay skip it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_batch",
        sa.Column("batch_id", sa.String(80), primary_key=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_event_batch_written_at", "event_batch", ["written_at"])


def downgrade() -> None:
    op.drop_index("ix_event_batch_written_at", table_name="event_batch")
    op.drop_table("event_batch")

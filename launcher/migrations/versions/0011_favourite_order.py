"""Favourites in the person's own order: favourite.position.

Rows that were there before keep the order they had (by created_at): they all get position 0
and the grid sorts by position, then created_at. The first move renumbers that person's rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("favourite") as batch:
        batch.add_column(sa.Column("position", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("favourite") as batch:
        batch.drop_column("position")

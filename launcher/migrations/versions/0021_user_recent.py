"""user_recent: each person's last launch of each app, the grid's "recently used" row
(launcher/personal.py), kept by the flush of launches instead of read from the launches on every
grid page. Filled here from the launches of the last 90 days.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

RECENT_DAYS = 90  # launcher/personal.py, as it was when this was written


def upgrade() -> None:
    op.create_table(
        "user_recent",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
    )
    conn = op.get_bind()
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=RECENT_DAYS)
    # SQLite keeps timestamps as text in SQLAlchemy's form, which sorts as time does
    bound = since.strftime("%Y-%m-%d %H:%M:%S.%f") if conn.dialect.name == "sqlite" else since
    conn.execute(
        sa.text(
            "INSERT INTO user_recent (user_id, app_id, last_ts) "
            "SELECT user_id, app_id, MAX(ts) FROM launch_event WHERE ts >= :since "
            "GROUP BY user_id, app_id"
        ),
        {"since": bound},
    )


def downgrade() -> None:
    op.drop_table("user_recent")

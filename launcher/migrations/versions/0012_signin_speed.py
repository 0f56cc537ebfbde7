"""Gateway rollups that stay fast at ten million imported sign-ins.

signin_user_day (one row per user, app and day: about one per sign-in) goes. Distinct users
now come from bit masks: signin_user_month gains the days of the month with a sign-in
(``days``, ``via_days``); signin_person_month is the same per person over all apps with a tile;
signin_user_span and signin_person_span hold the months of two calendar years, as the launch
side's user_span does (see launcher/models.py). The new tables are filled from the imported
sign-ins that are still there: run ``launcher db rebuild-rollups`` after upgrading when
imported sign-ins were purged (their months then keep only their counts).

Revision ID: 0012
Revises: 0014
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0014"
branch_labels = None
depends_on = None


def _masks(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(n, sa.BigInteger, nullable=False, server_default="0") for n in names]


def upgrade() -> None:
    op.drop_table("signin_user_day")
    with op.batch_alter_table("signin_user_month") as batch:
        for column in _masks("days", "via_days"):
            batch.add_column(column)
    op.create_table(
        "signin_person_month",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), nullable=False, server_default=""),
        *_masks("days", "via_days"),
    )
    op.create_table(
        "signin_user_span",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("provider_app", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), nullable=False, server_default=""),
        *_masks("months", "via_months"),
    )
    op.create_table(
        "signin_person_span",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), nullable=False, server_default=""),
        *_masks("months", "via_months"),
    )
    from launcher.signins import join  # the rollups as the code keeps them

    join.rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("signin_person_span")
    op.drop_table("signin_user_span")
    op.drop_table("signin_person_month")
    with op.batch_alter_table("signin_user_month") as batch:
        batch.drop_column("via_days")
        batch.drop_column("days")
    op.create_table(
        "signin_user_day",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("provider_app", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), nullable=False, server_default=""),
        sa.Column("signins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("via_portal", sa.Integer, nullable=False, server_default="0"),
    )

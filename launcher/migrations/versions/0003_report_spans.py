"""Rollups that keep reports over long periods fast at millions of events.

day_stats: per-day totals (as month_stats). user_span / user_span_app: per user, the months of
two calendar years as bit masks (see launcher/models.py). Two indexes let a report ask "was this
user (on this app) active between these days" with one index probe. The new tables are filled
from the rollups already there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "day_stats",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("active_users", sa.Integer, nullable=False, server_default="0"),
        sa.Column("launchers", sa.Integer, nullable=False, server_default="0"),
        sa.Column("launches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("signins", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "user_span",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), primary_key=True),
        sa.Column("active", sa.Integer, nullable=False, server_default="0"),
        sa.Column("launched", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "user_span_app",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("months", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_user_day_user", "user_day", ["user_id", "day", "department", "launches"])
    op.create_index("ix_user_day_app_user", "user_day_app", ["app_id", "user_id", "day"])

    op.execute("""INSERT INTO day_stats (day, active_users, launchers, launches, signins)
        SELECT day, COUNT(*), SUM(CASE WHEN launches > 0 THEN 1 ELSE 0 END), SUM(launches),
               SUM(signins)
        FROM user_day GROUP BY day""")
    if op.get_bind().dialect.name == "sqlite":
        year, month = "CAST(substr({0}, 1, 4) AS INTEGER)", "CAST(substr({0}, 6, 2) AS INTEGER)"
    else:
        year, month = (
            "CAST(EXTRACT(YEAR FROM {0}) AS INTEGER)",
            "CAST(EXTRACT(MONTH FROM {0}) AS INTEGER)",
        )
    # The same SQL as launcher.reports.rebuild._rebuild_spans at this revision: built from the
    # fixed expressions above only (hence the S608 exemptions). Each (year, month, user,
    # department) is one row of m, so the sum of the rows' bits is their OR.
    y, mo = year.format("day"), month.format("day")
    op.execute(f"""INSERT INTO user_span (year, user_id, department, active, launched)
        WITH m AS (
            SELECT {y} AS y, {mo} AS mo, user_id, department, MAX(launches) AS launches
            FROM user_day GROUP BY {y}, {mo}, user_id, department)
        SELECT y, user_id, department, SUM(bit), SUM(CASE WHEN launches > 0 THEN bit ELSE 0 END)
        FROM (SELECT y, user_id, department, launches, 1 << (mo - 1) AS bit FROM m
              UNION ALL
              SELECT y - 1, user_id, department, launches, 1 << (mo + 11) FROM m) AS s
        GROUP BY y, user_id, department""")  # noqa: S608
    y, mo = year.format("month"), month.format("month")
    op.execute(f"""INSERT INTO user_span_app (year, app_id, user_id, months)
        SELECT y, app_id, user_id, SUM(bit)
        FROM (SELECT {y} AS y, app_id, user_id, 1 << ({mo} - 1) AS bit FROM user_month_app
              UNION ALL
              SELECT {y} - 1, app_id, user_id, 1 << ({mo} + 11) FROM user_month_app) AS s
        GROUP BY y, app_id, user_id""")  # noqa: S608


def downgrade() -> None:
    op.drop_index("ix_user_day_app_user", "user_day_app")
    op.drop_index("ix_user_day_user", "user_day")
    op.drop_table("user_span_app")
    op.drop_table("user_span")
    op.drop_table("day_stats")

"""Versions of the bitmaps per day and month (people_stamp), so that a report process can
keep past periods' bitmaps decoded and know when they change (launcher/reports/distinct.py);
every day and month that has bitmaps gets a stamp here. And usage_month, usage_day's sums per
month, so that launch counts over years read months (launcher/reports/queries.py).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people_stamp",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("at", sa.Date, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    conn = op.get_bind()
    rows: list[dict[str, object]] = []
    for kind, table, col in (("day", "people_day", "day"), ("month", "people_month", "month")):
        found = conn.execute(sa.text(f"SELECT DISTINCT {col} FROM {table}")).scalars()  # noqa: S608
        rows += [{"k": kind, "at": at, "v": secrets.randbits(62)} for at in found]
    for start in range(0, len(rows), 1000):
        conn.execute(
            sa.text("INSERT INTO people_stamp (kind, at, version) VALUES (:k, :at, :v)"),
            rows[start : start + 1000],
        )

    op.create_table(
        "usage_month",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), primary_key=True),
        sa.Column("launches", sa.Integer, nullable=False),
        sa.Column("launches_key", sa.BigInteger, nullable=False, server_default="0"),
    )
    if conn.dialect.name == "sqlite":
        month = "substr(day, 1, 7) || '-01'"
    else:
        month = "CAST(date_trunc('month', day) AS date)"
    # launcher/reports/cellkey.py MOD: cell keys are kept modulo 2**32
    op.execute(f"""INSERT INTO usage_month (month, app_id, department, launches, launches_key)
        SELECT {month}, app_id, department, SUM(launches), SUM(launches_key) % 4294967296
        FROM usage_day GROUP BY {month}, app_id, department""")  # noqa: S608


def downgrade() -> None:
    op.drop_table("usage_month")
    op.drop_table("people_stamp")

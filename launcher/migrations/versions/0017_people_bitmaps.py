"""Distinct users from Roaring bitmaps: people_day and people_month hold who was active per
day (month), app and department as bitmaps of person numbers (person_number, handed out from
person_counter); user_span and user_span_app, which they replace, go. See
launcher/reports/people.py. The bitmaps are filled here from user_day and user_day_app (what
is kept of the months past the retention has no people, so nothing is lost).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections import defaultdict

import sqlalchemy as sa
from alembic import op
from pyroaring import BitMap

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ANY = "*"


def _person_key(user_id: str) -> int:
    # launcher/reports/cellkey.py person_key at this revision
    digest = hashlib.md5(("p|" + user_id).encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big")


def _bitmap_table(name: str, when: str) -> None:
    op.create_table(
        name,
        sa.Column(when, sa.Date, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), primary_key=True),
        sa.Column("active", sa.LargeBinary, nullable=False),
        sa.Column("launched", sa.LargeBinary, nullable=False),
    )


def upgrade() -> None:
    op.create_table(
        "person_number",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("number", sa.BigInteger, nullable=False, unique=True),
        sa.Column("person_key", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "person_counter",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("next_number", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.String(32), nullable=False),
    )
    _bitmap_table("people_day", "day")
    _bitmap_table("people_month", "month")
    op.drop_table("user_span_app")
    op.drop_table("user_span")
    _fill()


def _fill() -> None:
    """The bitmaps of what user_day and user_day_app hold (as launcher/reports/people.py's
    rebuild at this revision, in one pass over the rows)."""
    conn = op.get_bind()
    users = conn.execute(
        sa.text("SELECT user_id FROM user_day GROUP BY user_id ORDER BY MIN(day), user_id")
    ).scalars()
    number = {u: i for i, u in enumerate(users)}
    rows = [{"u": u, "n": n, "k": _person_key(u)} for u, n in number.items()]
    for start in range(0, len(rows), 5000):
        conn.execute(
            sa.text("INSERT INTO person_number (user_id, number, person_key) VALUES (:u, :n, :k)"),
            rows[start : start + 5000],
        )
    conn.execute(
        sa.text("INSERT INTO person_counter (id, next_number, epoch) VALUES (1, :n, :e)"),
        {"n": len(number), "e": secrets.token_hex(8)},
    )
    day: dict[tuple[dt.date, str, str], list[BitMap]] = defaultdict(lambda: [BitMap(), BitMap()])
    for d, u, dept, launches in conn.execute(
        sa.text("SELECT day, user_id, department, launches FROM user_day")
    ):
        for key in ((d, ANY, ANY), (d, ANY, dept)):
            day[key][0].add(number[u])
            if launches > 0:
                day[key][1].add(number[u])
    for d, app, u, dept in conn.execute(
        sa.text("SELECT day, app_id, user_id, department FROM user_day_app")
    ):
        if u in number:
            for key in ((d, app, ANY), (d, app, dept)):
                day[key][1].add(number[u])
    month: dict[tuple[dt.date, str, str], list[BitMap]] = defaultdict(lambda: [BitMap(), BitMap()])
    for (d, app, dept), (active, launched) in day.items():
        when = dt.date.fromisoformat(d) if isinstance(d, str) else d
        into = month[(when.replace(day=1), app, dept)]
        into[0] |= active
        into[1] |= launched
    for name, col, bitmaps in (("people_day", "day", day), ("people_month", "month", month)):
        values = [
            {
                "w": w if isinstance(w, dt.date) else dt.date.fromisoformat(w),
                "a": a,
                "d": d,
                "active": bytes(active.serialize()),
                "launched": bytes(launched.serialize()),
            }
            for (w, a, d), (active, launched) in bitmaps.items()
        ]
        for start in range(0, len(values), 1000):
            conn.execute(
                sa.text(
                    f"INSERT INTO {name} ({col}, app_id, department, active, launched) "  # noqa: S608
                    "VALUES (:w, :a, :d, :active, :launched)"
                ).bindparams(sa.bindparam("w", type_=sa.Date)),
                values[start : start + 1000],
            )


def downgrade() -> None:
    op.create_table(
        "user_span",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("department", sa.String(128), primary_key=True),
        sa.Column("active", sa.Integer, nullable=False, server_default="0"),
        sa.Column("launched", sa.Integer, nullable=False, server_default="0"),
        sa.Column("person_key", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "user_span_app",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("months", sa.Integer, nullable=False, server_default="0"),
        sa.Column("person_key", sa.BigInteger, nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name == "sqlite":
        year, month = "CAST(substr({0}, 1, 4) AS INTEGER)", "CAST(substr({0}, 6, 2) AS INTEGER)"
    else:
        year, month = (
            "CAST(EXTRACT(YEAR FROM {0}) AS INTEGER)",
            "CAST(EXTRACT(MONTH FROM {0}) AS INTEGER)",
        )
    # launcher.reports.rebuild._rebuild_spans before this revision, from fixed expressions
    y, mo = year.format("day"), month.format("day")
    op.execute(f"""INSERT INTO user_span (year, user_id, department, active, launched, person_key)
        WITH m AS (
            SELECT {y} AS y, {mo} AS mo, user_id, department, MAX(launches) AS launches,
                MAX(person_key) AS pk
            FROM user_day GROUP BY {y}, {mo}, user_id, department)
        SELECT y, user_id, department, SUM(bit), SUM(CASE WHEN launches > 0 THEN bit ELSE 0 END),
            MAX(pk)
        FROM (SELECT y, user_id, department, launches, pk, 1 << (mo - 1) AS bit FROM m
              UNION ALL
              SELECT y - 1, user_id, department, launches, pk, 1 << (mo + 11) FROM m) AS s
        GROUP BY y, user_id, department""")  # noqa: S608
    y, mo = year.format("month"), month.format("month")
    op.execute(f"""INSERT INTO user_span_app (year, app_id, user_id, months, person_key)
        SELECT y, app_id, user_id, SUM(bit), MAX(person_key)
        FROM (SELECT {y} AS y, app_id, user_id, person_key, 1 << ({mo} - 1) AS bit
              FROM user_month_app
              UNION ALL
              SELECT {y} - 1, app_id, user_id, person_key, 1 << ({mo} + 11)
              FROM user_month_app) AS s
        GROUP BY y, app_id, user_id""")  # noqa: S608
    op.drop_table("people_month")
    op.drop_table("people_day")
    op.drop_table("person_counter")
    op.drop_table("person_number")

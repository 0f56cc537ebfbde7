"""Cell keys beside the rollups' counts: privacy that holds across queries.

Each count a report publishes gets a small, consistent noise chosen by its *cell key*, the
sum of its records' (or people's) keys modulo 2**32 (launcher/reports/cellkey.py,
docs/PRIVACY.md). This adds the key columns. Person keys are computed here from the
pseudonymous user ids, exactly as the live upkeep computes them. The record keys of launches
and sign-ins need the raw events: the rows get a key derived from their own identity for now
(a fixed stand-in: the same row keeps the same noise), and ``launcher db rebuild-rollups``,
run once after this upgrade, gives the months whose raw events are still kept their exact
keys. Months past the retention keep the stand-in for good.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# table: (key columns added, primary key columns)
_PER_USER = {
    "user_day": (("person_key", "launches_key", "signins_key"), ("day", "user_id")),
    "user_day_app": (("person_key", "launches_key"), ("day", "app_id", "user_id")),
    "user_month": (("person_key", "launches_key", "signins_key"), ("month", "user_id")),
    "user_month_app": (("person_key", "launches_key"), ("month", "app_id", "user_id")),
    "user_span": (("person_key",), ("year", "user_id", "department")),
    "user_span_app": (("person_key",), ("year", "app_id", "user_id")),
}
_STATS = ("active_key", "launchers_key", "launches_key", "signins_key")
_TOTALS = {
    "usage_day": (("launches_key",), ("day", "app_id", "department")),
    "day_stats": (_STATS, ("day",)),
    "month_stats": (_STATS, ("month",)),
    "month_cell": (("launches_key",), ("month", "weekday", "hour")),
    "month_app": (("launches_key", "users_key"), ("month", "app_id")),
    "cohort_month": (("users_key",), ("cohort", "month")),
}


def _key(text: str | None) -> int:
    """As launcher/reports/cellkey.py at this revision: the first 32 bits of an md5."""
    digest = hashlib.md5((text or "").encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big")


def _sql_key(bind: sa.Connection, text_sql: str) -> str:
    if bind.dialect.name == "sqlite":
        raw = bind.connection.driver_connection
        raw.create_function("launcher_key", 1, _key, deterministic=True)  # type: ignore[union-attr]
        return f"launcher_key({text_sql})"
    return f"('x' || substr(md5({text_sql}), 1, 8))::bit(32)::bigint"


def upgrade() -> None:
    for name, (columns, _) in {**_PER_USER, **_TOTALS}.items():
        with op.batch_alter_table(name) as batch:
            for column in columns:
                batch.add_column(
                    sa.Column(column, sa.BigInteger, nullable=False, server_default="0")
                )
    bind = op.get_bind()
    person = _sql_key(bind, "'p|' || user_id")
    for name, (columns, pk) in {**_PER_USER, **_TOTALS}.items():
        # a stand-in record key per row: a hash of the table and the row's primary key
        ident = " || '|' || ".join(f"CAST({c} AS TEXT)" for c in pk)
        stand_in = _sql_key(bind, f"'{name}|' || {ident}")
        sets = [
            f"{c} = {person}" if c == "person_key" else f"{c} = {stand_in}"
            for c in columns
            if c != "person_key" or name in _PER_USER
        ]
        op.execute(f"UPDATE {name} SET {', '.join(sets)}")  # noqa: S608 -- our own names


def downgrade() -> None:
    for name, (columns, _) in {**_PER_USER, **_TOTALS}.items():
        with op.batch_alter_table(name) as batch:
            for column in columns:
                batch.drop_column(column)

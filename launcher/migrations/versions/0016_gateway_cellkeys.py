"""Cell keys in the gateway rollups, and their per-person rows purged with the retention.

signin_day gains the cell keys of its two counts (``signins_key``, ``via_key``: the sums of
the imported sign-ins' record keys modulo 2**32, launcher/reports/cellkey.py); the per-person
tables (signin_user_month, signin_person_month, signin_user_span, signin_person_span) gain the
person key, so that distinct users have a cell key too. Person keys are computed here from the
pseudonymous user ids, exactly as the rollups compute them. The record keys need the imported
rows: signin_day's rows get a stand-in key derived from their own identity (the same row keeps
the same noise), and ``launcher db rebuild-rollups``, run once after this upgrade, gives the
months whose imported sign-ins are still kept their exact keys (as 0009 did for the launches).

signin_month_users is new: the distinct people of each month whose per-person sign-in rows the
daily purge deletes (launcher/signins/rollups.py ``purge_people``), counts only.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_PER_PERSON = ("signin_user_month", "signin_person_month", "signin_user_span", "signin_person_span")
_DAY_KEYS = ("signins_key", "via_key")
_DAY_PK = ("day", "app_id", "provider_app", "department")


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


def _column(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade() -> None:
    with op.batch_alter_table("signin_day") as batch:
        for name in _DAY_KEYS:
            batch.add_column(_column(name))
    for table in _PER_PERSON:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_column("person_key"))
    bind = op.get_bind()
    person = _sql_key(bind, "'p|' || user_id")
    for table in _PER_PERSON:
        op.execute(f"UPDATE {table} SET person_key = {person}")  # noqa: S608 -- our own names
    ident = " || '|' || ".join(f"CAST({c} AS TEXT)" for c in _DAY_PK)
    sets = ", ".join(f"{c} = " + _sql_key(bind, f"'signin_day|{c}|' || {ident}") for c in _DAY_KEYS)
    op.execute(f"UPDATE signin_day SET {sets}")  # noqa: S608 -- our own names
    op.create_table(
        "signin_month_users",
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("users", sa.Integer, nullable=False),
        sa.Column("via_users", sa.Integer, nullable=False),
        *(_column(c) for c in ("users_key", "via_users_key")),
    )


def downgrade() -> None:
    op.drop_table("signin_month_users")
    for table in _PER_PERSON:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("person_key")
    with op.batch_alter_table("signin_day") as batch:
        for name in _DAY_KEYS:
            batch.drop_column(name)

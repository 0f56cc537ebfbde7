"""PostgreSQL: the raw event tables partitioned by month (launcher/partitions.py).

launch_event and signin_event become tables partitioned by range of ts: one partition per
month from the oldest row to two months ahead, and a default partition for anything else. Each
table is converted by creating the partitioned table beside it, moving the rows, swapping the
names and handing the id sequence over, in the migration's one transaction. The primary key
becomes (id, ts): a partitioned table's keys must hold the partition key. The models keep
``id`` as the key (SQLite, where nothing changes, autoincrements a one-column INTEGER key
only); Alembic's comparison of models and schema does not compare primary keys.

A month's partition starts where the purge cuts (``launcher.reports.rebuild.month_edge``: the
month's start in UTC or in the portal's time zone, whichever is first); the zone comes from
``db.upgrade(..., timezone=)`` (``launcher db upgrade`` passes the registry's), else UTC.

Downgrade moves the rows back into plain tables with a one-column key.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import context, op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMNS = {
    "launch_event": (
        "ts TIMESTAMP WITH TIME ZONE NOT NULL, app_id VARCHAR(64) NOT NULL, "
        "user_id VARCHAR(64) NOT NULL, department VARCHAR(128), source VARCHAR(16) NOT NULL"
    ),
    "signin_event": (
        "ts TIMESTAMP WITH TIME ZONE NOT NULL, user_id VARCHAR(64) NOT NULL, "
        "department VARCHAR(128)"
    ),
}
_NAMES = {
    "launch_event": "id, ts, app_id, user_id, department, source",
    "signin_event": "id, ts, user_id, department",
}
_INDEXES = {
    "launch_event": {"ix_launch_event_ts": "ts", "ix_launch_event_user_ts": "user_id, ts"},
    "signin_event": {"ix_signin_event_ts": "ts"},
}


def _edge(month: dt.date, tz: ZoneInfo) -> dt.datetime:
    # as launcher.reports.rebuild.month_edge (copied: a migration must not change later)
    utc = dt.datetime.combine(month, dt.time(), tzinfo=dt.UTC)
    local = dt.datetime.combine(month, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    return min(utc, local)


def _next(month: dt.date) -> dt.date:
    return (month + dt.timedelta(days=32)).replace(day=1)


def _swap_out(table: str) -> str:
    """Rename ``table``, its key and its indexes out of the way; returns the new name."""
    old = f"{table}_unpartitioned"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey")
    for index in _INDEXES[table]:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_unpartitioned")
    return old


def _create_indexes(table: str) -> None:
    for index, columns in _INDEXES[table].items():
        op.execute(f"CREATE INDEX {index} ON {table} ({columns})")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    tz = ZoneInfo(context.config.attributes.get("timezone") or "UTC")
    today = dt.datetime.now(dt.UTC).date()
    for table, columns in _COLUMNS.items():
        old = _swap_out(table)
        op.execute(
            f"CREATE TABLE {table} (id BIGINT NOT NULL DEFAULT nextval('{table}_id_seq'), "
            f"{columns}, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)"
        )
        _create_indexes(table)
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        oldest = op.get_bind().execute(sa.text(f"SELECT MIN(ts) FROM {old}")).scalar()  # noqa: S608
        month = (oldest.astimezone(dt.UTC).date() if oldest else today).replace(day=1)
        last = _next(_next(today.replace(day=1)))
        while month <= last:
            # DDL takes no parameters: the bounds are timestamps we made, as literals
            lo, hi = _edge(month, tz).isoformat(), _edge(_next(month), tz).isoformat()
            op.execute(
                f"CREATE TABLE {table}_p{month:%Y_%m} PARTITION OF {table} "
                f"FOR VALUES FROM ('{lo}') TO ('{hi}')"
            )
            month = _next(month)
        names = _NAMES[table]
        op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {old}")  # noqa: S608
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
        op.execute(f"DROP TABLE {old}")
        op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _COLUMNS.items():
        old = f"{table}_partitioned"
        op.execute(f"ALTER TABLE {table} RENAME TO {old}")
        op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey")
        for index in _INDEXES[table]:
            op.execute(f"ALTER INDEX {index} RENAME TO {index}_partitioned")
        op.execute(
            f"CREATE TABLE {table} (id BIGINT NOT NULL DEFAULT nextval('{table}_id_seq'), "
            f"{columns}, CONSTRAINT {table}_pkey PRIMARY KEY (id))"
        )
        names = _NAMES[table]
        op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {old}")  # noqa: S608
        _create_indexes(table)
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
        op.execute(f"DROP TABLE {old}")  # its partitions with it

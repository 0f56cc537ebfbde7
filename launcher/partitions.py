"""Monthly partitions of the raw event tables on PostgreSQL.

``launch_event`` and ``signin_event`` are partitioned by range of ``ts``, one partition per
month (``launch_event_p2026_05``), plus a default partition (``launch_event_default``) that
takes any row no month partition covers, so that a missing partition never loses an event.
Migration 0013 converts the tables; SQLite keeps plain tables (one host, no partitions).

A month's partition starts at :func:`~launcher.reports.rebuild.month_edge` of that month in
the portal's time zone: the very instant the purge cuts at (whole months only). So the purge
drops whole partitions past the retention -- a DROP, which frees the space at once and writes
no WAL per row -- and ``rebuild.purge_raw``'s chunked DELETE that follows finds nothing left
on these tables (it still does the work for imported sign-ins, and for any rows a change of
time zone left on the wrong side of a partition edge).

:func:`ensure` creates this month's and the next :data:`AHEAD` months' partitions, and moves
rows that landed in the default partition (history written by ``launcher demo-data``, a clock
far ahead) into partitions of their own. The portal calls it at start-up and with the daily
purge, both under a run-once lock (launcher/jobs.py); ``launcher db upgrade`` and
``launcher db purge`` call it too.

Primary keys on a partitioned table must include the partition key, so on PostgreSQL the key is
``(id, ts)``. ``id`` still comes from one sequence and stays unique and increasing; the queries
that read by id (the sign-in import's "rows above this id", launcher/signins/importer.py) use
each partition's primary-key index, which starts with ``id``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher.dates import month_of
from launcher.reports.rebuild import month_edge, purge_cutoff

log = logging.getLogger(__name__)

TABLES = ("launch_event", "signin_event")
AHEAD = 2  # months of partitions created beyond the current one
_NAME = re.compile(r"^(launch_event|signin_event)_(p\d{4}_\d{2}|default)$")
_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    lo: dt.datetime | None  # None: the default partition
    hi: dt.datetime | None


def is_partition(name: str) -> bool:
    """True for a partition's table name (schema comparisons and resets skip them)."""
    return _NAME.match(name) is not None


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_p{month:%Y_%m}"


def next_month(month: dt.date) -> dt.date:
    return month_of(month + dt.timedelta(days=32))


def is_partitioned(conn: sa.Connection, table: str = "launch_event") -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
    ).scalar()
    return kind == "p"


def partitions(conn: sa.Connection, table: str) -> list[Partition]:
    """The partitions of ``table`` with their bounds (UTC), oldest first, the default last."""
    conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")  # bounds are printed in the session zone
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    ).all()
    found: list[Partition] = []
    for name, bound in rows:
        match = _BOUNDS.search(bound)
        if match is None:  # FOR VALUES DEFAULT
            found.append(Partition(table, name, None, None))
            continue
        lo, hi = (dt.datetime.fromisoformat(v).astimezone(dt.UTC) for v in match.groups())
        found.append(Partition(table, name, lo, hi))
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(found, key=lambda p: p.lo or far)


def ensure(
    engine: sa.Engine, tz: ZoneInfo, now: dt.datetime | None = None, ahead: int = AHEAD
) -> list[str]:
    """Create the partitions of this month and the next ``ahead`` months, and of every month
    with rows in a default partition (moving those rows). Returns the partitions created; a
    no-op on SQLite or before migration 0013."""
    now = now or dt.datetime.now(dt.UTC)
    created: list[str] = []
    with engine.connect() as conn:
        with conn.begin():
            if not is_partitioned(conn):
                return created
        for table in TABLES:
            with conn.begin():
                months = _months_wanted(conn, table, now, ahead)
            for month in months:
                with conn.begin():
                    name = _create(conn, table, month, tz)
                if name:
                    created.append(name)
    if created:
        log.info("created partitions %s", ", ".join(created))
    return created


def _months_wanted(conn: sa.Connection, table: str, now: dt.datetime, ahead: int) -> list[dt.date]:
    month = month_of(now.date())
    wanted = {month}
    for _ in range(ahead):
        month = next_month(month)
        wanted.add(month)
    lo, hi = conn.execute(sa.text(f"SELECT MIN(ts), MAX(ts) FROM {table}_default")).one()  # noqa: S608
    if lo is not None:
        # a month's edge can be up to 14 hours before its first day in UTC: one month more
        month = month_of(lo.astimezone(dt.UTC).date())
        while month <= month_of(hi.astimezone(dt.UTC).date()):
            wanted.add(month)
            month = next_month(month)
        wanted.add(month)
    return sorted(wanted)


def _create(conn: sa.Connection, table: str, month: dt.date, tz: ZoneInfo) -> str | None:
    """The partition of ``month``, made as a table of its own, filled with the default
    partition's rows in its range, then attached. Its range is clipped to what no other
    partition covers (partitions made under another time zone); None if nothing is left."""
    name = partition_name(table, month)
    existing = partitions(conn, table)
    if any(p.name == name for p in existing):
        return None
    lo, hi = month_edge(month, tz), month_edge(next_month(month), tz)
    for p in existing:
        if p.lo is None or p.hi is None:
            continue
        if p.lo <= lo < p.hi:
            lo = p.hi
        if p.lo < hi <= p.hi:
            hi = p.lo
    if lo >= hi or any(p.lo is not None and p.hi is not None and lo < p.lo < hi for p in existing):
        return None  # covered already, or it would straddle another partition
    # a brief lock on the parent; give up (and retry at the next run) rather than queue
    # every launch batch behind a long report query
    conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
    conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
    conn.execute(
        sa.text(
            f"WITH moved AS (DELETE FROM {table}_default WHERE ts >= :lo AND ts < :hi "  # noqa: S608
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        {"lo": lo, "hi": hi},
    )
    # DDL takes no parameters: the bounds are timestamps made here, as literals
    conn.exec_driver_sql(
        f"ALTER TABLE {table} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
    )
    return name


def drop_old(
    engine: sa.Engine, retention_days: int, tz: ZoneInfo, now: dt.datetime | None = None
) -> list[str]:
    """Drop every month partition that ends at or before the purge's cutoff (see
    ``rebuild.purge_cutoff``): whole months past LAUNCHER_RAW_RETENTION_DAYS. Returns the
    partitions dropped; a no-op on SQLite or before migration 0013."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = purge_cutoff(now, retention_days, tz)
    dropped: list[str] = []
    with engine.connect() as conn:
        with conn.begin():
            if not is_partitioned(conn):
                return dropped
        for table in TABLES:
            with conn.begin():
                old = [p for p in partitions(conn, table) if p.hi is not None and p.hi <= cutoff]
            for p in old:
                with conn.begin():
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                    conn.exec_driver_sql(f"DROP TABLE {p.name}")
                dropped.append(p.name)
    if dropped:
        log.info("dropped partitions past the retention: %s", ", ".join(dropped))
    return dropped

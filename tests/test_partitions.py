"""Month partitions of the raw event tables (launcher/partitions.py): made ahead, history moved
out of the default partition, and the purge dropping whole months past the retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher import db, jobs, partitions
from launcher.dates import month_of
from launcher.reports.rebuild import purge_cutoff

UTC = ZoneInfo("UTC")
NOW = dt.datetime.now(dt.UTC)


def _months_back(n: int) -> dt.date:
    month = month_of(NOW.date())
    for _ in range(n):
        month = month_of(month - dt.timedelta(days=1))
    return month


def _insert(engine: sa.Engine, stamps: list[dt.datetime]) -> None:
    with engine.begin() as conn:
        for n, ts in enumerate(stamps):
            conn.execute(
                sa.text(
                    "INSERT INTO launch_event (ts, app_id, user_id, department, source) "
                    "VALUES (:ts, 'mail', :u, NULL, 'portal')"
                ),
                {"ts": ts, "u": f"u{n}"},
            )
            conn.execute(
                sa.text("INSERT INTO signin_event (ts, user_id) VALUES (:ts, :u)"),
                {"ts": ts, "u": f"u{n}"},
            )


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def _names(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as conn, conn.begin():
        return [p.name for p in partitions.partitions(conn, table)]


def _history(months: int) -> list[dt.datetime]:
    """One launch in the middle of each of the ``months`` months before this one."""
    return [
        dt.datetime.combine(_months_back(n) + dt.timedelta(days=14), dt.time(12), tzinfo=dt.UTC)
        for n in range(1, months + 1)
    ]


@pytest.fixture
def pg(postgres_server: str) -> Iterator[sa.Engine]:
    from tests.conftest import _reset

    _reset(postgres_server)
    engine = db.make_engine(postgres_server)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_partitions_are_made_ahead_and_again_is_a_no_op(pg: sa.Engine) -> None:
    for table in partitions.TABLES:
        with pg.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {partitions.partition_name(table, _months_back(0))}")
    created = partitions.ensure(pg, UTC, NOW)
    assert created == [partitions.partition_name(t, _months_back(0)) for t in partitions.TABLES]
    assert partitions.ensure(pg, UTC, NOW) == []
    ahead = month_of(month_of(NOW.date()) + dt.timedelta(days=40))
    assert partitions.partition_name("launch_event", ahead) in _names(pg, "launch_event")


@pytest.mark.postgres
@pytest.mark.parametrize("zone", ["UTC", "Europe/Amsterdam", "America/New_York"])
def test_history_moves_out_of_the_default_partition(pg: sa.Engine, zone: str) -> None:
    tz = ZoneInfo(zone)
    stamps = _history(5)
    _insert(pg, stamps)
    assert _count(pg, "launch_event_default") == 5  # older than any partition
    created = partitions.ensure(pg, tz, NOW)
    assert partitions.partition_name("launch_event", _months_back(3)) in created
    assert _count(pg, "launch_event_default") == 0
    assert _count(pg, "signin_event_default") == 0
    assert _count(pg, "launch_event") == 5
    # each row in the partition of its month, whose edges are the zone's month edges
    name = partitions.partition_name("launch_event", _months_back(3))
    assert _count(pg, name) == 1
    with pg.connect() as conn, conn.begin():
        part = next(p for p in partitions.partitions(conn, "launch_event") if p.name == name)
    from launcher.reports.rebuild import month_edge

    assert part.lo == month_edge(_months_back(3), tz)
    assert part.hi == month_edge(_months_back(2), tz)


@pytest.mark.postgres
@pytest.mark.parametrize("zone", ["UTC", "Europe/Amsterdam"])
def test_the_purge_drops_whole_months_and_deletes_nothing(pg: sa.Engine, zone: str) -> None:
    tz = ZoneInfo(zone)
    _insert(pg, _history(6))
    partitions.ensure(pg, tz, NOW)
    cutoff = purge_cutoff(NOW, 35, tz)
    keep = [ts for ts in _history(6) if ts >= cutoff]
    deleted = jobs.purge(pg, 35, tz, NOW)
    assert deleted == 0  # nothing left to DELETE: the old months were dropped
    assert _count(pg, "launch_event") == len(keep) == _count(pg, "signin_event")
    names = _names(pg, "launch_event")
    assert partitions.partition_name("launch_event", _months_back(4)) not in names
    assert partitions.partition_name("launch_event", _months_back(0)) in names
    assert jobs.purge(pg, 35, tz, NOW) == 0  # again: nothing to drop or delete


@pytest.mark.postgres
def test_rows_past_the_partitions_still_land(pg: sa.Engine) -> None:
    """A clock far ahead: the row goes to the default partition, never lost."""
    far = NOW + dt.timedelta(days=800)
    _insert(pg, [far])
    assert _count(pg, "launch_event_default") == 1
    partitions.ensure(pg, UTC, NOW)
    assert _count(pg, "launch_event_default") == 0  # its month has a partition now
    assert partitions.partition_name("launch_event", month_of(far.date())) in _names(
        pg, "launch_event"
    )


def test_sqlite_has_no_partitions_and_the_purge_deletes(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    _insert(engine, _history(6))
    assert partitions.ensure(engine, UTC, NOW) == []
    assert partitions.drop_old(engine, 35, UTC, NOW) == []
    cutoff = purge_cutoff(NOW, 35, UTC)
    gone = sum(ts < cutoff for ts in _history(6))
    assert jobs.purge(engine, 35, UTC, NOW) == 2 * gone  # launches and sign-ins
    assert _count(engine, "launch_event") == 6 - gone


def test_partition_names() -> None:
    assert partitions.is_partition("launch_event_p2026_05")
    assert partitions.is_partition("signin_event_default")
    assert not partitions.is_partition("launch_event")
    assert not partitions.is_partition("imported_signin_p2026_05")

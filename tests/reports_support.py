"""What the report tests on raw rows share (tests/test_reports_api.py,
tests/test_reports_sources.py): an engine whose PostgreSQL session lives far from UTC, and
launches written straight into ``launch_event`` for ``rebuild.rebuild`` to derive from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from launcher import db
from launcher.events import Launch
from launcher.models import LaunchEvent, table


def utc(text: str) -> dt.datetime:
    """``2025-03-01 08:00:00`` as a UTC time."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def far_from_utc(database_url: str) -> Iterator[sa.Engine]:
    """The body of each module's ``engine`` fixture: on PostgreSQL a session time zone far
    from UTC, so that days and months must still come out as UTC ones."""
    if database_url.startswith("postgresql"):
        engine = sa.create_engine(
            database_url, connect_args={"options": "-c timezone=Pacific/Kiritimati"}
        )
    else:
        engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


def insert_launches(engine: sa.Engine, launches: Sequence[Launch]) -> None:
    """Raw launch rows, no rollup kept (rebuild.rebuild derives them)."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(table(LaunchEvent)),
            [
                {
                    "ts": e.ts,
                    "app_id": e.app_id,
                    "user_id": e.user_id,
                    "department": e.department,
                    "source": e.source,
                }
                for e in launches
            ],
        )

"""What the tests of launcher/events/ share: counting rows, reading the spool, a database
that is down and comes back, waiting without blocking the event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.events import EventStore

TS = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")
MODES = pytest.mark.parametrize("mode", ["thread", "process"])
Mode = Literal["thread", "process"]


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def spooled_lines(spool: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for path in sorted(spool.glob("events-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def unreachable(tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine whose database cannot be opened: its directory does not exist (yet). The
    body of each test module's ``down`` fixture."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/not-yet/launcher.db")
    yield engine
    engine.dispose()


def bring_up(tmp_path: Path) -> sa.Engine:
    """Create the missing directory and migrate: the database of ``unreachable`` now works."""
    engine = db.make_engine(f"sqlite:///{tmp_path}/not-yet/launcher.db")
    db.upgrade(engine)
    return engine


async def until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """Wait (without blocking the event loop) until ``condition`` holds; False if it never did."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def record(store: EventStore, launches: int, signins: int = 0) -> None:
    for i in range(launches):
        store.record_launch(f"app-{i % 3}", f"user-{i}", "nursing" if i % 2 else None)
    for i in range(signins):
        store.record_signin(f"user-{i}", None)

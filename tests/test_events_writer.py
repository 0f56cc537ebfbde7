"""The batch writer and the writer process (launcher/events/writer.py): batches written once,
old batch ids pruned, signals ignored, a spool left by an earlier run, stalled writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.events import BATCH_ID_DAYS, BatchWriter, EventStore, Launch
from launcher.events import writer as events_writer
from tests.events_support import (
    TS,
    UTC,
    count,
    record,
    spooled_lines,
    until,
)


def test_a_batch_written_and_spooled_counts_once(sqlite_url: str, tmp_path: Path) -> None:
    """A writer that died between its commit and its acknowledgement: the portal spooled the
    batch too. The replay recognises the batch id and writes nothing."""
    engine = db.make_engine(sqlite_url)
    writer = BatchWriter(engine, tmp_path / "spool", None)
    launches = [Launch(TS, "teams", f"u{i}", None, "portal") for i in range(3)]
    assert writer.write("p1-a-1", launches, [], UTC) == 3
    writer.spool.put("p1-a-1", launches, [])
    writer.spool.put("p1-a-2", launches[:1], [])  # a batch that was not written
    assert writer.replay_spool(UTC) == 1
    assert count(engine, "launch_event") == 4
    assert list((tmp_path / "spool").iterdir()) == []
    assert writer.write("p1-a-2", launches, [], UTC) == 0  # however it comes back
    assert count(engine, "launch_event") == 4
    engine.dispose()


def test_old_batch_ids_are_pruned(sqlite_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(sqlite_url)
    writer = BatchWriter(engine, tmp_path / "spool", None)
    writer.write("recent", [], [], UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO event_batch (batch_id, written_at) VALUES ('old', :at)"),
            {"at": dt.datetime.now(dt.UTC) - dt.timedelta(days=BATCH_ID_DAYS + 1)},
        )
    writer.prune_batch_ids()
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT batch_id FROM event_batch")).scalars().all()
    assert ids == ["recent"]
    engine.dispose()


def test_the_writer_ignores_signals_meant_for_the_portal(sqlite_url: str, tmp_path: Path) -> None:
    """Ctrl-C or a SIGTERM to the whole process group: the writer keeps going until the portal
    has handed it the last batch and closes it."""
    engine = db.make_engine(sqlite_url)
    store = EventStore(engine, tmp_path / "spool", flush_interval=0.01)

    async def run() -> None:
        store.start()
        record(store, launches=10)
        assert await until(lambda: store.written == 10)
        assert store._proc is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            os.kill(store._proc.pid or 0, sig)
        await asyncio.sleep(0.3)
        assert store._proc is not None and store._proc.is_alive()
        record(store, launches=5)
        await store.close()

    asyncio.run(run())
    assert count(engine, "launch_event") == 15
    assert store.written == 15 and store.spooled == 0
    engine.dispose()


def test_the_writer_replays_a_spool_left_by_an_earlier_run_at_start(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    launches = [Launch(TS, "teams", f"u{i}", None, "portal") for i in range(4)]
    BatchWriter(engine, tmp_path / "spool", None).spool.put("earlier-run-1", launches, [])
    store = EventStore(engine, tmp_path / "spool", retry_interval=60)

    async def run() -> None:
        store.start()  # no launch at all: the writer starts and replays on its own
        assert await until(lambda: count(engine, "launch_event") == 4)
        await store.close()

    asyncio.run(run())
    assert store.written == 4
    assert list((tmp_path / "spool").iterdir()) == []
    engine.dispose()


def _stall(conn: sa.Connection, launches: object, signins: object, tz: object) -> None:
    """A rollup step that hangs (a stalled server, in effect)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_sleep(5)")
    else:
        raise sa.exc.OperationalError("stall", {}, Exception("a stalled write (deliberate)"))


def test_a_stalled_batch_write_is_given_up_and_spooled(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the batch's statement timeout ends a write that hangs; the batch is spooled
    (SQLite has no server to stall: there the hook fails at once, with the same outcome)."""
    monkeypatch.setattr(events_writer, "STATEMENT_TIMEOUT", 1)
    engine = db.make_engine(database_url)
    writer = BatchWriter(engine, tmp_path / "spool", _stall)
    launches = [Launch(TS, "teams", "u1", None, "portal")]
    started = time.monotonic()
    assert writer.write_or_spool("stalled-1", launches, [], UTC) == (0, 1)
    assert time.monotonic() - started < 4
    assert not writer.database_ok
    assert count(engine, "launch_event") == 0  # the transaction was rolled back
    assert len(spooled_lines(tmp_path / "spool")) == 1
    engine.dispose()


def test_a_database_back_after_an_outage_is_used_even_when_the_spool_is_unwritable(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The writer skips the database while it is known to be down, but only while the spool
    takes the batches: when the spool cannot (a full disk), it tries the database again
    rather than keep the events in memory until a spool file could be replayed."""
    engine = db.make_engine(sqlite_url)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the spool directory should be")
    writer = BatchWriter(engine, blocked, None)
    writer.database_ok = False  # an earlier batch failed; the database is up again now
    launches = [Launch(TS, "teams", "u1", None, "portal")]
    assert writer.write_or_spool("after-outage-1", launches, [], UTC) == (1, 0)
    assert writer.database_ok
    assert count(engine, "launch_event") == 1
    engine.dispose()

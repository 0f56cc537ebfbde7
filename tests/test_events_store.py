"""The event store (launcher/events/store.py), in both writer modes: write-behind batches,
close() under every kind of trouble, a writer process that dies or cannot start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import sqlalchemy as sa

from launcher import db
from launcher.events import WRITER_STOP_TIMEOUT, BatchWriter, EventStore
from tests.events_support import (
    MODES,
    UTC,
    Mode,
    bring_up,
    count,
    record,
    spooled_lines,
    unreachable,
    until,
)


@pytest.fixture
def down(tmp_path: Path) -> Iterator[sa.Engine]:
    yield from unreachable(tmp_path)


@MODES
def test_close_flushes_everything(tmp_path: Path, mode: Mode) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/launcher.db")
    db.upgrade(engine)
    store = EventStore(engine, tmp_path / "spool", flush_interval=60, writer=mode)  # only close()

    async def run() -> None:
        store.start()
        record(store, launches=250, signins=10)
        await asyncio.sleep(0)
        await store.close()

    asyncio.run(run())
    assert (count(engine, "launch_event"), count(engine, "signin_event")) == (250, 10)
    assert (store.pending, store.written, store.spooled) == (0, 260, 0)
    assert store._proc is None  # the writer process has finished
    engine.dispose()


@MODES
def test_close_while_the_database_is_down_spools_everything(
    tmp_path: Path, down: sa.Engine, mode: Mode
) -> None:
    store = EventStore(down, tmp_path / "spool", flush_interval=60, writer=mode)

    async def run() -> None:
        store.start()
        record(store, launches=40, signins=5)
        await store.close()

    asyncio.run(run())
    assert (store.pending, store.spooled, store.written) == (0, 45, 0)
    assert not store.database_ok
    assert len(spooled_lines(tmp_path / "spool")) == 45


@MODES
def test_background_loop_writes_spool_back_when_the_database_returns(
    tmp_path: Path, down: sa.Engine, mode: Mode
) -> None:
    store = EventStore(down, tmp_path / "spool", flush_interval=0.01, retry_interval=0, writer=mode)

    async def run() -> sa.Engine:
        store.start()
        record(store, launches=6)
        assert await until(lambda: store.spooled == 6)
        assert not store.database_ok
        up = bring_up(tmp_path)
        record(store, launches=4)  # written directly once the database answers
        assert await until(lambda: count(up, "launch_event") == 10)
        await store.close()
        return up

    up = asyncio.run(run())
    assert count(up, "launch_event") == 10
    assert store.database_ok and store.written == 10
    assert list((tmp_path / "spool").glob("events-*")) == []
    up.dispose()


def test_a_writer_that_dies_loses_nothing_and_is_replaced(
    database_url: str, tmp_path: Path
) -> None:
    """SIGKILL the writer process between batches and in the middle of them: the portal spools
    what it had not acknowledged, starts a new writer, and every event lands exactly once."""
    engine = db.make_engine(database_url)
    store = EventStore(engine, tmp_path / "spool", flush_interval=0.01, retry_interval=0.1)
    recorded = 0

    async def run() -> None:
        nonlocal recorded
        store.start()
        for _round in range(3):
            for _ in range(20):
                record(store, launches=50)
                recorded += 50
                await asyncio.sleep(0.005)
            assert await until(lambda: store._proc is not None and store._proc.is_alive())
            writer = store._proc
            assert writer is not None
            os.kill(writer.pid or 0, signal.SIGKILL)  # mid-stream: batches in the pipe
            record(store, launches=50)
            recorded += 50

            def replaced(w: object = writer) -> bool:
                return store._proc is not None and store._proc is not w

            assert await until(replaced)
        assert await until(lambda: count(engine, "launch_event") == recorded, 15)
        await store.close()

    asyncio.run(run())
    assert count(engine, "launch_event") == recorded
    assert store.pending == 0
    assert list((tmp_path / "spool").glob("events-*")) == []
    engine.dispose()


def test_a_writer_that_cannot_start_leaves_the_events_in_the_spool(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(sqlite_url)
    store = EventStore(engine, tmp_path / "spool")

    def cannot_start() -> None:
        raise OSError("Resource temporarily unavailable (a deliberate failure)")

    monkeypatch.setattr(store, "_start_writer", cannot_start)
    record(store, launches=5, signins=1)
    asyncio.run(store.flush())
    assert (store.pending, store.spooled, store.written) == (0, 6, 0)
    assert len(spooled_lines(tmp_path / "spool")) == 6
    monkeypatch.undo()  # a writer that can start replays them
    replayed = EventStore(engine, tmp_path / "spool", retry_interval=60)

    async def run() -> None:
        replayed.start()
        assert await until(lambda: count(engine, "launch_event") == 5)
        await replayed.close()

    asyncio.run(run())
    assert count(engine, "signin_event") == 1
    engine.dispose()


# --- shutdown under trouble (cases found in review) ----------------------------------------
def test_close_during_a_slow_hand_over_writes_each_event_once(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() while the flush task is inside a hand-over: no second thread joins in."""
    engine = db.make_engine(sqlite_url)
    slow_send = EventStore._send

    def send_slowly(self: EventStore, batch: Any) -> bool:
        time.sleep(0.5)
        return slow_send(self, batch)

    monkeypatch.setattr(EventStore, "_send", send_slowly)
    store = EventStore(engine, tmp_path / "spool", flush_interval=0.05)

    async def run() -> float:
        store.start()
        assert await until(lambda: store._proc is not None)
        record(store, launches=10)
        await asyncio.sleep(0.2)  # the flush task is now in the slow send
        started = time.monotonic()
        await store.close()
        return time.monotonic() - started

    took = asyncio.run(run())
    assert took < WRITER_STOP_TIMEOUT + 0.5
    assert count(engine, "launch_event") == 10
    assert (store.pending, store.written, store._proc) == (0, 10, None)
    engine.dispose()


@MODES
def test_a_flush_waiting_for_a_thread_loses_nothing_at_close(
    sqlite_url: str, tmp_path: Path, mode: Mode
) -> None:
    """The request threads are all busy (slow sync handlers) when close() comes: the batch
    the flush had taken is still written."""
    engine = db.make_engine(sqlite_url)
    store = EventStore(engine, tmp_path / "spool", flush_interval=0.05, writer=mode)

    async def run() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        store.start()
        await asyncio.sleep(0.3)
        record(store, launches=7)
        hogs = [asyncio.create_task(anyio.to_thread.run_sync(time.sleep, 1.0)) for _ in range(2)]
        await asyncio.sleep(0.1)
        await store.close()
        await asyncio.gather(*hogs)

    asyncio.run(run())
    assert count(engine, "launch_event") == 7
    assert store.pending == 0
    engine.dispose()


def test_close_is_quick_while_the_database_is_locked_and_nothing_is_lost(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A long transaction elsewhere (a rollup rebuild, say) holds SQLite's write lock while
    launches keep coming: the writer spools instead of trying each batch, close() stays within
    its budget, and the replay writes every event once the lock is gone."""
    engine = db.make_engine(sqlite_url)
    store = EventStore(engine, tmp_path / "spool", flush_interval=0.1, retry_interval=0.2)
    recorded = 0

    async def run() -> float:
        nonlocal recorded
        store.start()
        assert await until(lambda: store._proc is not None)
        blocker = engine.connect().execution_options(sqlite_immediate=True)
        transaction = blocker.begin()
        try:
            for _ in range(30):
                record(store, launches=300)
                recorded += 300
                await asyncio.sleep(0.1)
            started = time.monotonic()
            await store.close()
            return time.monotonic() - started
        finally:
            transaction.rollback()
            blocker.close()

    took = asyncio.run(run())
    assert took < WRITER_STOP_TIMEOUT + 0.5
    assert store.pending == 0
    assert store.written + store.spooled == recorded
    replay = EventStore(engine, tmp_path / "spool", retry_interval=0.2)

    async def replay_all() -> None:
        replay.start()
        assert await until(lambda: count(engine, "launch_event") == recorded, 20)
        await replay.close()

    asyncio.run(replay_all())
    assert count(engine, "launch_event") == recorded
    assert list((tmp_path / "spool").glob("events-*")) == []
    engine.dispose()


EXIT_WITHOUT_CLOSE = """
import asyncio, sys
from pathlib import Path
from launcher import db
from launcher.events import EventStore

async def main():
    store = EventStore(db.make_engine(sys.argv[1]), Path(sys.argv[2]), flush_interval=0.05)
    store.start()
    for i in range(40):
        store.record_launch("teams", f"u{i}", None)
        await asyncio.sleep(0.05)  # the writer starts meanwhile and takes batches
    store.record_launch("teams", "last", None)
    await store.flush()  # handed over, perhaps not yet written: then the process ends

asyncio.run(main())
"""


def test_a_process_that_exits_without_close_does_not_hang(sqlite_url: str, tmp_path: Path) -> None:
    """A second Ctrl-C or a crash skips close(): the process still exits (the writer, which
    ignores SIGTERM, is told by end of file), and every event is written or spooled."""
    db.upgrade(db.make_engine(sqlite_url))
    spool = tmp_path / "spool"
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_CLOSE, sqlite_url, str(spool)],
        timeout=30,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    engine = db.make_engine(sqlite_url)
    BatchWriter(engine, spool, None).replay_spool(UTC)  # whatever it spooled, once
    assert count(engine, "launch_event") == 41
    engine.dispose()

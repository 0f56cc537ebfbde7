"""The event store: write-behind batches, the spool while the database is down, its replay,
and the writer process (acknowledgements, a writer that dies, batches written once)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import anyio.to_thread
import pytest
import sqlalchemy as sa

from launcher import db, events
from launcher.events import BATCH_ID_DAYS, BatchWriter, Launch
from launcher.launches import WRITER_STOP_TIMEOUT, EventStore

TS = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")
MODES = pytest.mark.parametrize("mode", ["thread", "process"])
Mode = Literal["thread", "process"]


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def _spooled_lines(spool: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for path in sorted(spool.glob("events-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


@pytest.fixture
def down(tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine whose database cannot be opened: its directory does not exist (yet)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/not-yet/launcher.db")
    yield engine
    engine.dispose()


def _bring_up(tmp_path: Path) -> sa.Engine:
    """Create the missing directory and migrate: the database of ``down`` now works."""
    engine = db.make_engine(f"sqlite:///{tmp_path}/not-yet/launcher.db")
    db.upgrade(engine)
    return engine


async def _until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """Wait (without blocking the event loop) until ``condition`` holds; False if it never did."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _record(store: EventStore, launches: int, signins: int = 0) -> None:
    for i in range(launches):
        store.record_launch(f"app-{i % 3}", f"user-{i}", "nursing" if i % 2 else None)
    for i in range(signins):
        store.record_signin(f"user-{i}", None)


def test_database_down_spools_json_lines(tmp_path: Path, down: sa.Engine) -> None:
    store = EventStore(down, tmp_path / "spool", writer="thread")
    _record(store, launches=5, signins=2)
    asyncio.run(store.flush())
    assert store.pending == 0
    assert (store.spooled, store.written, store.database_ok) == (7, 0, False)
    lines = _spooled_lines(tmp_path / "spool")
    assert [line["type"] for line in lines] == ["launch"] * 5 + ["signin"] * 2
    assert lines[1] == {
        "ts": lines[1]["ts"],
        "app_id": "app-1",
        "user_id": "user-1",
        "department": "nursing",
        "source": "tile",
        "type": "launch",
    }
    assert dt.datetime.fromisoformat(str(lines[1]["ts"])).tzinfo is not None
    assert not list((tmp_path / "spool").glob("*.tmp"))  # written, fsynced and renamed


def test_replay_writes_the_spool_once_the_database_works(tmp_path: Path, down: sa.Engine) -> None:
    store = EventStore(down, tmp_path / "spool", writer="thread")
    for _ in range(3):  # three batches, three spool files
        _record(store, launches=4, signins=1)
        asyncio.run(store.flush())
    assert store.replay_spool() == 0  # still down: nothing replayed, nothing lost
    assert len(_spooled_lines(tmp_path / "spool")) == 15

    up = _bring_up(tmp_path)
    assert store.replay_spool() == 15
    assert (_count(up, "launch_event"), _count(up, "signin_event")) == (12, 3)
    assert store.database_ok
    assert list((tmp_path / "spool").iterdir()) == []
    assert store.replay_spool() == 0  # each event once
    assert _count(up, "launch_event") == 12
    up.dispose()


def test_replayed_events_keep_their_fields(tmp_path: Path, down: sa.Engine) -> None:
    store = EventStore(down, tmp_path / "spool", writer="thread")
    store._launches.append((TS.timestamp(), "ehr", "u1", "medical", "portal"))
    store._signins.append((TS.timestamp(), "u1", "medical"))
    asyncio.run(store.flush())
    up = _bring_up(tmp_path)
    assert store.replay_spool() == 2
    with up.connect() as conn:
        launch = conn.execute(
            sa.text("SELECT ts, app_id, user_id, department, source FROM launch_event")
        ).one()
        signin = conn.execute(sa.text("SELECT user_id, department FROM signin_event")).one()
    assert tuple(launch)[1:] == ("ehr", "u1", "medical", "portal")
    ts = launch[0] if isinstance(launch[0], dt.datetime) else dt.datetime.fromisoformat(launch[0])
    assert ts.replace(tzinfo=ts.tzinfo or dt.UTC) == TS
    assert tuple(signin) == ("u1", "medical")
    up.dispose()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param("this is not json\n", id="not JSON"),
        pytest.param('{"type": "launch", "app_id": "teams"}\n', id="fields missing"),
        pytest.param('{"type": "launch", "ts": "yesterday", "app_id": "x"}\n', id="bad time"),
        pytest.param("42\n", id="a JSON number"),
        pytest.param('{"type": "launch", "ts": "2026-03-02T09:30:00+00:00", "app_i', id="cut off"),
        pytest.param(
            '{"type": "launch", "ts": "2026-03-02T09:30:00+00:00", "app_id": null,'
            ' "user_id": "u", "department": null, "source": "tile"}\n',
            id="refused by the database",
        ),
    ],
)
def test_damaged_spool_file_is_kept_as_bad_and_blocks_nothing(
    tmp_path: Path, down: sa.Engine, damage: str
) -> None:
    spool = tmp_path / "spool"
    store = EventStore(down, spool, writer="thread")
    _record(store, launches=3)
    asyncio.run(store.flush())
    spool.joinpath("events-0-damaged.jsonl").write_text(damage)  # sorts before the good one
    _record(store, launches=2)
    asyncio.run(store.flush())

    up = _bring_up(tmp_path)
    assert store.replay_spool() == 5
    assert _count(up, "launch_event") == 5
    assert sorted(p.name for p in spool.iterdir()) == ["events-0-damaged.bad"]
    assert spool.joinpath("events-0-damaged.bad").read_text() == damage
    assert store.database_ok
    up.dispose()


@MODES
def test_close_flushes_everything(tmp_path: Path, mode: Mode) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/launcher.db")
    db.upgrade(engine)
    store = EventStore(engine, tmp_path / "spool", flush_interval=60, writer=mode)  # only close()

    async def run() -> None:
        store.start()
        _record(store, launches=250, signins=10)
        await asyncio.sleep(0)
        await store.close()

    asyncio.run(run())
    assert (_count(engine, "launch_event"), _count(engine, "signin_event")) == (250, 10)
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
        _record(store, launches=40, signins=5)
        await store.close()

    asyncio.run(run())
    assert (store.pending, store.spooled, store.written) == (0, 45, 0)
    assert not store.database_ok
    assert len(_spooled_lines(tmp_path / "spool")) == 45


@MODES
def test_background_loop_writes_spool_back_when_the_database_returns(
    tmp_path: Path, down: sa.Engine, mode: Mode
) -> None:
    store = EventStore(down, tmp_path / "spool", flush_interval=0.01, retry_interval=0, writer=mode)

    async def run() -> sa.Engine:
        store.start()
        _record(store, launches=6)
        assert await _until(lambda: store.spooled == 6)
        assert not store.database_ok
        up = _bring_up(tmp_path)
        _record(store, launches=4)  # written directly once the database answers
        assert await _until(lambda: _count(up, "launch_event") == 10)
        await store.close()
        return up

    up = asyncio.run(run())
    assert _count(up, "launch_event") == 10
    assert store.database_ok and store.written == 10
    assert list((tmp_path / "spool").glob("events-*")) == []
    up.dispose()


def test_a_file_claimed_by_a_dead_writer_is_replayed(sqlite_url: str, tmp_path: Path) -> None:
    import subprocess

    engine = db.make_engine(sqlite_url)
    spool = tmp_path / "orphans"
    at = dt.datetime(2025, 3, 3, 9, tzinfo=dt.UTC)
    BatchWriter(engine, spool, None).spool("b1", [Launch(at, "teams", "u1", None, "portal")], [])
    [path] = spool.glob("events-*.jsonl")
    child = subprocess.Popen(["true"])  # a writer that has exited
    child.wait()
    path.rename(path.with_name(path.name + f".claimed-{child.pid}"))  # it died mid-replay
    assert BatchWriter(engine, spool, None).replay_spool(UTC) == 1
    assert not list(spool.iterdir())
    engine.dispose()


def test_a_batch_written_and_spooled_counts_once(sqlite_url: str, tmp_path: Path) -> None:
    """A writer that died between its commit and its acknowledgement: the portal spooled the
    batch too. The replay recognises the batch id and writes nothing."""
    engine = db.make_engine(sqlite_url)
    writer = BatchWriter(engine, tmp_path / "spool", None)
    launches = [Launch(TS, "teams", f"u{i}", None, "portal") for i in range(3)]
    assert writer.write("p1-a-1", launches, [], UTC) == 3
    writer.spool("p1-a-1", launches, [])
    writer.spool("p1-a-2", launches[:1], [])  # a batch that was not written
    assert writer.replay_spool(UTC) == 1
    assert _count(engine, "launch_event") == 4
    assert list((tmp_path / "spool").iterdir()) == []
    assert writer.write("p1-a-2", launches, [], UTC) == 0  # however it comes back
    assert _count(engine, "launch_event") == 4
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
                _record(store, launches=50)
                recorded += 50
                await asyncio.sleep(0.005)
            assert await _until(lambda: store._proc is not None and store._proc.is_alive())
            writer = store._proc
            assert writer is not None
            os.kill(writer.pid or 0, signal.SIGKILL)  # mid-stream: batches in the pipe
            _record(store, launches=50)
            recorded += 50

            def replaced(w: object = writer) -> bool:
                return store._proc is not None and store._proc is not w

            assert await _until(replaced)
        assert await _until(lambda: _count(engine, "launch_event") == recorded, 15)
        await store.close()

    asyncio.run(run())
    assert _count(engine, "launch_event") == recorded
    assert store.pending == 0
    assert list((tmp_path / "spool").glob("events-*")) == []
    engine.dispose()


def test_the_writer_ignores_signals_meant_for_the_portal(sqlite_url: str, tmp_path: Path) -> None:
    """Ctrl-C or a SIGTERM to the whole process group: the writer keeps going until the portal
    has handed it the last batch and closes it."""
    engine = db.make_engine(sqlite_url)
    store = EventStore(engine, tmp_path / "spool", flush_interval=0.01)

    async def run() -> None:
        store.start()
        _record(store, launches=10)
        assert await _until(lambda: store.written == 10)
        assert store._proc is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            os.kill(store._proc.pid or 0, sig)
        await asyncio.sleep(0.3)
        assert store._proc is not None and store._proc.is_alive()
        _record(store, launches=5)
        await store.close()

    asyncio.run(run())
    assert _count(engine, "launch_event") == 15
    assert store.written == 15 and store.spooled == 0
    engine.dispose()


def test_the_writer_replays_a_spool_left_by_an_earlier_run_at_start(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    launches = [Launch(TS, "teams", f"u{i}", None, "portal") for i in range(4)]
    BatchWriter(engine, tmp_path / "spool", None).spool("earlier-run-1", launches, [])
    store = EventStore(engine, tmp_path / "spool", retry_interval=60)

    async def run() -> None:
        store.start()  # no launch at all: the writer starts and replays on its own
        assert await _until(lambda: _count(engine, "launch_event") == 4)
        await store.close()

    asyncio.run(run())
    assert store.written == 4
    assert list((tmp_path / "spool").iterdir()) == []
    engine.dispose()


def test_a_writer_that_cannot_start_leaves_the_events_in_the_spool(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(sqlite_url)
    store = EventStore(engine, tmp_path / "spool")

    def cannot_start() -> None:
        raise OSError("Resource temporarily unavailable (a deliberate failure)")

    monkeypatch.setattr(store, "_start_writer", cannot_start)
    _record(store, launches=5, signins=1)
    asyncio.run(store.flush())
    assert (store.pending, store.spooled, store.written) == (0, 6, 0)
    assert len(_spooled_lines(tmp_path / "spool")) == 6
    monkeypatch.undo()  # a writer that can start replays them
    replayed = EventStore(engine, tmp_path / "spool", retry_interval=60)

    async def run() -> None:
        replayed.start()
        assert await _until(lambda: _count(engine, "launch_event") == 5)
        await replayed.close()

    asyncio.run(run())
    assert _count(engine, "signin_event") == 1
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
        assert await _until(lambda: store._proc is not None)
        _record(store, launches=10)
        await asyncio.sleep(0.2)  # the flush task is now in the slow send
        started = time.monotonic()
        await store.close()
        return time.monotonic() - started

    took = asyncio.run(run())
    assert took < WRITER_STOP_TIMEOUT + 0.5
    assert _count(engine, "launch_event") == 10
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
        _record(store, launches=7)
        hogs = [asyncio.create_task(anyio.to_thread.run_sync(time.sleep, 1.0)) for _ in range(2)]
        await asyncio.sleep(0.1)
        await store.close()
        await asyncio.gather(*hogs)

    asyncio.run(run())
    assert _count(engine, "launch_event") == 7
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
        assert await _until(lambda: store._proc is not None)
        blocker = engine.connect().execution_options(sqlite_immediate=True)
        transaction = blocker.begin()
        try:
            for _ in range(30):
                _record(store, launches=300)
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
        assert await _until(lambda: _count(engine, "launch_event") == recorded, 20)
        await replay.close()

    asyncio.run(replay_all())
    assert _count(engine, "launch_event") == recorded
    assert list((tmp_path / "spool").glob("events-*")) == []
    engine.dispose()


EXIT_WITHOUT_CLOSE = """
import asyncio, sys
from pathlib import Path
from launcher import db, events
from launcher.launches import EventStore

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
    import subprocess
    import sys

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
    assert _count(engine, "launch_event") == 41
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
    monkeypatch.setattr(events, "STATEMENT_TIMEOUT", 1)
    engine = db.make_engine(database_url)
    writer = BatchWriter(engine, tmp_path / "spool", _stall)
    launches = [Launch(TS, "teams", "u1", None, "portal")]
    started = time.monotonic()
    assert writer.write_or_spool("stalled-1", launches, [], UTC) == (0, 1)
    assert time.monotonic() - started < 4
    assert not writer.database_ok
    assert _count(engine, "launch_event") == 0  # the transaction was rolled back
    assert len(_spooled_lines(tmp_path / "spool")) == 1
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
    assert _count(engine, "launch_event") == 1
    engine.dispose()

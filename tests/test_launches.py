"""The event store: write-behind batches, the spool while the database is down, its replay."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.launches import EventStore, Launch, SignIn

TS = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


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


def _record(store: EventStore, launches: int, signins: int = 0) -> None:
    for i in range(launches):
        store.record_launch(f"app-{i % 3}", f"user-{i}", "nursing" if i % 2 else None)
    for i in range(signins):
        store.record_signin(f"user-{i}", None)


def test_database_down_spools_json_lines(tmp_path: Path, down: sa.Engine) -> None:
    store = EventStore(down, tmp_path / "spool")
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
    store = EventStore(down, tmp_path / "spool")
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
    store = EventStore(down, tmp_path / "spool")
    store._buffer.append(Launch(TS, "ehr", "u1", "medical", "portal"))
    store._buffer.append(SignIn(TS, "u1", "medical"))
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
    store = EventStore(down, spool)
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


def test_close_flushes_everything(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/launcher.db")
    db.upgrade(engine)
    store = EventStore(engine, tmp_path / "spool", flush_interval=60)  # only close() flushes

    async def run() -> None:
        store.start()
        _record(store, launches=250, signins=10)
        await asyncio.sleep(0)
        await store.close()

    asyncio.run(run())
    assert (_count(engine, "launch_event"), _count(engine, "signin_event")) == (250, 10)
    assert (store.pending, store.written, store.spooled) == (0, 260, 0)
    engine.dispose()


def test_close_while_the_database_is_down_spools_everything(
    tmp_path: Path, down: sa.Engine
) -> None:
    store = EventStore(down, tmp_path / "spool", flush_interval=60)

    async def run() -> None:
        store.start()
        _record(store, launches=40, signins=5)
        await store.close()

    asyncio.run(run())
    assert (store.pending, store.spooled) == (0, 45)
    assert len(_spooled_lines(tmp_path / "spool")) == 45


def test_background_loop_writes_spool_back_when_the_database_returns(
    tmp_path: Path, down: sa.Engine
) -> None:
    store = EventStore(down, tmp_path / "spool", flush_interval=0.01, retry_interval=0)

    async def run() -> sa.Engine:
        store.start()
        _record(store, launches=6)
        await asyncio.sleep(0.1)
        assert store.spooled == 6 and not store.database_ok
        up = _bring_up(tmp_path)
        _record(store, launches=4)  # written directly once the database answers
        for _ in range(200):
            await asyncio.sleep(0.02)
            if _count(up, "launch_event") == 10:
                break
        await store.close()
        return up

    up = asyncio.run(run())
    assert _count(up, "launch_event") == 10
    assert store.database_ok
    assert list((tmp_path / "spool").glob("events-*")) == []
    up.dispose()


def test_a_file_claimed_by_a_dead_worker_is_replayed(sqlite_url: str, tmp_path: Path) -> None:
    import subprocess

    engine = db.make_engine(sqlite_url)
    spool = tmp_path / "orphans"
    writer = EventStore(engine, spool)
    writer._spool(
        [Launch(dt.datetime(2025, 3, 3, 9, tzinfo=dt.UTC), "teams", "u1", None, "portal")]
    )
    [path] = spool.glob("events-*.jsonl")
    child = subprocess.Popen(["true"])  # a worker that has exited
    child.wait()
    path.rename(path.with_name(path.name + f".claimed-{child.pid}"))  # it died mid-replay
    assert EventStore(engine, spool).replay_spool() == 1
    assert not list(spool.iterdir())
    engine.dispose()

"""The spool (launcher/events/spool.py): what a batch looks like on disk while the database
is down, its replay once the database is back, damaged files, files a dead writer claimed."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.events import BatchWriter, EventStore, Launch, Spool
from tests.events_support import (
    TS,
    UTC,
    bring_up,
    count,
    record,
    spooled_lines,
    unreachable,
)


@pytest.fixture
def down(tmp_path: Path) -> Iterator[sa.Engine]:
    yield from unreachable(tmp_path)


def test_database_down_spools_json_lines(tmp_path: Path, down: sa.Engine) -> None:
    store = EventStore(down, tmp_path / "spool", writer="thread")
    record(store, launches=5, signins=2)
    asyncio.run(store.flush())
    assert store.pending == 0
    assert (store.spooled, store.written, store.database_ok) == (7, 0, False)
    lines = spooled_lines(tmp_path / "spool")
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
        record(store, launches=4, signins=1)
        asyncio.run(store.flush())
    assert store.replay_spool() == 0  # still down: nothing replayed, nothing lost
    assert len(spooled_lines(tmp_path / "spool")) == 15

    up = bring_up(tmp_path)
    assert store.replay_spool() == 15
    assert (count(up, "launch_event"), count(up, "signin_event")) == (12, 3)
    assert store.database_ok
    assert list((tmp_path / "spool").iterdir()) == []
    assert store.replay_spool() == 0  # each event once
    assert count(up, "launch_event") == 12
    up.dispose()


def test_replayed_events_keep_their_fields(tmp_path: Path, down: sa.Engine) -> None:
    store = EventStore(down, tmp_path / "spool", writer="thread")
    store._launches.append((TS.timestamp(), "ehr", "u1", "medical", "portal"))
    store._signins.append((TS.timestamp(), "u1", "medical"))
    asyncio.run(store.flush())
    up = bring_up(tmp_path)
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
    record(store, launches=3)
    asyncio.run(store.flush())
    spool.joinpath("events-0-damaged.jsonl").write_text(damage)  # sorts before the good one
    record(store, launches=2)
    asyncio.run(store.flush())

    up = bring_up(tmp_path)
    assert store.replay_spool() == 5
    assert count(up, "launch_event") == 5
    assert sorted(p.name for p in spool.iterdir()) == ["events-0-damaged.bad"]
    assert spool.joinpath("events-0-damaged.bad").read_text() == damage
    assert store.database_ok
    up.dispose()


def test_a_file_claimed_by_a_dead_writer_is_replayed(sqlite_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(sqlite_url)
    spool = tmp_path / "orphans"
    at = dt.datetime(2025, 3, 3, 9, tzinfo=dt.UTC)
    Spool(spool).put("b1", [Launch(at, "teams", "u1", None, "portal")], [])
    [path] = spool.glob("events-*.jsonl")
    child = subprocess.Popen(["true"])  # a writer that has exited
    child.wait()
    path.rename(path.with_name(path.name + f".claimed-{child.pid}"))  # it died mid-replay
    assert BatchWriter(engine, spool, None).replay_spool(UTC) == 1
    assert not list(spool.iterdir())
    engine.dispose()

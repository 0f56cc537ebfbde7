"""The reading process (launcher/signins/reading.py): what it sends, how it stops, and that an
import through it stores exactly what the file holds, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.settings import Settings
from launcher.signins import chunks, importer, reading, stage
from launcher.signins.record import ImportRefused

T = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
RAW = "raw-oid-4711"  # a raw user id: it must not leave the reading process
KEY = (b"k" * 32, "https://idp.example.org")


def _record(i: int, user: str = RAW, app: str = "app-teams", name: str = "Teams") -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "createdDateTime": (T + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        "userId": user,
        "userPrincipalName": f"{user}@example.org",
        "appId": app,
        "appDisplayName": name,
        "status": {"errorCode": 0},
        "isInteractive": True,
    }


def _lines(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    path = tmp_path / "signins.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, subject_claim="oid")


@pytest.mark.parametrize("form", [chunks.SQLITE, chunks.ROWS, chunks.COPY])
def test_nothing_the_reading_process_sends_holds_a_raw_user_id(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _lines(tmp_path, [_record(i) for i in range(chunks.CHUNK + 10)])
    sent: list[bytes] = []
    receive = reading.Reading._receive

    def spy(self: reading.Reading) -> tuple[Any, ...]:
        message = receive(self)
        sent.append(pickle.dumps(message))
        return message

    monkeypatch.setattr(reading.Reading, "_receive", spy)
    with reading.Reading("entra", path, KEY, {"app-teams": "teams"}, form, lambda *_: None) as r:
        sizes = [chunk.size for chunk in r.chunks()]
    assert sizes == [chunks.CHUNK, 10]
    assert r.read == chunks.CHUNK + 10
    assert r.peak_kb > 0  # its memory, for the benchmark's peak of both processes
    assert sent and all(RAW.encode() not in m for m in sent)
    assert r.process.returncode == 0  # it ended by itself


def test_an_unforeseen_error_of_the_reading_process_is_raised_in_the_importer(
    tmp_path: Path,
) -> None:
    path = _lines(tmp_path, [_record(1)])
    with (
        reading.Reading("no such format", path, KEY, {}, chunks.ROWS) as r,
        pytest.raises(KeyError, match="no such format"),
    ):
        list(r.chunks())
    assert r.process.returncode is not None  # ended and waited for: no zombie


def test_the_reading_process_runs_this_package_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-I and the importer's module path: a ``launcher`` in the current directory or on a
    PYTHONPATH set since is not imported instead."""
    bogus = tmp_path / "elsewhere" / "launcher"
    bogus.mkdir(parents=True)
    (bogus / "__init__.py").write_text("raise SystemExit('the wrong launcher')\n")
    monkeypatch.chdir(bogus.parent)
    monkeypatch.setenv("PYTHONPATH", str(bogus.parent))
    path = _lines(tmp_path, [_record(1)])
    with reading.Reading("entra", path, KEY, {}, chunks.ROWS) as r:
        assert [c.size for c in r.chunks()] == [1]


@pytest.mark.parametrize("where", ["the database", "an interrupt"], ids=["store fails", "Ctrl-C"])
def test_an_import_that_stops_stops_its_reading_process(
    where: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the writing (or Ctrl-C, which the reading process ignores) stops the
    reading process mid-file, waits for it and for the thread receiving from it, and stores
    nothing."""
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    path = _lines(tmp_path, [_record(i) for i in range(3 * chunks.CHUNK)])
    started: list[reading.Reading] = []

    class Spied(reading.Reading):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            started.append(self)

    monkeypatch.setattr(reading, "Reading", Spied)
    error: type[BaseException] = RuntimeError if where == "the database" else KeyboardInterrupt
    store = stage.Stage.store

    def failing(self: stage.Stage, chunk: chunks.Chunk) -> int:
        store(self, chunk)
        raise error("stop")

    monkeypatch.setattr(stage.Stage, "store", failing)
    threads = threading.active_count()
    with pytest.raises(error, match="stop"):
        importer.import_files(engine, settings, {}, "entra", [path])
    (r,) = started
    assert r.process.returncode is not None  # killed mid-file and waited for
    assert threading.active_count() == threads
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM imported_signin").scalar_one() == 0
    engine.dispose()


def test_a_refusal_comes_from_the_reading_process_with_the_record_and_field(
    settings: Settings, tmp_path: Path
) -> None:
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    records = [_record(i) for i in range(chunks.CHUNK + 5)]
    records[chunks.CHUNK + 2]["isInteractive"] = "yes"  # record CHUNK + 3, in the 2nd chunk
    path = _lines(tmp_path, records)
    with pytest.raises(ImportRefused) as refused:
        importer.import_files(engine, settings, {}, "entra", [path])
    assert str(refused.value) == (
        f"{path}: record {chunks.CHUNK + 3}: field isInteractive: is not true or false"
    )
    assert RAW not in str(refused.value)
    with engine.connect() as conn:  # the first chunk was stored, and rolled back
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM imported_signin").scalar_one() == 0
    engine.dispose()


def test_text_that_copy_would_take_for_its_own_is_stored_as_it_is(
    settings: Settings, tmp_path: Path
) -> None:
    """PostgreSQL's rows go as COPY text: a tab, newline, carriage return or backslash in an
    id or an app's name is escaped, and stored as the file has it (SQLite: stored as rows)."""
    odd = ["a\tb", "line\nbreak", "cr\rhere", "back\\slash", "\\N", "plain"]
    records = [_record(i, app=f"app {s}", name=f"name {s}") for i, s in enumerate(odd)]
    records.append({**_record(99), "id": "id\twith\\tab"})
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    summary = importer.import_files(engine, settings, {}, "entra", [_lines(tmp_path, records)])
    assert summary.new == len(records)
    with engine.connect() as conn:
        stored = set(
            conn.execute(
                sa.text("SELECT record_id, provider_app_id, provider_app FROM imported_signin")
            ).all()
        )
    expected = {(r["id"], r["appId"], r["appDisplayName"]) for r in records}
    assert stored == expected
    engine.dispose()


def test_copy_text_is_one_line_per_row_and_joined_whole_when_nothing_needs_escaping() -> None:
    rows: list[chunks.Row] = [("r1", T, "u", "teams", "app-teams", "")]
    assert chunks.copy_text(rows) == b"r1\t2025-03-03T09:00:00+00:00\tu\tteams\tapp-teams\t\n"
    rows = [("r\\1", T, "u", "", "a\tb", "n\r\n")]
    assert chunks.copy_text(rows) == (b"r\\\\1\t2025-03-03T09:00:00+00:00\tu\t\ta\\tb\tn\\r\\n\n")

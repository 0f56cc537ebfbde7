"""launcher/db.py: transactions that read and then write on SQLite (db.write_transaction).

In WAL mode a transaction that began with a read sees the database as of that read; when
another connection (the event writer's flush, another worker) commits before it writes, its
write fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT): the busy timeout does not
help, as waiting cannot make an old snapshot current. Each domain function below writes in a
transaction that reads first (or, the status claim, whose first statement writes); a writer
that tries to commit after its first statement must find the database locked (it would wait,
with a busy timeout) and the function must succeed. Transactions that only write, or that read
in one transaction and write in another (app_requests.notices), need no more than BEGIN.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from launcher import app_requests, db, personal, status
from launcher.engage import announcements

NOW = dt.datetime(2026, 5, 20, 12, tzinfo=dt.UTC)
TODAY = NOW.date()


@contextmanager
def writer_between_read_and_write(engine: sa.Engine, path: str) -> Iterator[list[str]]:
    """After the first statement on ``engine`` (past its BEGIN), another connection tries to
    commit a row (without waiting); yields what became of that: ``committed`` or ``locked``."""
    outcome: list[str] = []

    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if outcome or statement.lstrip().upper().startswith("BEGIN"):
            return
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute(
                "INSERT INTO favourite (user_id, app_id, created_at, position)"
                " VALUES ('someone-else', 'teams', '2026-05-20 12:00:00', 0)"
            )
            outcome.append("committed")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            outcome.append("locked")
        finally:
            other.close()

    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield outcome
    finally:
        sa.event.remove(engine, "after_cursor_execute", after)


def _favourites(engine: sa.Engine) -> Callable[[], object]:
    for app in ("teams", "ehr", "outlook"):
        personal.set_favourite(engine, "u1", app, True)
    return lambda: personal.move_favourite(engine, "u1", "outlook", "up")


def _place(engine: sa.Engine) -> Callable[[], object]:
    for app in ("teams", "ehr", "outlook"):
        personal.set_favourite(engine, "u1", app, True)
    return lambda: personal.place_favourite(engine, "u1", "outlook", 0)


def _star(engine: sa.Engine) -> Callable[[], object]:
    personal.set_favourite(engine, "u1", "teams", True)
    return lambda: personal.set_favourite(engine, "u1", "ehr", True)


def _dismiss_announcement(engine: sa.Engine) -> Callable[[], object]:
    draft = announcements.parse(
        {
            "title": "Nieuw",
            "body": "Lees dit.",
            "starts": str(TODAY),
            "ends": str(TODAY),
            "groups": "",
        }
    )
    new = announcements.create(engine, draft, "editor", now=NOW)
    return lambda: announcements.dismiss(engine, new, "u1", ())


def _claim_a_status_check(engine: sa.Engine) -> Callable[[], object]:
    # its first statement writes (an INSERT … ON CONFLICT DO NOTHING): a plain BEGIN will do
    return lambda: status.claim(engine, ["teams", "ehr"], now=NOW)


def _close_request(engine: sa.Engine) -> Callable[[], object]:
    app_requests.add(engine, "u1", None, "Miro", now=NOW)
    return lambda: app_requests.dismiss(engine, "miro", "admin-1", now=NOW)


@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(_favourites, id="move a favourite"),
        pytest.param(_place, id="place a favourite"),
        pytest.param(_star, id="star an app"),
        pytest.param(_dismiss_announcement, id="dismiss an announcement"),
        pytest.param(_close_request, id="close a request"),
        pytest.param(_claim_a_status_check, id="claim a status check"),
    ],
)
def test_a_read_then_write_holds_the_write_lock_from_its_start(
    sqlite_url: str, prepare: Callable[[sa.Engine], Callable[[], object]]
) -> None:
    engine = db.make_engine(sqlite_url)
    path = sa.make_url(sqlite_url).database
    assert path
    run = prepare(engine)
    with writer_between_read_and_write(engine, path) as outcome:
        run()  # without BEGIN IMMEDIATE: OperationalError, database is locked
    assert outcome == ["locked"]
    engine.dispose()


def test_the_test_sees_the_failure_it_guards_against(sqlite_url: str) -> None:
    """A plain transaction that reads and then writes, with the same writer in between: it
    fails, so the test above can tell BEGIN IMMEDIATE from BEGIN."""
    engine = db.make_engine(sqlite_url)
    path = sa.make_url(sqlite_url).database
    assert path
    mine = personal.T_FAVOURITE.c.user_id == "u1"
    with (
        writer_between_read_and_write(engine, path) as outcome,
        pytest.raises(sa.exc.OperationalError, match="locked"),
        engine.begin() as conn,
    ):
        personal.favourites(conn, "u1")
        conn.execute(sa.delete(personal.T_FAVOURITE).where(mine))
    assert outcome == ["committed"]
    with db.write_transaction(engine) as conn:  # the same, holding the lock: no failure
        personal.favourites(conn, "u1")
        conn.execute(sa.delete(personal.T_FAVOURITE).where(mine))
    engine.dispose()


@pytest.mark.postgres
def test_reading_runs_each_statement_outside_a_transaction(postgres_server: str) -> None:
    """db.reading on PostgreSQL: no BEGIN (nor ROLLBACK) around the grid's reads; the
    connection goes back to the pool as it came, and a transaction on it is one again."""
    engine = db.make_engine(postgres_server, threads=1)
    db.upgrade(engine)
    try:
        with db.reading(engine) as conn:
            assert personal.favourites(conn, "someone") == []
            driver: Any = conn.connection.driver_connection
            assert driver.autocommit and driver.info.transaction_status.name == "IDLE"
        with engine.connect() as conn:  # the same pooled connection (one thread's pool)
            conn.execute(sa.text("SELECT 1"))
            driver = conn.connection.driver_connection
            assert not driver.autocommit and driver.info.transaction_status.name == "INTRANS"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_execute_sends_many_parameters_as_the_driver_would(database_url: str) -> None:
    """db.execute: a statement with more parameters than psycopg keeps parsed goes with
    numbered ones through psycopg's RawCursor; the answer is exec_driver_sql's, "%%" is still
    a "%", and an error is SQLAlchemy's, with the connection's cursor class put back."""
    import psycopg

    engine = db.make_engine(database_url)
    ph = "?" if db.is_sqlite(engine) else "%s"
    mod = "%" if db.is_sqlite(engine) else "%%"
    values = list(range(200))
    rows = ", ".join([f"({ph}, {ph})"] * 100)
    sql = f"WITH k (a, b) AS (VALUES {rows}) SELECT a, b, (a + b) {mod} 7 FROM k ORDER BY a"
    with engine.connect() as conn:
        expected = [tuple(r) for r in conn.exec_driver_sql(sql, tuple(values))]
        assert [tuple(r) for r in db.execute(conn, sql, values)] == expected
        assert expected[3] == (6, 7, 13 % 7) and len(expected) == 100
        statements: list[str] = []
        sa.event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        db.execute(conn, sql, values)
        numbered = not db.is_sqlite(engine)
        assert ("$200" in statements[-1]) is numbered  # the parser is skipped on PostgreSQL
        with pytest.raises(sa.exc.DBAPIError):
            db.execute(conn, sql.replace("SELECT a", "SELECT no_such_column"), values)
        conn.rollback()
        if numbered:
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            assert driver.cursor_factory is psycopg.Cursor
        # a few parameters, or a "%" of another kind: exec_driver_sql as it is
        assert db.execute(conn, f"SELECT {ph} + 1", [41]).scalar_one() == 42
    engine.dispose()


def test_numbering_leaves_statements_it_cannot_read_to_psycopg() -> None:
    assert db._numbered("SELECT %s, %s %% 3") == "SELECT $1, $2 % 3"
    assert db._numbered("SELECT %(name)s, %s") is None
    assert db._numbered("SELECT '%%s', %s") is None
    assert db._numbered("SELECT '$1', %s") is None

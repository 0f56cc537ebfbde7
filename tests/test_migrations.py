"""Every migration runs forward and back on SQLite and PostgreSQL, and the models match the
migrated schema (what Alembic's autogenerate would find to change: nothing)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import launcher.models  # noqa: F401  (the tables)
from launcher import db
from launcher.partitions import is_partition

T0 = dt.datetime(2026, 3, 14, 9, 30, tzinfo=dt.UTC)


def _include(name: str | None, type_: str, parent_names: Any) -> bool:
    # as launcher/migrations/env.py (which runs only under Alembic): partitions are no models
    return not (type_ == "table" and name is not None and is_partition(name))


def _differences(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": _include, "compare_type": True}
        )
        return list(compare_metadata(context, SQLModel.metadata))


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def _launches(engine: sa.Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, app_id FROM launch_event ORDER BY id"))
        return [(int(i), str(a)) for i, a in rows]


def _add_launches(engine: sa.Engine, apps: list[str]) -> None:
    with engine.begin() as conn:
        for n, app in enumerate(apps):
            conn.execute(
                sa.text(
                    "INSERT INTO launch_event (ts, app_id, user_id, department, source) "
                    "VALUES (:ts, :app, 'u1', NULL, 'portal')"
                ),
                {"ts": T0 - dt.timedelta(days=40 * n), "app": app},
            )


def test_upgrade_downgrade_upgrade_and_the_models_match(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        assert _differences(engine) == []
        models = {t.name for t in SQLModel.metadata.sorted_tables}
        assert models <= _tables(engine)

        db.downgrade(engine, "base")
        assert _tables(engine) == set()  # the partitions went with their tables

        db.upgrade(engine)
        assert not db.pending_migrations(engine)
        assert _differences(engine) == []
        assert {t for t in _tables(engine) if not is_partition(t)} == models
    finally:
        engine.dispose()


def test_rows_survive_the_partitioning_both_ways(database_url: str) -> None:
    """0013 moves the raw events into partitioned tables and back; ids and their sequence
    carry on (a new row after each step gets a higher id)."""
    engine = db.make_engine(database_url)
    try:
        _add_launches(engine, ["mail", "wiki", "hr"])  # over three months
        before = _launches(engine)
        db.downgrade(engine, "0008")
        assert _launches(engine) == before
        _add_launches(engine, ["crm"])
        db.upgrade(engine)
        _add_launches(engine, ["erp"])
        after = _launches(engine)
        assert after[: len(before)] == before
        assert [a for _, a in after] == ["mail", "wiki", "hr", "crm", "erp"]
        assert [i for i, _ in after] == sorted({i for i, _ in after})  # unique, increasing
        assert _differences(engine) == []
    finally:
        engine.dispose()


def test_user_recent_is_filled_from_the_launches_of_the_window(database_url: str) -> None:
    """0021 fills user_recent with each person's last launch of each app of the last 90 days
    (launcher/personal.py) and goes back without it."""
    engine = db.make_engine(database_url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        db.downgrade(engine, "0020")
        with engine.begin() as conn:
            for days, app, user in [
                (3, "mail", "u1"),
                (1, "mail", "u1"),  # the later of the two
                (5, "wiki", "u1"),
                (2, "wiki", "u2"),
                (100, "hr", "u1"),  # outside the window
            ]:
                conn.execute(
                    sa.text(
                        "INSERT INTO launch_event (ts, app_id, user_id, department, source) "
                        "VALUES (:ts, :app, :user, NULL, 'portal')"
                    ),
                    {
                        "ts": _stored(engine, now - dt.timedelta(days=days)),
                        "app": app,
                        "user": user,
                    },
                )
        db.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT user_id, app_id, last_ts FROM user_recent ORDER BY 1, 2")
            ).all()
        assert [(u, a, _stored(engine, ts)) for u, a, ts in rows] == [
            ("u1", "mail", _stored(engine, now - dt.timedelta(days=1))),
            ("u1", "wiki", _stored(engine, now - dt.timedelta(days=5))),
            ("u2", "wiki", _stored(engine, now - dt.timedelta(days=2))),
        ]
        db.downgrade(engine, "0020")
        assert "user_recent" not in _tables(engine)
        db.upgrade(engine)
        assert _differences(engine) == []
    finally:
        engine.dispose()


def _stored(engine: sa.Engine, ts: Any) -> Any:
    """A time as the raw SQL above writes and reads it: SQLAlchemy's text form on SQLite."""
    if not db.is_sqlite(engine):
        return ts
    if isinstance(ts, str):
        return ts
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.mark.postgres
def test_postgres_tables_are_partitioned_by_month(postgres_server: str) -> None:
    from tests.conftest import _reset

    _reset(postgres_server)
    engine = db.make_engine(postgres_server)
    try:
        with engine.connect() as conn:
            kinds: dict[str, str] = dict(
                conn.execute(
                    sa.text(
                        "SELECT relname, relkind FROM pg_class WHERE relname IN "
                        "('launch_event', 'signin_event', 'imported_signin')"
                    )
                ).all()
            )
        assert kinds == {"launch_event": "p", "signin_event": "p", "imported_signin": "r"}
        pk = sa.inspect(engine).get_pk_constraint("launch_event")
        assert pk["constrained_columns"] == ["id", "ts"]
        names = _tables(engine)
        month = dt.datetime.now(dt.UTC).date().replace(day=1)
        assert f"launch_event_p{month:%Y_%m}" in names
        assert "launch_event_default" in names and "signin_event_default" in names
    finally:
        engine.dispose()

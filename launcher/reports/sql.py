"""SQL pieces the report queries share: the connection, date and category keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa

from launcher.registry import Registry
from launcher.reports.periods import Period

UNKNOWN = "unknown"  # the key for events without a department


_ONE: ContextVar[tuple[sa.Engine, sa.Connection] | None] = ContextVar("one", default=None)


@contextmanager
def connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for report queries, with PostgreSQL settings for them (this transaction
    only): room to hash the users of a month (the default 4 MB makes the planner sort them on
    disk instead), and no JIT, which would compile each query for longer than it runs. Inside
    :func:`one_connection`, that block's connection."""
    shared = _ONE.get()
    if shared is not None and shared[0] is engine:
        yield shared[1]
        return
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            conn.exec_driver_sql("SET LOCAL jit = off")
        yield conn


@contextmanager
def one_connection(engine: sa.Engine) -> Iterator[None]:
    """Every report query in this block on one connection: a page's two dozen queries
    without a checkout, two SETs and a rollback each (on a loaded PostgreSQL, round trips
    that cost more than the queries)."""
    with connect(engine) as conn:
        token = _ONE.set((engine, conn))
        try:
            yield
        finally:
            _ONE.reset(token)


def month_key(engine: sa.Engine, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    if engine.dialect.name == "sqlite":
        return sa.func.substr(col, 1, 7)
    return sa.func.to_char(col, "YYYY-MM")


def day_key(engine: sa.Engine, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    if engine.dialect.name == "sqlite":
        return sa.cast(col, sa.String)
    return sa.func.to_char(col, "YYYY-MM-DD")


def category_key(registry: Registry, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    mapping = {app.id: app.category or "other" for app in registry.apps}
    if not mapping:
        return sa.literal("other")
    return sa.case(mapping, value=col, else_=sa.literal("other"))


def dept(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.case((col == "", UNKNOWN), else_=col)


def between(col: sa.ColumnElement[Any], period: Period) -> sa.ColumnElement[bool]:
    return sa.and_(col >= period.start, col <= period.end)


def key_of(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)

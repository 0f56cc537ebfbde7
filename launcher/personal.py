"""What the grid shows one user beyond the registry: favourite apps and recently used apps.

Both are keyed by the pseudonymous user id, like every other record (docs/PRIVACY.md). The
grid page reads them (:func:`for_grid`: one statement, one round trip); ids of apps the user
may no longer see are filtered out by the caller, against the current registry.

"Recently used" is kept, not searched for: ``user_recent`` holds each person's last launch of
each app, upserted by every flush of launches in its transaction (:func:`note_launches`, from
launcher/events/writer.py), rebuilt from the raw launches by ``launcher db rebuild-rollups``
(:func:`rebuild_recent`) and purged with them (:func:`purge_recent`). Read from the
launches -- the person's newest 300 along ix_launch_event_user_ts, planned over every
partition of the window -- it took half of what a grid page cost PostgreSQL's server; the
person's rows of user_recent are one short primary-key range, read in the favourites'
statement (bench/README.md, bench_grid.py: the server's 0.21-0.27 ms a page became 0.10-0.13).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg

from launcher import db
from launcher.models import Favourite, LaunchEvent, UserRecent, table

if TYPE_CHECKING:
    from launcher.loop_reads import LoopReads

RECENT_DAYS = 90  # "recently used" looks back this far
RECENT_MAX = 6  # apps in the "recently used" row
RECENT_READ = 20  # apps read for it: the caller drops the ones the user may no longer see

T_FAVOURITE = table(Favourite)
T_LAUNCH = table(LaunchEvent)
T_RECENT = table(UserRecent)

# The grid page's statements, built once: SQLAlchemy then computes their cache keys once
# instead of on every page (building and keying a statement cost more than running it).
_USER: sa.BindParameter[str] = sa.bindparam("user_id")
_SINCE: sa.BindParameter[dt.datetime] = sa.bindparam("since")
_FAVOURITES = (
    sa.select(T_FAVOURITE.c.app_id)
    .where(T_FAVOURITE.c.user_id == _USER)
    .order_by(T_FAVOURITE.c.position, T_FAVOURITE.c.created_at, T_FAVOURITE.c.app_id)
)
_RECENT = (
    sa.select(T_RECENT.c.app_id, T_RECENT.c.last_ts)
    .where(T_RECENT.c.user_id == _USER, T_RECENT.c.last_ts >= _SINCE)
    .order_by(T_RECENT.c.last_ts.desc(), T_RECENT.c.app_id)
    .limit(RECENT_READ)
)
_recent = _RECENT.subquery()
# Both in one statement: one round trip and one execution's worth of SQLAlchemy. A UNION
# promises no order, so each row carries its sort key and for_grid sorts (a few dozen rows).
_BOTH = sa.union_all(
    sa.select(
        sa.literal_column("0").label("recent"),  # written into the SQL: no parameters
        T_FAVOURITE.c.app_id,
        T_FAVOURITE.c.position,
        T_FAVOURITE.c.created_at.label("ts"),
    ).where(T_FAVOURITE.c.user_id == _USER),
    sa.select(sa.literal_column("1"), _recent.c.app_id, sa.literal_column("0"), _recent.c.last_ts),
)


def favourites(conn: sa.Connection, user_id: str) -> list[str]:
    """The user's favourite app ids in their order (moved, else the order they were starred)."""
    return list(conn.execute(_FAVOURITES, {"user_id": user_id}).scalars())


def move_favourite(engine: sa.Engine, user_id: str, app_id: str, direction: str) -> bool:
    """Swap a favourite with its neighbour above (``up``) or below (``down``); False when it is
    not a favourite or already at that end. The person's rows are renumbered 0..n-1."""
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    with db.write_transaction(engine) as conn:  # reads, then writes
        order = favourites(conn, user_id)
        if app_id not in order:
            return False
        i = order.index(app_id)
        j = i - 1 if direction == "up" else i + 1
        if not 0 <= j < len(order):
            return False
        order[i], order[j] = order[j], order[i]
        _renumber(conn, user_id, order)
        return True


def place_favourite(engine: sa.Engine, user_id: str, app_id: str, index: int) -> bool:
    """Move a favourite to ``index`` (0 = first; past the end = last), as drag and drop does;
    False when it is not a favourite."""
    with db.write_transaction(engine) as conn:  # reads, then writes
        order = favourites(conn, user_id)
        if app_id not in order:
            return False
        order.remove(app_id)
        order.insert(max(0, index), app_id)
        _renumber(conn, user_id, order)
        return True


def _renumber(conn: sa.Connection, user_id: str, order: list[str]) -> None:
    for position, app_id in enumerate(order):
        conn.execute(
            sa.update(T_FAVOURITE)
            .where(T_FAVOURITE.c.user_id == user_id, T_FAVOURITE.c.app_id == app_id)
            .values(position=position)
        )


def set_favourite(engine: sa.Engine, user_id: str, app_id: str, favourite: bool) -> None:
    """Star (``favourite``) or un-star an app; doing either twice changes nothing."""
    with db.write_transaction(engine) as conn:  # starring reads the last position first
        if not favourite:
            conn.execute(
                sa.delete(T_FAVOURITE).where(
                    T_FAVOURITE.c.user_id == user_id, T_FAVOURITE.c.app_id == app_id
                )
            )
            return
        insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
        last = conn.execute(
            sa.select(sa.func.max(T_FAVOURITE.c.position)).where(T_FAVOURITE.c.user_id == user_id)
        ).scalar()
        row = {
            "user_id": user_id,
            "app_id": app_id,
            "created_at": dt.datetime.now(dt.UTC),
            "position": 0 if last is None else last + 1,  # a new favourite goes last
        }
        conn.execute(insert(T_FAVOURITE).values(row).on_conflict_do_nothing())


def _since(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=RECENT_DAYS)


def recent(conn: sa.Connection, user_id: str, now: dt.datetime | None = None) -> list[str]:
    """App ids the user launched in the last RECENT_DAYS, most recent first (at most
    RECENT_READ: the caller drops the ones the user may no longer see)."""
    rows = conn.execute(_RECENT, {"user_id": user_id, "since": _since(now)})
    return [app_id for app_id, _ in rows]


def for_grid(
    engine: sa.Engine, user_id: str, now: dt.datetime | None = None
) -> tuple[list[str], list[str]]:
    """(favourites, recently used), as favourites() and recent() answer them, in one statement
    outside a transaction (db.reading)."""
    with db.reading(engine) as conn:
        rows = conn.execute(_BOTH, {"user_id": user_id, "since": _since(now)}).all()
    return _split(rows)


async def for_grid_on_loop(
    reads: LoopReads, user_id: str, now: dt.datetime | None = None
) -> tuple[list[str], list[str]]:
    """for_grid's answer, read on the event loop (PostgreSQL; launcher/loop_reads.py)."""
    sql, defaults = _both_postgresql()
    return _split(await reads.rows(sql, defaults | {"user_id": user_id, "since": _since(now)}))


@functools.cache
def _both_postgresql() -> tuple[str, dict[str, Any]]:
    """The grid's statement in psycopg's form, and its parameters' defaults (the LIMIT)."""
    compiled = _BOTH.compile(dialect=postgresql_psycopg.dialect())  # type: ignore[no-untyped-call]
    return str(compiled), dict(compiled.construct_params({"user_id": "", "since": None}))


def _split(rows: Sequence[Sequence[Any]]) -> tuple[list[str], list[str]]:
    starred = sorted((r for r in rows if not r[0]), key=lambda r: (r[2], r[3], r[1]))
    used = sorted((r for r in rows if r[0]), key=lambda r: r[1])
    used.sort(key=lambda r: r[3], reverse=True)  # newest first, ties by app id (stable)
    return [r[1] for r in starred], [r[1] for r in used]


# --- upkeep of user_recent ----------------------------------------------------------------
def note_launches(conn: sa.Connection, launches: Iterable[tuple[Any, str, str]]) -> None:
    """Upsert each (ts, app_id, user_id) launch's time as its person's last of that app, in
    the flush's transaction. ``ts`` in the form the driver stores (events.writer's _db_time),
    which on SQLite is text that sorts as time does. Rows in key order, one per key (an
    upsert may not touch a row twice)."""
    latest: dict[tuple[str, str], Any] = {}
    for ts, app_id, user_id in launches:
        key = (user_id, app_id)
        if key not in latest or ts > latest[key]:
            latest[key] = ts
    db.insert_rows(
        conn,
        "INSERT INTO user_recent (user_id, app_id, last_ts)",
        [(u, a, ts) for (u, a), ts in sorted(latest.items())],
        # a launch flushed late (a spool replayed) never moves the last one back
        "ON CONFLICT (user_id, app_id) DO UPDATE SET last_ts = excluded.last_ts "
        "WHERE excluded.last_ts > user_recent.last_ts",
    )


def rebuild_recent(conn: sa.Connection, now: dt.datetime | None = None) -> None:
    """user_recent again from the raw launches of the last RECENT_DAYS (``launcher db
    rebuild-rollups``; the caller's transaction)."""
    conn.execute(sa.delete(T_RECENT))
    last = sa.select(T_LAUNCH.c.user_id, T_LAUNCH.c.app_id, sa.func.max(T_LAUNCH.c.ts))
    last = last.where(T_LAUNCH.c.ts >= _since(now)).group_by(T_LAUNCH.c.user_id, T_LAUNCH.c.app_id)
    conn.execute(sa.insert(T_RECENT).from_select(["user_id", "app_id", "last_ts"], last))


def purge_recent(conn: sa.Connection, cutoff: dt.datetime, now: dt.datetime | None = None) -> None:
    """Delete last launches before the raw events' ``cutoff`` (they go with them,
    docs/PRIVACY.md) or before the window of "recently used" (never read again)."""
    conn.execute(sa.delete(T_RECENT).where(T_RECENT.c.last_ts < max(cutoff, _since(now))))

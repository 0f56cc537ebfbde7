"""What the grid shows one user beyond the registry: favourite apps and recently used apps.

Both are keyed by the pseudonymous user id, like every other record (docs/PRIVACY.md). The
grid page reads them (one query each, off the launch path); ids of apps the user may no longer
see are filtered out by the caller, against the current registry.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from launcher import db
from launcher.models import Favourite, LaunchEvent, table

RECENT_DAYS = 90  # "recently used" looks back this far
RECENT_MAX = 6  # apps in the "recently used" row
RECENT_SCAN = 300  # newest launches of a person looked at for the "recently used" row

T_FAVOURITE = table(Favourite)
T_LAUNCH = table(LaunchEvent)

# The grid page's two queries, built once: SQLAlchemy then computes their cache keys once
# instead of on every page (building and keying a statement cost more than running it).
_FAVOURITES = (
    sa.select(T_FAVOURITE.c.app_id)
    .where(T_FAVOURITE.c.user_id == sa.bindparam("user_id"))
    .order_by(T_FAVOURITE.c.position, T_FAVOURITE.c.created_at, T_FAVOURITE.c.app_id)
)
_RECENT = (
    sa.select(T_LAUNCH.c.app_id)
    .where(T_LAUNCH.c.user_id == sa.bindparam("user_id"), T_LAUNCH.c.ts >= sa.bindparam("since"))
    .order_by(T_LAUNCH.c.ts.desc())
    .limit(RECENT_SCAN)
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


def recent(conn: sa.Connection, user_id: str, now: dt.datetime | None = None) -> list[str]:
    """App ids the user launched in the last RECENT_DAYS, most recent first (at most 20: the
    caller drops the ones the user may no longer see).

    It walks the person's launches newest first along ix_launch_event_user_ts and stops at
    RECENT_SCAN of them: a GROUP BY over every launch in the window read each row (~10 ms
    for someone with 3,000 launches in 90 days, on every grid page); the newest few hundred
    hold the recently used apps anyway (bench/README.md, bench_grid.py). The index holds the
    app id too, so that no launch row is read at all: PostgreSQL plans this statement once for
    anyone after a few runs (psycopg prepares it) and then reads the index entries of all the
    window's launches, 0.65 ms of its time for 3,000 of them from the index alone and 1.4 ms
    when each row was fetched from the table (migration 0020).
    """
    since = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=RECENT_DAYS)
    found: dict[str, None] = {}  # an ordered set: first seen = last used
    for app_id in conn.execute(_RECENT, {"user_id": user_id, "since": since}).scalars():
        found.setdefault(app_id)
        if len(found) == 20:
            break
    return list(found)


def for_grid(engine: sa.Engine, user_id: str) -> tuple[list[str], list[str]]:
    """(favourites, recently used) in one connection, outside a transaction (db.reading)."""
    with db.reading(engine) as conn:
        return favourites(conn, user_id), recent(conn, user_id)

"""The join: which imported sign-ins came through the portal (rollups: launcher/signins/rollups.py).

A sign-in counts as *through the portal* when the same person launched that app from the
portal in the 120 s before it, or up to 10 s after it (the provider's clock and ours differ).
Every launch the portal recorded counts, whatever its ``source``: a bookmark of
``/launch/teams`` still comes in through the portal's front door. The flag is kept on the
imported row (``via_portal``) and each sign-in is counted at most once.

Either side may arrive second, and both give the same figures:

- an import probes the launches already stored, inside the database, one statement per chunk
  of rows (launcher/signins/stage.py);
- each flush of launches probes the imported sign-ins not yet matched in its launches'
  windows (:func:`on_flush`, called by ``launcher.reports.rollups.apply`` in the batch's
  transaction). On the launch path this is one indexed look at the newest and oldest imported
  sign-in per batch; only a batch that overlaps the imported period pays for a range probe,
  one statement per 300 launches.

Both run under the rollup lock (see launcher/signins/importer.py), so neither misses the
other's uncommitted rows.

An imported sign-in's department is the person's department as the portal knows it
(``user_first.department``, the greatest one seen, as the launch rollups keep it), "" when the
person never used the portal. When a flush teaches the portal a person's department, their
imported sign-ins move to it (:func:`sync_departments`): so the department does not depend on
which arrived first either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from launcher import db
from launcher.reports import cellkey
from launcher.signins import rollups
from launcher.signins.rollups import GATEWAY_TABLES, T_IMPORTED, T_SIGNIN_DAY, fold, spans

# the window: a launch up to BEFORE before a sign-in, or AFTER after it (window.py)
from launcher.signins.window import AFTER, AFTER_S, BEFORE, BEFORE_S

CHUNK = 300  # keys per VALUES list: well below every driver's parameter limit

__all__ = [
    "AFTER",
    "AFTER_S",
    "BEFORE",
    "BEFORE_S",
    "GATEWAY_TABLES",
    "T_IMPORTED",
    "T_SIGNIN_DAY",
    "fold",
    "spans",
]  # for callers


class LaunchLike(Protocol):
    @property
    def ts(self) -> dt.datetime: ...
    @property
    def app_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def department(self) -> str | None: ...


class SignInLike(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def department(self) -> str | None: ...


# --- values as the driver stores them ------------------------------------------------------
def ph(conn: sa.Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


def db_time(conn: sa.Connection, value: dt.datetime) -> object:
    """A timestamp as stored: on SQLite the text form SQLAlchemy's DateTime uses there (as
    launcher/events/writer.py writes launches), so that the two compare alike."""
    if conn.dialect.name != "sqlite":
        return value
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def from_db_time(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _db_date(conn: sa.Connection, value: dt.date) -> object:
    return value.isoformat() if conn.dialect.name == "sqlite" else value


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _values(conn: sa.Connection, width: int, n: int) -> str:
    row = "(" + ", ".join([ph(conn)] * width) + ")"
    return ", ".join([row] * n)


# --- the import's side ----------------------------------------------------------------------
def departments_of(conn: sa.Connection, users: Iterable[str]) -> dict[str, str]:
    """The portal's department of each user that has one (user_first)."""
    wanted = sorted(set(users))
    out: dict[str, str] = {}
    for chunk in chunks(wanted):
        sql = (
            f"WITH k (user_id) AS (VALUES {_values(conn, 1, len(chunk))}) "
            "SELECT f.user_id, f.department FROM k JOIN user_first f ON f.user_id = k.user_id"
        )
        out.update((u, d or "") for u, d in db.execute(conn, sql, chunk))
    return out


# --- the launch path's side -----------------------------------------------------------------
def on_flush(
    conn: sa.Connection, launches: Sequence[LaunchLike], signins: Sequence[SignInLike]
) -> None:
    """Inside a launch batch's transaction: match the batch's launches with imported
    sign-ins, and move imported sign-ins of people whose department the batch changes."""
    lo, hi = conn.exec_driver_sql(
        "SELECT (SELECT MIN(ts) FROM imported_signin), (SELECT MAX(ts) FROM imported_signin)"
    ).one()
    if lo is None:  # nothing imported: the common case costs two index probes
        return
    match_launches(conn, launches, (from_db_time(lo), from_db_time(hi)))
    sync_departments(conn, launches, signins)


def match_launches(
    conn: sa.Connection,
    launches: Sequence[LaunchLike],
    imported: tuple[dt.datetime, dt.datetime],
    fresh_above: int | None = None,
) -> int:
    """Mark the unmatched imported sign-ins in these launches' windows as through the portal
    and count them into the rollups (rows with an id above ``fresh_above`` are not in the
    rollups yet: the import that is writing them folds them in itself). Returns how many."""
    first, last = imported
    probes = sorted(
        {
            (e.user_id, e.app_id, db_time(conn, e.ts - AFTER), db_time(conn, e.ts + BEFORE))
            for e in launches
            if first - BEFORE <= e.ts <= last + AFTER
        }
    )
    rows: dict[int, tuple[Any, ...]] = {}
    for chunk in chunks(probes):
        sql = (
            f"WITH k (user_id, app_id, lo, hi) AS (VALUES {_values(conn, 4, len(chunk))}) "
            "SELECT i.id, i.ts, i.app_id, i.provider_app, i.user_id, i.department, "
            "i.provider, i.record_id "
            "FROM k JOIN imported_signin i ON i.user_id = k.user_id AND i.ts >= k.lo "
            "AND i.ts <= k.hi AND i.app_id = k.app_id WHERE i.via_portal = 0"
        )
        for row in db.execute(conn, sql, [v for p in chunk for v in p]):
            rows[int(row[0])] = tuple(row[1:])
    if not rows:
        return 0
    ids = sorted(rows)
    for chunk in chunks(ids):
        marks = ", ".join([ph(conn)] * len(chunk))
        conn.exec_driver_sql(
            f"UPDATE imported_signin SET via_portal = 1 WHERE id IN ({marks})", tuple(chunk)
        )
    rollups.add_via(
        conn,
        (
            (
                from_db_time(ts).date(),
                app,
                provider_app,
                user,
                dept,
                cellkey.imported_key(user, provider, record_id),
            )
            for row_id, (ts, app, provider_app, user, dept, provider, record_id) in rows.items()
            if fresh_above is None or row_id <= fresh_above
        ),
    )
    return len(rows)


def sync_departments(
    conn: sa.Connection,
    launches: Sequence[SignInLike],
    signins: Sequence[SignInLike],
    fresh_above: int | None = None,
) -> None:
    """Give the imported sign-ins of the batch's people the department user_first will hold
    after the batch (the greatest seen, as rollups.apply keeps it)."""
    # a batch is hundreds of launches of a few people: the distinct pairs first, at C speed
    pairs = {(e.user_id, e.department) for e in launches}
    pairs.update((e.user_id, e.department) for e in signins)
    batch: dict[str, str] = {}
    for user, dept in pairs:
        if dept and dept > batch.get(user, ""):
            batch[user] = dept
    known = departments_of(conn, batch)
    changes = {u: d for u, d in batch.items() if d and d > known.get(u, "")}
    for user, dept in changes.items():
        move_user(conn, user, dept, fresh_above)


def move_user(conn: sa.Connection, user: str, dept: str, fresh_above: int | None = None) -> None:
    """Move one person's imported sign-ins, and their rollups, to ``dept``."""
    p = ph(conn)
    found = conn.exec_driver_sql(
        "SELECT id, ts, app_id, provider_app, department, via_portal, provider, record_id "
        f"FROM imported_signin WHERE user_id = {p} AND department <> {p}",
        (user, dept),
    ).all()
    if not found:
        return
    # per signin_day key: signins, via_portal and their cell keys (cellkey.py)
    delta: dict[tuple[Any, ...], list[int]] = {}
    keys: set[tuple[Any, ...]] = set()
    for row_id, ts, app, provider_app, old, via, provider, record_id in found:
        if fresh_above is not None and row_id > fresh_above:
            continue
        d = from_db_time(ts).date()
        record_key = cellkey.imported_key(user, provider, record_id)
        for key, sign in (((d, app, provider_app, old), -1), ((d, app, provider_app, dept), 1)):
            counts = delta.setdefault(key, [0, 0, 0, 0])
            counts[0] += sign
            counts[1] += sign * int(via)
            counts[2] += sign * record_key
            counts[3] += sign * record_key * int(via)
        keys.add((d, app, provider_app))
    M, mod = cellkey.MOD, "%" if conn.dialect.name == "sqlite" else "%%"  # psycopg: %s
    rows = [
        (_db_date(conn, d), a, pa, dp, n, v, nk % M, vk % M)  # Python's %: never negative
        for (d, a, pa, dp), (n, v, nk, vk) in delta.items()
        if n
    ]
    db.insert_rows(
        conn,
        "INSERT INTO signin_day (day, app_id, provider_app, department, signins, via_portal, "
        "signins_key, via_key)",
        rows,
        "ON CONFLICT (day, app_id, provider_app, department) DO UPDATE SET "
        "signins = signin_day.signins + excluded.signins, "
        "via_portal = signin_day.via_portal + excluded.via_portal, "
        f"signins_key = (signin_day.signins_key + excluded.signins_key) {mod} {M}, "
        f"via_key = (signin_day.via_key + excluded.via_key) {mod} {M}",
    )
    for d, app, provider_app, old in (k for k, counts in delta.items() if counts[0] < 0):
        conn.exec_driver_sql(
            f"DELETE FROM signin_day WHERE day = {p} AND app_id = {p} AND provider_app = {p} "
            f"AND department = {p} AND signins <= 0",
            (_db_date(conn, d), app, provider_app, old),
        )
    rollups.move(conn, user, dept, keys)
    conn.exec_driver_sql(
        f"UPDATE imported_signin SET department = {p} WHERE user_id = {p} AND department <> {p}",
        (dept, user, dept),
    )


# --- rollups from raw rows (an import's new rows; the rebuild), see rollups.py -------------
def correct_departments(conn: sa.Connection, where: str, params: dict[str, Any]) -> None:
    """Set the department of the imported rows ``where`` selects from user_first (writing
    only the rows that differ). A person user_first no longer holds (the purge deleted
    everyone seen only before the retention) keeps the department their rows have."""
    current = (
        "COALESCE((SELECT f.department FROM user_first f "
        "WHERE f.user_id = imported_signin.user_id), '')"
    )
    known = "EXISTS (SELECT 1 FROM user_first f WHERE f.user_id = imported_signin.user_id)"
    conn.execute(
        sa.text(
            f"UPDATE imported_signin SET department = {current} "
            f"WHERE {where} AND {known} AND department <> {current}"
        ),
        params,
    )


def rebuild(conn: sa.Connection) -> int:
    """Recompute the gateway rollups from the imported sign-ins (``launcher db
    rebuild-rollups``, after the launch rollups, whose user_first gives the departments).

    Whole months from the first month whose imported rows are all there: when older rows
    were purged, their rollups are all that is left of them and stay. ``via_portal`` is
    kept as the join decided it: a launch older than the retention is gone, and the match
    it made could not be made again. Returns the number of imported rows."""
    first = conn.exec_driver_sql("SELECT MIN(ts) FROM imported_signin").scalar()
    if first is None:
        return 0
    oldest = from_db_time(first)
    start = oldest.date().replace(day=1)
    purged = conn.execute(
        sa.select(T_SIGNIN_DAY.c.day).where(T_SIGNIN_DAY.c.day < start).limit(1)
    ).first()
    if purged is not None and oldest > dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC):
        # the month may have lost rows to the purge: keep its rollups, rebuild from the next
        start = (start + dt.timedelta(days=32)).replace(day=1)
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    rollups.clear_from(conn, start)
    params: dict[str, Any] = {"lo": db_time(conn, lo)}
    correct_departments(conn, "ts >= :lo", params)
    # in slices of ids: SQLite sorts each GROUP BY in memory
    first_id, last_id = conn.exec_driver_sql("SELECT MIN(id), MAX(id) FROM imported_signin").one()
    for a in range(int(first_id) - 1, int(last_id), rollups.FOLD_ROWS):
        fold(
            conn,
            "ts >= :lo AND id > :a AND id <= :b",
            {**params, "a": a, "b": a + rollups.FOLD_ROWS},
        )
    spans(conn, start)
    total = conn.exec_driver_sql("SELECT COUNT(*) FROM imported_signin").scalar_one()
    return int(total)

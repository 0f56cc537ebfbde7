"""Where launches start: launches by ``source`` per month, and the reach of announcements.

A launch's ``source`` (launcher/views/launch.py ``source_of``) says where it was clicked: a tile
on the grid (``portal``), the search results, the favourites, the recently used row, a link in
the weekly digest, or outside the portal (``direct``: a bookmark, a link elsewhere). These
figures show whether the reasons to come back (launcher/engage/) bring people back.

Two rollups, kept like the others (launcher/reports/rollups.py): ``month_source`` holds the
launches and distinct launching people per month (UTC, as month_app) and source, each with its
cell key (cellkey.py), and stays; ``user_month_source`` holds who launched from which source in
a month -- only to count a person once -- and goes with the raw events after the retention
(launcher/reports/rebuild.py ``purge_people``). :func:`apply` runs in each flush's transaction
(called by rollups.apply with its aggregation of the batch), :func:`rebuild` in that of
``launcher db rebuild-rollups``.

Reports read whole calendar months: a range asks for every month it touches. A month and
source about fewer than the minimum group of people is suppressed, and every count carries the
cell-key noise, as everywhere else in the reports (docs/PRIVACY.md).

Announcement reach is the engage module's own count (launcher/engage/announcements.py
:func:`~launcher.engage.announcements.reach`): distinct people shown the announcement over its
whole window, whatever the period asked for, with the cell key of their person keys.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from launcher import db
from launcher.dates import month_of
from launcher.engage import announcements
from launcher.models import MonthSource, UserMonthSource, table
from launcher.reports import cellkey
from launcher.reports.cellkey import MOD, NONE, Count, shown
from launcher.reports.periods import Period
from launcher.reports.sql import connect

Row = dict[str, Any]

T_MONTH_SOURCE = table(MonthSource)
T_USER_MONTH_SOURCE = table(UserMonthSource)
TABLES = (T_MONTH_SOURCE, T_USER_MONTH_SOURCE)
PER_PERSON = T_USER_MONTH_SOURCE  # purged with the raw events
# The sources a launch can have (launcher/views/launch.py), in the order the reports list
# them; a stored value not listed here (an older "tile") follows in alphabetical order.
SOURCES = ("portal", "search", "favourite", "recent", "digest", "direct")
LABELS = {  # message ids (launcher/locale): what a reviewer reads for each source
    "portal": "Tile on the start page",
    "search": "Search",
    "favourite": "Favourites",
    "recent": "Recently used",
    "digest": "Weekly digest",
    "direct": "Bookmark or other link",
}
CHUNK = 300  # rows per statement below: well under every driver's parameter limit


def label(source: str) -> str:
    """The message id of a source's name (a stored value we do not know: itself)."""
    return LABELS.get(source, source)


def order(source: str) -> tuple[int, str]:
    return (SOURCES.index(source), "") if source in SOURCES else (len(SOURCES), source)


# --- upkeep -----------------------------------------------------------------------------------
# SQL text below is built from our own table and column names and expressions only; every
# value goes through a placeholder (hence the S608 exemption in pyproject.toml).
def apply(
    conn: sa.Connection,
    per_user: dict[tuple[dt.date, str, str], list[int]],
    person_keys: dict[str, int],
) -> None:
    """Fold a batch into month_source (inside the flush's serialized transaction): its launches
    per (UTC month, source, user) with the sum of their record keys, as rollups.apply's one
    aggregation of the batch has them (so no record is hashed twice), and the person keys.

    A person counts in a month and source the first time user_month_source gets their row:
    the insert returns only the rows it added, so one statement per 300 keys both records and
    tells who is new.
    """
    if not per_user:
        return
    sqlite = conn.dialect.name == "sqlite"
    ph = db.placeholder(conn)
    keys = list(per_user)
    by_db = {(m.isoformat() if sqlite else m, s, u): (m, s, u) for m, s, u in keys}
    new: set[tuple[dt.date, str, str]] = set()
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        sql = (
            "INSERT INTO user_month_source (month, source, user_id) VALUES "
            + ", ".join([f"({ph}, {ph}, {ph})"] * len(chunk))
            + " ON CONFLICT DO NOTHING RETURNING month, source, user_id"
        )
        params = tuple(v for m, s, u in chunk for v in (m.isoformat() if sqlite else m, s, u))
        new.update(by_db[tuple(r)] for r in db.execute(conn, sql, params))
    totals: dict[tuple[dt.date, str], list[int]] = {}  # -> [launches, users, their keys]
    for (month, source, user), (n, k) in per_user.items():
        t = totals.setdefault((month, source), [0, 0, 0, 0])
        t[0] += n
        t[2] += k
        if (month, source, user) in new:
            t[1] += 1
            t[3] += person_keys[user]
    mod = "%" if sqlite else "%%"  # psycopg's placeholders use %
    sums = ", ".join(f"{c} = month_source.{c} + excluded.{c}" for c in ("launches", "users"))
    keys_sql = ", ".join(
        f"{c} = (month_source.{c} + excluded.{c}) {mod} {MOD}"
        for c in ("launches_key", "users_key")
    )
    db.insert_rows(
        conn,
        "INSERT INTO month_source (month, source, launches, users, launches_key, users_key)",
        [
            (m.isoformat() if sqlite else m, s, n, nu, k % MOD, ku % MOD)
            for (m, s), (n, nu, k, ku) in sorted(totals.items())
        ],
        f"ON CONFLICT (month, source) DO UPDATE SET {sums}, {keys_sql}",
    )


def rebuild(conn: sa.Connection, start: dt.date) -> None:
    """Both rollups from the raw launches of ``start`` on, as :func:`apply` would have kept
    them (the caller, launcher/reports/rebuild.py, has deleted their rows from ``start``)."""
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    if conn.dialect.name == "sqlite":
        month = "substr(ts, 1, 7) || '-01'"
        params: dict[str, Any] = {"lo": cellkey.ts_text(lo)}
    else:
        month = "CAST(date_trunc('month', ts AT TIME ZONE 'UTC') AS date)"
        params = {"lo": lo}
    cellkey.register(conn)
    lk, pk = cellkey.sql_launch_key(conn), cellkey.sql_person_key(conn, "user_id")
    conn.execute(
        sa.text(f"""INSERT INTO user_month_source (month, source, user_id)
            SELECT DISTINCT {month}, source, user_id FROM launch_event WHERE ts >= :lo"""),
        params,
    )
    conn.execute(
        sa.text(f"""INSERT INTO month_source (month, source, launches, users, launches_key,
                users_key)
            SELECT m, source, SUM(n), COUNT(*), SUM(k) % {MOD}, SUM(pk) % {MOD} FROM (
                SELECT {month} AS m, source, user_id, COUNT(*) AS n, SUM({lk}) AS k, {pk} AS pk
                FROM launch_event WHERE ts >= :lo GROUP BY {month}, source, user_id
            ) AS p GROUP BY m, source"""),
        params,
    )


# --- reports ----------------------------------------------------------------------------------
def _count(n: Any, k: Any) -> Count:
    return int(n or 0), int(k or 0) % MOD


def by_month(
    engine: sa.Engine, period: Period, min_group: int, *, exact: bool = False
) -> list[Row]:
    """Launches and distinct launching people per month (every month the period touches) and
    source, months in order, sources in :data:`SOURCES` order; a source without launches in a
    month has no row. ``exact`` as in launcher/reports/queries.py (tests only)."""
    ms = T_MONTH_SOURCE
    months = period.months()
    query = sa.select(ms).where(ms.c.month >= months[0], ms.c.month <= months[-1])
    with connect(engine) as conn:
        found = [
            (r.month, r.source, _count(r.launches, r.launches_key), _count(r.users, r.users_key))
            for r in conn.execute(query)
        ]
    out = []
    for month, source, launches, users in sorted(found, key=lambda f: (f[0], order(f[1]))):
        if launches[0] <= 0:
            continue
        key = month.isoformat()[:7]
        row: Row = {
            "key": f"{key}/{source}",
            "month": key,
            "source": source,
            "launches": shown(launches, exact),
            "users": shown(users, exact),
        }
        row["launches"] = max(row["launches"], row["users"])  # each launch is by one of them
        if 0 < users[0] < min_group:
            row = {**row, "launches": None, "users": None, "suppressed": True}
        out.append(row)
    return out


def trend_period(period: Period) -> Period:
    """What the /reports page shows by source: the twelve months up to the period's last."""
    first = month_of(period.end)
    for _ in range(11):
        first = month_of(first - dt.timedelta(days=1))
    return Period(first, period.end)


def announcement_reach(
    engine: sa.Engine, period: Period, min_group: int, *, exact: bool = False
) -> list[Row]:
    """Each announcement whose window overlaps the period (newest start first): its window,
    audience and language, and its reach -- distinct people shown it, with noise, None (and
    ``suppressed``) for 1 to min_group - 1 people."""
    a = announcements.T_ANNOUNCEMENT
    query = (
        sa.select(a)
        .where(a.c.starts <= period.end, a.c.ends >= period.start)
        .order_by(a.c.starts.desc(), a.c.id.desc())
    )
    with connect(engine) as conn:
        items = [announcements.item_of(r) for r in conn.execute(query)]
        reach = announcements.reach(conn, [i.id for i in items], keyed=True) if items else {}
    out = []
    for item in items:
        people = reach.get(item.id, NONE)
        row: Row = {
            "key": str(item.id),
            "id": item.id,
            "title": item.title,
            "starts": item.starts.isoformat(),
            "ends": item.ends.isoformat(),
            "groups": list(item.groups),
            "language": item.language,
            "reach": shown(people, exact),
        }
        if 0 < people[0] < min_group:
            row = {**row, "reach": None, "suppressed": True}
        out.append(row)
    return out

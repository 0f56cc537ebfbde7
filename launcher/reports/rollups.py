"""Rollups: the tables reports read, kept up to date as launches and sign-ins are flushed.

Reports never scan raw events. Each flush of the event store calls :func:`apply` inside the
same transaction as the raw insert, so raw events and rollups never disagree. Distinct-user
counts cannot be added up across batches, so the rollups keep one row per user per day, per
user per app per day, and per user per month (see launcher/models.py); the per-day and
per-month totals and heatmap cells count a user the first time that user appears in them.
Who was active per day and month is also kept as Roaring bitmaps of person numbers
(launcher/reports/people.py), so that distinct users over long periods cost the same at any
head count.

:func:`apply` reads rollups and then updates them, so it runs under
:func:`launcher.db.serialized_write`: one flush at a time across all workers.

Longer than the house's ~400 lines: the upkeep of every rollup (with its cell keys, see
cellkey.py) must run in one transaction per batch and share one in-memory aggregation of the
batch; the rebuild from raw events and the purge live in rebuild.py.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import db
from launcher.dates import month_of, utc
from launcher.events import FLUSH_LOCK, Launch, SignIn
from launcher.models import (
    CellSeen,
    CohortMonth,
    DayStats,
    LaunchEvent,
    MonthApp,
    MonthCell,
    MonthStats,
    SignInEvent,
    UsageDay,
    UsageMonth,
    UserDay,
    UserDayApp,
    UserFirst,
    UserMonth,
    UserMonthApp,
    table,
)
from launcher.reports import cellkey, people, sources
from launcher.signins import join as gateway

log = logging.getLogger(__name__)

ROLLUP_LOCK = FLUSH_LOCK  # rebuilds and flushes exclude each other
CELL_SEEN_MONTHS = 2  # months of heatmap membership kept for incremental upkeep
# user_first's day for a person first seen before the raw retention (rebuild.purge_people):
# their cohort is no longer known, and their later months count in no cohort
BEFORE_RETENTION = dt.date(1, 1, 1)

T_USAGE_DAY = table(UsageDay)
T_USAGE_MONTH = table(UsageMonth)
T_USER_DAY = table(UserDay)
T_USER_DAY_APP = table(UserDayApp)
T_USER_MONTH = table(UserMonth)
T_USER_FIRST = table(UserFirst)
T_MONTH_STATS = table(MonthStats)
T_MONTH_CELL = table(MonthCell)
T_CELL_SEEN = table(CellSeen)
T_USER_MONTH_APP = table(UserMonthApp)
T_MONTH_APP = table(MonthApp)
T_COHORT_MONTH = table(CohortMonth)
T_DAY_STATS = table(DayStats)
T_LAUNCH = table(LaunchEvent)
T_SIGNIN = table(SignInEvent)
ROLLUP_TABLES = (
    T_USAGE_DAY,
    T_USAGE_MONTH,
    T_USER_DAY,
    T_USER_DAY_APP,
    T_USER_MONTH,
    T_USER_FIRST,
    T_MONTH_STATS,
    T_MONTH_CELL,
    T_CELL_SEEN,
    T_USER_MONTH_APP,
    T_MONTH_APP,
    T_COHORT_MONTH,
    T_DAY_STATS,
    *people.PEOPLE_TABLES,
    *sources.TABLES,  # launches by source: launcher/reports/sources.py
)


@dataclass
class _Batch:
    """A flush's events, aggregated in memory by every rollup key. Each count goes with the
    sum of its records' keys (see cellkey.py), kept modulo 2**32 when written."""

    usage_day: dict[tuple[dt.date, str, str], list[int]]  # [launches, key]
    # [department, launches, signins, launches key, signins key]
    user_day: dict[tuple[dt.date, str], list[Any]]
    user_day_app: dict[tuple[dt.date, str, str], list[Any]]  # [department, launches, key]
    user_month: dict[tuple[dt.date, str], list[Any]]  # as user_day
    user_first: dict[str, tuple[dt.date, str]]
    cells: dict[tuple[dt.date, int, int], list[int]]  # [launches, key]
    cell_users: set[tuple[dt.date, int, int, str]]
    user_month_app: dict[tuple[dt.date, str, str], list[int]]  # [launches, key]
    # (month, source, user) -> [launches, key], for launcher/reports/sources.py
    by_source: dict[tuple[dt.date, str, str], list[int]]


def _aggregate(launches: Sequence[Launch], signins: Sequence[SignIn], tz: ZoneInfo) -> _Batch:
    """Fold a batch into every rollup key. Events are first counted per quarter hour, app, user
    and department -- cheap, per event -- and the date and time-zone work is done once per
    group: this runs in the writer thread for every flush, beside the event loop."""
    groups: dict[tuple[int, int, int, int, int, str | None, str, str, str], list[int]] = {}
    for e in launches:
        ts = e.ts if e.ts.tzinfo is dt.UTC else utc(e.ts)
        # quarter hours: every time zone's offset is a multiple of 15 minutes
        key = (ts.year, ts.month, ts.day, ts.hour, ts.minute // 15)
        g = groups.setdefault((*key, e.app_id, e.user_id, e.department or "", e.source), [0, 0])
        g[0] += 1
        g[1] += cellkey.launch_key(ts, e.app_id, e.user_id)
    for s in signins:
        ts = s.ts if s.ts.tzinfo is dt.UTC else utc(s.ts)
        key = (ts.year, ts.month, ts.day, ts.hour, ts.minute // 15)
        g = groups.setdefault((*key, None, s.user_id, s.department or "", ""), [0, 0])
        g[0] += 1
        g[1] += cellkey.signin_key(ts, s.user_id)

    b = _Batch({}, {}, {}, {}, {}, {}, set(), {}, {})
    local_cells: dict[tuple[int, int, int, int, int], tuple[dt.date, int, int]] = {}
    for (y, mo, d, h, q, app, user, dept, source), (n, k) in groups.items():
        day, month = dt.date(y, mo, d), dt.date(y, mo, 1)
        ud = b.user_day.setdefault((day, user), [dept, 0, 0, 0, 0])
        um = b.user_month.setdefault((month, user), [dept, 0, 0, 0, 0])
        ud[0], um[0] = max(ud[0], dept), max(um[0], dept)  # as the SQL rebuild's MAX()
        first = b.user_first.get(user)
        b.user_first[user] = (min(day, first[0]), max(dept, first[1])) if first else (day, dept)
        if app is None:  # sign-ins
            ud[2] += n
            um[2] += n
            ud[4] += k
            um[4] += k
            continue
        ud[1] += n
        um[1] += n
        ud[3] += k
        um[3] += k
        _add(b.usage_day, (day, app, dept), n, k)
        uda = b.user_day_app.setdefault((day, app, user), [dept, 0, 0])
        uda[0] = max(uda[0], dept)
        uda[1] += n
        uda[2] += k
        _add(b.user_month_app, (month, app, user), n, k)
        _add(b.by_source, (month, source, user), n, k)
        cell = local_cells.get((y, mo, d, h, q))
        if cell is None:
            local = dt.datetime(y, mo, d, h, q * 15, tzinfo=dt.UTC).astimezone(tz)
            cell = (month_of(local.date()), local.weekday(), local.hour)
            local_cells[(y, mo, d, h, q)] = cell
        _add(b.cells, cell, n, k)
        b.cell_users.add((*cell, user))
    return b


def _add(into: dict[Any, list[int]], key: Any, n: int, k: int) -> None:
    entry = into.setdefault(key, [0, 0])
    entry[0] += n
    entry[1] += k


# The upkeep below runs on every flush, so it talks to the driver directly: SQLAlchemy's
# per-row parameter processing costs more than the database work for batches this size.
# The SQL text is built from table and column names of our own metadata only; every value
# goes through a placeholder (hence the S608 exemptions).


def _db(conn: sa.Connection, value: Any) -> Any:
    """A value as the driver stores it: SQLite keeps dates as ISO text."""
    if conn.dialect.name == "sqlite" and isinstance(value, dt.date):
        return value.isoformat()
    return value


def _upsert_add(
    conn: sa.Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    add: Iterable[str] = (),
    keep_max: Iterable[str] = (),
    bits: Iterable[str] = (),
    add_keys: Iterable[str] = (),
) -> None:
    """INSERT rows; on a key conflict add the ``add`` columns, add the cell keys in
    ``add_keys`` modulo 2**32, keep the greater value of the ``keep_max`` columns and OR the
    bit masks in ``bits``."""
    if not rows:
        return
    cols = list(rows[0])
    keys = [c.name for c in table.primary_key.columns]
    sets = [f"{c} = {table.name}.{c} + excluded.{c}" for c in add]
    mod = "%" if conn.dialect.name == "sqlite" else "%%"  # psycopg's placeholders use %
    sets += [f"{c} = ({table.name}.{c} + excluded.{c}) {mod} {cellkey.MOD}" for c in add_keys]
    # MAX, like the SQL rebuild: the two must agree when someone changes department
    t = table.name
    sets += [
        f"{c} = CASE WHEN excluded.{c} > {t}.{c} THEN excluded.{c} ELSE {t}.{c} END"
        for c in keep_max
    ]
    sets += [f"{c} = {t}.{c} | excluded.{c}" for c in bits]
    db.insert_rows(  # rows are unique by key within a batch, as one statement requires
        conn,
        f"INSERT INTO {table.name} ({', '.join(cols)})",
        [tuple(_db(conn, r[c]) for c in cols) for r in rows],
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}",
    )


def _insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    cols = [c.name for c in table.primary_key.columns]
    db.insert_rows(
        conn,
        f"INSERT INTO {table.name} ({', '.join(cols)})",
        [tuple(_db(conn, v) for v in r) for r in rows],
        "ON CONFLICT DO NOTHING",
    )


def _existing(
    conn: sa.Connection,
    table: sa.Table,
    key_cols: Sequence[str],
    keys: Iterable[tuple[Any, ...]],
    extra: Sequence[str] = (),
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Rows of ``table`` among ``keys`` (looked up in chunks), as key -> extra columns."""
    by_db = {tuple(_db(conn, v) for v in key): tuple(key) for key in keys}
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    row = "(" + ", ".join([db.placeholder(conn)] * len(key_cols)) + ")"
    wanted = list(by_db)
    date_cols = {c for c in extra if isinstance(table.c[c].type, sa.Date)}
    for start in range(0, len(wanted), 300):
        chunk = wanted[start : start + 300]
        # A join with the keys, not "(a, b) IN (VALUES …)": SQLite answers that with a scan of
        # the whole table (87 ms per 300 keys at 300,000 user_day rows), the join with one
        # primary-key probe per key (1 ms).
        sql = (
            f"WITH k ({', '.join(key_cols)}) AS (VALUES {', '.join([row] * len(chunk))}) "
            f"SELECT {', '.join(f't.{c}' for c in [*key_cols, *extra])} "
            f"FROM k JOIN {table.name} t ON {' AND '.join(f't.{c} = k.{c}' for c in key_cols)}"
        )
        params = tuple(v for key in chunk for v in key)
        for found_row in db.execute(conn, sql, params):
            key = tuple(_db(conn, v) for v in found_row[: len(key_cols)])
            found[by_db[key]] = tuple(
                dt.date.fromisoformat(v) if isinstance(v, str) and col in date_cols else v
                for col, v in zip(extra, found_row[len(key_cols) :], strict=True)
            )
    return found


def apply(
    conn: sa.Connection, launches: Sequence[Launch], signins: Sequence[SignIn], tz: ZoneInfo
) -> None:
    """Fold one batch of events into the rollups (inside the caller's serialized transaction)."""
    if not launches and not signins:
        return
    # first: it reads user_first as it was before this batch (see signins/join.py)
    gateway.on_flush(conn, launches, signins)
    b = _aggregate(launches, signins, tz)
    M = cellkey.MOD
    pkeys = {u: cellkey.person_key(u) for u in b.user_first}

    # Totals first: they need to know which users and launchers are new this day or month.
    before = _existing(conn, T_USER_MONTH, ("month", "user_id"), b.user_month, ("launches",))
    before_day = _existing(
        conn, T_USER_DAY, ("day", "user_id"), b.user_day, ("launches", "department")
    )
    before_app = _existing(conn, T_USER_MONTH_APP, ("month", "app_id", "user_id"), b.user_month_app)
    _upsert_stats(conn, T_MONTH_STATS, "month", _stats(b.user_month, before, pkeys))
    _upsert_stats(conn, T_DAY_STATS, "day", _stats(b.user_day, before_day, pkeys))
    before_day_app = _existing(
        conn, T_USER_DAY_APP, ("day", "app_id", "user_id"), b.user_day_app, ("department",)
    )
    _people(conn, b, before_day, before_day_app)
    _cohorts(conn, b, {k for k in b.user_month if k not in before}, pkeys)
    month_app: dict[tuple[dt.date, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (month, app, user), (n, k) in b.user_month_app.items():
        c = month_app[(month, app)]
        c[0] += n
        c[2] += k
        if (month, app, user) not in before_app:
            c[1] += 1
            c[3] += pkeys[user]
    _upsert_add(
        conn,
        T_MONTH_APP,
        [
            {
                "month": m,
                "app_id": a,
                "launches": n,
                "users": nu,
                "launches_key": k % M,
                "users_key": ku % M,
            }
            for (m, a), (n, nu, k, ku) in month_app.items()
        ],
        add=("launches", "users"),
        add_keys=("launches_key", "users_key"),
    )
    _upsert_add(
        conn,
        T_USER_MONTH_APP,
        [
            {
                "month": m,
                "app_id": a,
                "user_id": u,
                "launches": n,
                "person_key": pkeys[u],
                "launches_key": k % M,
            }
            for (m, a, u), (n, k) in b.user_month_app.items()
        ],
        add=("launches",),
        add_keys=("launches_key",),
    )
    seen = _existing(conn, T_CELL_SEEN, ("month", "weekday", "hour", "user_id"), b.cell_users)
    new_cell_users = Counter(k[:3] for k in b.cell_users if k not in seen)
    _upsert_add(
        conn,
        T_MONTH_CELL,
        [
            {
                "month": m,
                "weekday": w,
                "hour": h,
                "launches": n,
                "users": new_cell_users[(m, w, h)],
                "launches_key": k % M,
            }
            for (m, w, h), (n, k) in b.cells.items()
        ],
        add=("launches", "users"),
        add_keys=("launches_key",),
    )
    _insert_ignore(conn, T_CELL_SEEN, [k for k in b.cell_users if k not in seen])

    for per_user, when, counts in (
        (T_USER_MONTH, "month", b.user_month),
        (T_USER_DAY, "day", b.user_day),
    ):
        _upsert_add(
            conn,
            per_user,
            [
                {
                    when: w,
                    "user_id": u,
                    "department": d,
                    "launches": nl,
                    "signins": ns,
                    "person_key": pkeys[u],
                    "launches_key": kl % M,
                    "signins_key": ks % M,
                }
                for (w, u), (d, nl, ns, kl, ks) in counts.items()
            ],
            add=("launches", "signins"),
            add_keys=("launches_key", "signins_key"),
            keep_max=("department",),
        )
    _upsert_add(
        conn,
        T_USER_DAY_APP,
        [
            {
                "day": day,
                "app_id": a,
                "user_id": u,
                "department": d,
                "launches": n,
                "person_key": pkeys[u],
                "launches_key": k % M,
            }
            for (day, a, u), (d, n, k) in b.user_day_app.items()
        ],
        add=("launches",),
        add_keys=("launches_key",),
        keep_max=("department",),
    )
    _upsert_add(
        conn,
        T_USAGE_DAY,
        [
            {"day": day, "app_id": a, "department": d, "launches": n, "launches_key": k % M}
            for (day, a, d), (n, k) in b.usage_day.items()
        ],
        add=("launches",),
        add_keys=("launches_key",),
    )
    usage_month: dict[tuple[dt.date, str, str], list[int]] = {}
    for (day, a, d), (n, k) in b.usage_day.items():
        _add(usage_month, (month_of(day), a, d), n, k)
    _upsert_add(
        conn,
        T_USAGE_MONTH,
        [
            {"month": m, "app_id": a, "department": d, "launches": n, "launches_key": k % M}
            for (m, a, d), (n, k) in usage_month.items()
        ],
        add=("launches",),
        add_keys=("launches_key",),
    )
    db.insert_rows(
        conn,
        "INSERT INTO user_first (user_id, first_day, department)",
        [(u, _db(conn, d), dept) for u, (d, dept) in b.user_first.items()],
        "ON CONFLICT (user_id) DO UPDATE SET first_day = CASE "
        "WHEN excluded.first_day < user_first.first_day THEN excluded.first_day "
        "ELSE user_first.first_day END, department = CASE "
        "WHEN excluded.department > user_first.department THEN excluded.department "
        "ELSE user_first.department END",
    )
    sources.apply(conn, b.by_source, pkeys)


_STATS = ("active_users", "launchers", "launches", "signins")
_STAT_KEYS = ("active_key", "launchers_key", "launches_key", "signins_key")


def _stats(
    counts: dict[tuple[dt.date, str], list[Any]],
    before: dict[tuple[Any, ...], tuple[Any, ...]],
    pkeys: dict[str, int],
) -> dict[dt.date, Counter[str]]:
    """Per day or month, the batch's additions to the totals: users and launchers count once,
    and add their person key to the cell key once."""
    stats: dict[dt.date, Counter[str]] = defaultdict(Counter)
    for (when, user), (_, n_launch, n_signin, k_launch, k_signin) in counts.items():
        s = stats[when]
        old = before.get((when, user))
        new_launcher = n_launch > 0 and (old is None or old[0] == 0)
        s["active_users"] += old is None
        s["active_key"] += pkeys[user] if old is None else 0
        s["launchers"] += new_launcher
        s["launchers_key"] += pkeys[user] if new_launcher else 0
        s["launches"] += n_launch
        s["signins"] += n_signin
        s["launches_key"] += k_launch
        s["signins_key"] += k_signin
    return stats


def _upsert_stats(
    conn: sa.Connection, table: sa.Table, key: str, stats: dict[dt.date, Counter[str]]
) -> None:
    rows = [
        {key: when, **{k: c[k] for k in _STATS}, **{k: c[k] % cellkey.MOD for k in _STAT_KEYS}}
        for when, c in stats.items()
    ]
    _upsert_add(conn, table, rows, add=_STATS, add_keys=_STAT_KEYS)


def _people(
    conn: sa.Connection,
    b: _Batch,
    before_day: dict[tuple[Any, ...], tuple[Any, ...]],
    before_day_app: dict[tuple[Any, ...], tuple[Any, ...]],
) -> None:
    """Bring the bitmaps of who was active (launcher/reports/people.py) up to date with the
    batch: a person new that day (in that app), a first launch of the day, or a department
    that user_day's upsert (keep_max) is about to change. The rest are in them already."""
    moves: list[tuple[dt.date, str, str, str, bool, str | None]] = []
    for (day, user), (dept, n_launch, *_) in b.user_day.items():
        old = before_day.get((day, user))  # (launches, department)
        if old is None:
            moves.append((day, people.ANY, user, dept, n_launch > 0, None))
            continue
        new_dept = max(dept, old[1])
        if new_dept != old[1] or (n_launch > 0 and old[0] == 0):
            moves.append((day, people.ANY, user, new_dept, n_launch > 0 or old[0] > 0, old[1]))
    for (day, app, user), (dept, *_) in b.user_day_app.items():
        old_app = before_day_app.get((day, app, user))  # (department,)
        if old_app is None:
            moves.append((day, app, user, dept, True, None))
        elif dept > old_app[0]:
            moves.append((day, app, user, dept, True, old_app[0]))
    if not moves:
        return
    number = people.numbers(conn, {m[2] for m in moves})
    changes = people.Changes()
    for day, app, user, dept, launched, old_dept in moves:
        changes.person(day, app, number[user], dept, launched, old_dept)
    people.write(conn, changes)


def _cohorts(
    conn: sa.Connection,
    b: _Batch,
    new_user_months: set[tuple[dt.date, str]],
    pkeys: dict[str, int],
) -> None:
    """Count new (month, user) rows into the cohort of the user's first month.

    When a batch reveals an earlier first day (a late spool replay), the user moves to the
    earlier cohort for every month the user was active in.
    """
    users = {u for _, u in b.user_month}
    new_months: dict[str, list[dt.date]] = defaultdict(list)
    for month, user in new_user_months:
        new_months[user].append(month)
    first_before = _existing(
        conn, T_USER_FIRST, ("user_id",), ((u,) for u in users), ("first_day",)
    )
    delta: Counter[tuple[dt.date, dt.date]] = Counter()
    key_delta: Counter[tuple[dt.date, dt.date]] = Counter()
    for user in users:
        pk = pkeys[user]
        old = first_before.get((user,))
        old_cohort = month_of(old[0]) if old else None
        new_cohort = month_of(min(b.user_first[user][0], old[0] if old else dt.date.max))
        if old_cohort is not None and new_cohort != old_cohort:
            months = conn.execute(
                sa.select(T_USER_MONTH.c.month).where(T_USER_MONTH.c.user_id == user)
            ).scalars()
            for month in months:
                delta[(old_cohort, month)] -= 1
                delta[(new_cohort, month)] += 1
                key_delta[(old_cohort, month)] -= pk
                key_delta[(new_cohort, month)] += pk
        if new_cohort == BEFORE_RETENTION:
            continue
        for month in new_months[user]:
            delta[(new_cohort, month)] += 1
            key_delta[(new_cohort, month)] += pk
    _upsert_add(
        conn,
        T_COHORT_MONTH,
        [
            {"cohort": c, "month": m, "users": n, "users_key": key_delta[(c, m)] % cellkey.MOD}
            for (c, m), n in delta.items()
            if n or key_delta[(c, m)] % cellkey.MOD
        ],
        add=("users",),
        add_keys=("users_key",),
    )
    if any(n < 0 for n in delta.values()):
        conn.execute(sa.delete(T_COHORT_MONTH).where(T_COHORT_MONTH.c.users == 0))


def prune_cell_seen(conn: sa.Connection, today: dt.date) -> None:
    oldest = month_of(today)
    for _ in range(CELL_SEEN_MONTHS - 1):
        oldest = month_of(oldest - dt.timedelta(days=1))
    conn.execute(sa.delete(T_CELL_SEEN).where(T_CELL_SEEN.c.month < oldest))

"""Rollups: the tables reports read, kept up to date as launches and sign-ins are flushed.

Reports never scan raw events. Each flush of the event store calls :func:`apply` inside the
same transaction as the raw insert, so raw events and rollups never disagree. Distinct-user
counts cannot be added up across batches, so the rollups keep one row per user per day, per
user per app per day, and per user per month (see launcher/models.py); the per-day and
per-month totals and heatmap cells count a user the first time that user appears in them.
The span rollups mirror user_day and user_month_app as bit masks of months, so that reports
over long periods read one row per user, not one per user and month.

:func:`apply` reads rollups and then updates them, so it runs under
:func:`launcher.db.serialized_write`: one flush at a time across all workers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import db
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
    UserDay,
    UserDayApp,
    UserFirst,
    UserMonth,
    UserMonthApp,
    UserSpan,
    UserSpanApp,
)

log = logging.getLogger(__name__)

ROLLUP_LOCK = FLUSH_LOCK  # rebuilds and flushes exclude each other
CELL_SEEN_MONTHS = 2  # months of heatmap membership kept for incremental upkeep

T_USAGE_DAY = UsageDay.__table__  # type: ignore[attr-defined]
T_USER_DAY = UserDay.__table__  # type: ignore[attr-defined]
T_USER_DAY_APP = UserDayApp.__table__  # type: ignore[attr-defined]
T_USER_MONTH = UserMonth.__table__  # type: ignore[attr-defined]
T_USER_FIRST = UserFirst.__table__  # type: ignore[attr-defined]
T_MONTH_STATS = MonthStats.__table__  # type: ignore[attr-defined]
T_MONTH_CELL = MonthCell.__table__  # type: ignore[attr-defined]
T_CELL_SEEN = CellSeen.__table__  # type: ignore[attr-defined]
T_USER_MONTH_APP = UserMonthApp.__table__  # type: ignore[attr-defined]
T_MONTH_APP = MonthApp.__table__  # type: ignore[attr-defined]
T_COHORT_MONTH = CohortMonth.__table__  # type: ignore[attr-defined]
T_DAY_STATS = DayStats.__table__  # type: ignore[attr-defined]
T_USER_SPAN = UserSpan.__table__  # type: ignore[attr-defined]
T_USER_SPAN_APP = UserSpanApp.__table__  # type: ignore[attr-defined]
T_LAUNCH = LaunchEvent.__table__  # type: ignore[attr-defined]
T_SIGNIN = SignInEvent.__table__  # type: ignore[attr-defined]
ROLLUP_TABLES = (
    T_USAGE_DAY,
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
    T_USER_SPAN,
    T_USER_SPAN_APP,
)
SPAN_TABLES = (T_USER_SPAN, T_USER_SPAN_APP)


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


def span_bits(month: dt.date) -> tuple[tuple[int, int], tuple[int, int]]:
    """(year, bit) of ``month`` in the two span rows that hold it: its own year's, where
    January is bit 0, and the year before's, where it is 12 bits higher."""
    return (month.year, 1 << (month.month - 1)), (month.year - 1, 1 << (month.month + 11))


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


@dataclass
class _Batch:
    """A flush's events, aggregated in memory by every rollup key."""

    usage_day: Counter[tuple[dt.date, str, str]]
    user_day: dict[tuple[dt.date, str], list[Any]]  # [department, launches, signins]
    user_day_app: dict[tuple[dt.date, str, str], list[Any]]  # [department, launches]
    user_month: dict[tuple[dt.date, str], list[Any]]  # [department, launches, signins]
    user_first: dict[str, tuple[dt.date, str]]
    cells: Counter[tuple[dt.date, int, int]]
    cell_users: set[tuple[dt.date, int, int, str]]
    user_month_app: Counter[tuple[dt.date, str, str]]


def _aggregate(launches: Sequence[Launch], signins: Sequence[SignIn], tz: ZoneInfo) -> _Batch:
    """Fold a batch into every rollup key. Events are first counted per quarter hour, app, user
    and department -- cheap, per event -- and the date and time-zone work is done once per
    group: this runs in the writer thread for every flush, beside the event loop."""
    groups: Counter[tuple[int, int, int, int, int, str | None, str, str]] = Counter()
    for e in launches:
        ts = e.ts if e.ts.tzinfo is dt.UTC else _utc(e.ts)
        # quarter hours: every time zone's offset is a multiple of 15 minutes
        key = (ts.year, ts.month, ts.day, ts.hour, ts.minute // 15)
        groups[(*key, e.app_id, e.user_id, e.department or "")] += 1
    for s in signins:
        ts = s.ts if s.ts.tzinfo is dt.UTC else _utc(s.ts)
        key = (ts.year, ts.month, ts.day, ts.hour, ts.minute // 15)
        groups[(*key, None, s.user_id, s.department or "")] += 1

    b = _Batch(Counter(), {}, {}, {}, {}, Counter(), set(), Counter())
    local_cells: dict[tuple[int, int, int, int, int], tuple[dt.date, int, int]] = {}
    for (y, mo, d, h, q, app, user, dept), n in groups.items():
        day, month = dt.date(y, mo, d), dt.date(y, mo, 1)
        ud = b.user_day.setdefault((day, user), [dept, 0, 0])
        um = b.user_month.setdefault((month, user), [dept, 0, 0])
        ud[0], um[0] = max(ud[0], dept), max(um[0], dept)  # as the SQL rebuild's MAX()
        first = b.user_first.get(user)
        b.user_first[user] = (min(day, first[0]), max(dept, first[1])) if first else (day, dept)
        if app is None:  # sign-ins
            ud[2] += n
            um[2] += n
            continue
        ud[1] += n
        um[1] += n
        b.usage_day[(day, app, dept)] += n
        uda = b.user_day_app.setdefault((day, app, user), [dept, 0])
        uda[0] = max(uda[0], dept)
        uda[1] += n
        b.user_month_app[(month, app, user)] += n
        cell = local_cells.get((y, mo, d, h, q))
        if cell is None:
            local = dt.datetime(y, mo, d, h, q * 15, tzinfo=dt.UTC).astimezone(tz)
            cell = (month_of(local.date()), local.weekday(), local.hour)
            local_cells[(y, mo, d, h, q)] = cell
        b.cells[cell] += n
        b.cell_users.add((*cell, user))
    return b


# The upkeep below runs on every flush, so it talks to the driver directly: SQLAlchemy's
# per-row parameter processing costs more than the database work for batches this size.
# The SQL text is built from table and column names of our own metadata only; every value
# goes through a placeholder (hence the S608 exemptions).


def _ph(conn: sa.Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


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
) -> None:
    """INSERT rows; on a key conflict add the ``add`` columns, keep the greater value of the
    ``keep_max`` columns and OR the bit masks in ``bits``."""
    if not rows:
        return
    cols = list(rows[0])
    keys = [c.name for c in table.primary_key.columns]
    sets = [f"{c} = {table.name}.{c} + excluded.{c}" for c in add]
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
    row = "(" + ", ".join([_ph(conn)] * len(key_cols)) + ")"
    wanted = list(by_db)
    date_cols = {c for c in extra if isinstance(table.c[c].type, sa.Date)}
    for start in range(0, len(wanted), 300):
        chunk = wanted[start : start + 300]
        sql = (
            f"SELECT {', '.join([*key_cols, *extra])} FROM {table.name} "
            f"WHERE ({', '.join(key_cols)}) IN (VALUES {', '.join([row] * len(chunk))})"
        )
        params = tuple(v for key in chunk for v in key)
        for found_row in conn.exec_driver_sql(sql, params):
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
    b = _aggregate(launches, signins, tz)

    # Totals first: they need to know which users and launchers are new this day or month.
    before = _existing(conn, T_USER_MONTH, ("month", "user_id"), b.user_month, ("launches",))
    before_day = _existing(
        conn, T_USER_DAY, ("day", "user_id"), b.user_day, ("launches", "department")
    )
    before_app = _existing(conn, T_USER_MONTH_APP, ("month", "app_id", "user_id"), b.user_month_app)
    _upsert_stats(conn, T_MONTH_STATS, "month", _stats(b.user_month, before))
    _upsert_stats(conn, T_DAY_STATS, "day", _stats(b.user_day, before_day))
    left = _spans(conn, b, before_day, before_app)
    _cohorts(conn, b, {k for k in b.user_month if k not in before})
    month_app: dict[tuple[dt.date, str], Counter[str]] = defaultdict(Counter)
    for (month, app, user), n in b.user_month_app.items():
        month_app[(month, app)]["launches"] += n
        month_app[(month, app)]["users"] += (month, app, user) not in before_app
    _upsert_add(
        conn,
        T_MONTH_APP,
        [
            {"month": m, "app_id": a, "launches": c["launches"], "users": c["users"]}
            for (m, a), c in month_app.items()
        ],
        add=("launches", "users"),
    )
    _upsert_add(
        conn,
        T_USER_MONTH_APP,
        [
            {"month": m, "app_id": a, "user_id": u, "launches": n}
            for (m, a, u), n in b.user_month_app.items()
        ],
        add=("launches",),
    )
    seen = _existing(conn, T_CELL_SEEN, ("month", "weekday", "hour", "user_id"), b.cell_users)
    new_cell_users = Counter(k[:3] for k in b.cell_users if k not in seen)
    _upsert_add(
        conn,
        T_MONTH_CELL,
        [
            {"month": m, "weekday": w, "hour": h, "launches": n, "users": new_cell_users[(m, w, h)]}
            for (m, w, h), n in b.cells.items()
        ],
        add=("launches", "users"),
    )
    _insert_ignore(conn, T_CELL_SEEN, [k for k in b.cell_users if k not in seen])

    _upsert_add(
        conn,
        T_USER_MONTH,
        [
            {"month": m, "user_id": u, "department": d, "launches": nl, "signins": ns}
            for (m, u), (d, nl, ns) in b.user_month.items()
        ],
        add=("launches", "signins"),
        keep_max=("department",),
    )
    _upsert_add(
        conn,
        T_USER_DAY,
        [
            {"day": day, "user_id": u, "department": d, "launches": nl, "signins": ns}
            for (day, u), (d, nl, ns) in b.user_day.items()
        ],
        add=("launches", "signins"),
        keep_max=("department",),
    )
    _upsert_add(
        conn,
        T_USER_DAY_APP,
        [
            {"day": day, "app_id": a, "user_id": u, "department": d, "launches": n}
            for (day, a, u), (d, n) in b.user_day_app.items()
        ],
        add=("launches",),
        keep_max=("department",),
    )
    _upsert_add(
        conn,
        T_USAGE_DAY,
        [
            {"day": day, "app_id": a, "department": d, "launches": n}
            for (day, a, d), n in b.usage_day.items()
        ],
        add=("launches",),
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
    _recheck_spans(conn, left)  # after user_day is written


_STATS = ("active_users", "launchers", "launches", "signins")


def _stats(
    counts: dict[tuple[dt.date, str], list[Any]], before: dict[tuple[Any, ...], tuple[Any, ...]]
) -> dict[dt.date, Counter[str]]:
    """Per day or month, the batch's additions to the totals: users and launchers count once."""
    stats: dict[dt.date, Counter[str]] = defaultdict(Counter)
    for (when, user), (_, n_launch, n_signin) in counts.items():
        s = stats[when]
        old = before.get((when, user))
        s["active_users"] += old is None
        s["launchers"] += n_launch > 0 and (old is None or old[0] == 0)
        s["launches"] += n_launch
        s["signins"] += n_signin
    return stats


def _upsert_stats(
    conn: sa.Connection, table: sa.Table, key: str, stats: dict[dt.date, Counter[str]]
) -> None:
    rows = [{key: when, **{k: c[k] for k in _STATS}} for when, c in stats.items()]
    _upsert_add(conn, table, rows, add=_STATS)


def _spans(
    conn: sa.Connection,
    b: _Batch,
    before_day: dict[tuple[Any, ...], tuple[Any, ...]],
    before_app: dict[tuple[Any, ...], tuple[Any, ...]],
) -> set[tuple[dt.date, str, str]]:
    """Mirror the batch's new user_day and user_month_app rows (and user_day rows that change
    department or launch for the first time) into the span rollups; the bits of the others
    are set already.

    Returns (month, user, department) where a day of the batch moved to another department
    (user_day keeps the greatest): that month may have to leave the old department's row,
    which :func:`_recheck_spans` decides once user_day is written.
    """
    sets: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    left: set[tuple[dt.date, str, str]] = set()
    for (day, user), (dept, n_launch, _) in b.user_day.items():
        old = before_day.get((day, user))  # (launches, department)
        launched = n_launch > 0 or (old is not None and old[0] > 0)
        if old is not None:
            dept = max(dept, old[1])  # as user_day's upsert (keep_max)
            if old[1] != dept:
                left.add((month_of(day), user, old[1]))
            elif old[0] > 0 or not launched:
                continue  # nothing new for its span rows
        for year, bit in span_bits(month_of(day)):
            row = sets[(year, user, dept)]
            row[0] |= bit
            row[1] |= bit if launched else 0
    _upsert_add(
        conn,
        T_USER_SPAN,
        [
            {"year": y, "user_id": u, "department": d, "active": a, "launched": la}
            for (y, u, d), (a, la) in sets.items()
        ],
        bits=("active", "launched"),
    )
    app_bits: dict[tuple[int, str, str], int] = defaultdict(int)
    for month, app, user in b.user_month_app.keys() - before_app.keys():
        for year, bit in span_bits(month):
            app_bits[(year, app, user)] |= bit
    _upsert_add(
        conn,
        T_USER_SPAN_APP,
        [{"year": y, "app_id": a, "user_id": u, "months": m} for (y, a, u), m in app_bits.items()],
        bits=("months",),
    )
    return left


def _recheck_spans(conn: sa.Connection, left: set[tuple[dt.date, str, str]]) -> None:
    """Clear a month from a department's span row when none of the user's days in that month
    has the department any more (rare: a department claim that changed within a day)."""
    ph = _ph(conn)
    where = f"WHERE year = {ph} AND user_id = {ph} AND department = {ph}"
    for month, user, dept in left:
        active, launched = conn.exec_driver_sql(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN launches > 0 THEN 1 ELSE 0 END), 0) "
            f"FROM user_day WHERE user_id = {ph} AND day >= {ph} AND day < {ph} "
            f"AND department = {ph}",
            (user, _db(conn, month), _db(conn, month_of(month + dt.timedelta(days=32))), dept),
        ).one()
        for year, bit in span_bits(month):
            conn.exec_driver_sql(
                f"UPDATE user_span SET active = active & {ph}, launched = launched & {ph} {where}",
                (~0 if active else ~bit, ~0 if launched else ~bit, year, user, dept),
            )
            conn.exec_driver_sql(
                f"DELETE FROM user_span {where} AND active = 0", (year, user, dept)
            )


def _cohorts(conn: sa.Connection, b: _Batch, new_user_months: set[tuple[dt.date, str]]) -> None:
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
    for user in users:
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
        for month in new_months[user]:
            delta[(new_cohort, month)] += 1
    _upsert_add(
        conn,
        T_COHORT_MONTH,
        [{"cohort": c, "month": m, "users": n} for (c, m), n in delta.items() if n],
        add=("users",),
    )
    if any(n < 0 for n in delta.values()):
        conn.execute(sa.delete(T_COHORT_MONTH).where(T_COHORT_MONTH.c.users == 0))


def prune_cell_seen(conn: sa.Connection, today: dt.date) -> None:
    oldest = month_of(today)
    for _ in range(CELL_SEEN_MONTHS - 1):
        oldest = month_of(oldest - dt.timedelta(days=1))
    conn.execute(sa.delete(T_CELL_SEEN).where(T_CELL_SEEN.c.month < oldest))


def month_edge(month: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The earliest instant that belongs to ``month``: its start in UTC (the daily rollups)
    or in the portal's time zone (the heatmap), whichever comes first."""
    utc = dt.datetime.combine(month, dt.time(), tzinfo=dt.UTC)
    local = dt.datetime.combine(month, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    return min(utc, local)


def purge_cutoff(now: dt.datetime, retention_days: int, tz: ZoneInfo) -> dt.datetime:
    """Where the raw events may be cut: the edge (see month_edge) of the month that holds the
    day ``retention_days`` ago. Whole months only, so that what is left always covers whole
    months and ``rebuild`` never recomputes a month from part of its events."""
    return month_edge(month_of((now - dt.timedelta(days=retention_days)).date()), tz)


def purge_raw(
    engine: sa.Engine, retention_days: int, tz: ZoneInfo, now: dt.datetime | None = None
) -> int:
    """Delete raw events of whole months past the retention; rollups stay. Returns rows
    deleted. Serialized with flushes, and in chunks, so that a large purge never holds the
    write lock for long."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = purge_cutoff(now, retention_days, tz)
    deleted = 0
    for table in (T_LAUNCH, T_SIGNIN):
        while True:
            with db.serialized_write(engine, ROLLUP_LOCK) as conn:
                ids = sa.select(table.c.id).where(table.c.ts < cutoff).limit(20_000)
                count = conn.execute(sa.delete(table).where(table.c.id.in_(ids))).rowcount or 0
            deleted += count
            if count < 20_000:
                break
    with db.serialized_write(engine, ROLLUP_LOCK) as conn:
        prune_cell_seen(conn, now.date())
    return deleted


def rebuild(engine: sa.Engine, tz: ZoneInfo) -> int:
    """Recompute every rollup from the raw events (``launcher db rebuild-rollups``).

    Set-based SQL, so that millions of events take seconds. Rollup rows for months before the
    oldest raw event are kept: raw events past the retention are gone, and their rollups are
    all that is left of them. Returns the number of raw events read.
    """
    with engine.connect() as conn:
        firsts = [
            conn.execute(sa.select(t.c.ts).order_by(t.c.ts).limit(1)).scalar()
            for t in (T_LAUNCH, T_SIGNIN)
        ]
        total = sum(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (T_LAUNCH, T_SIGNIN)
        )
    starts = [_utc(ts) for ts in firsts if ts is not None]
    if not starts:
        return 0
    # whole months, so that per-month distinct counts are rebuilt complete
    oldest = min(starts)
    with engine.connect() as conn:
        # rollups older than any raw event: the raw history was purged, and the oldest month
        # left may be partial (its edge may precede the cut). Rebuild from the first month
        # whose raw events are all there; older rollups are all that is left of them.
        purged = conn.execute(
            sa.select(T_USER_DAY.c.day).where(T_USER_DAY.c.day < oldest.date()).limit(1)
        ).first()
    start = min(month_of(oldest.date()), month_of(oldest.astimezone(tz).date()))
    if purged is not None:
        while month_edge(start, tz) < oldest:
            start = month_of(start + dt.timedelta(days=32))
    with db.serialized_write(engine, ROLLUP_LOCK) as conn:
        for table in ROLLUP_TABLES:
            if table in SPAN_TABLES:  # rebuilt whole from user_day and user_month_app
                conn.execute(sa.delete(table))
            elif table is T_USER_FIRST:
                conn.execute(sa.delete(table).where(table.c.first_day >= start))
            elif table is T_COHORT_MONTH:
                conn.execute(sa.delete(table).where(table.c.month >= start))
            else:
                col = table.c.month if "month" in table.c else table.c.day
                conn.execute(sa.delete(table).where(col >= start))
        _rebuild_sql(conn, start, tz)
        if not db.is_sqlite(engine):  # the planner's statistics, after rewriting so much
            for table in ROLLUP_TABLES:
                conn.exec_driver_sql(f"ANALYZE {table.name}")
    return int(total)


def _rebuild_sql(conn: sa.Connection, start: dt.date, tz: ZoneInfo) -> None:
    sqlite = conn.dialect.name == "sqlite"
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    local_lo = dt.datetime.combine(start, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    if sqlite:
        day = "substr(ts, 1, 10)"
        month_of_day = "substr({0}, 1, 7) || '-01'"
        params: dict[str, Any] = {
            "lo": lo.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "local_lo": local_lo.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "start": start.isoformat(),
        }
    else:
        day = "CAST(ts AT TIME ZONE 'UTC' AS date)"
        month_of_day = "CAST(date_trunc('month', {0}) AS date)"
        params = {"lo": lo, "local_lo": local_lo, "start": start, "tz": tz.key}
    dept = "COALESCE(department, '')"

    def run(sql: str) -> None:
        conn.execute(sa.text(sql), params)

    # Rows go in in key order, as they would have arrived live: a report reading a range of
    # days (or a year's span rows) then reads few pages.
    run(f"""INSERT INTO usage_day (day, app_id, department, launches)
        SELECT {day}, app_id, {dept}, COUNT(*) FROM launch_event WHERE ts >= :lo
        GROUP BY {day}, app_id, {dept} ORDER BY {day}, app_id, {dept}""")
    run(f"""INSERT INTO user_day_app (day, app_id, user_id, department, launches)
        SELECT {day}, app_id, user_id, MAX({dept}), COUNT(*) FROM launch_event WHERE ts >= :lo
        GROUP BY {day}, app_id, user_id ORDER BY {day}, app_id, user_id""")
    run(f"""INSERT INTO user_day (day, user_id, department, launches, signins)
        SELECT d, user_id, MAX(dept), SUM(l), SUM(s) FROM (
            SELECT {day} AS d, user_id, {dept} AS dept, 1 AS l, 0 AS s
            FROM launch_event WHERE ts >= :lo
            UNION ALL
            SELECT {day} AS d, user_id, {dept} AS dept, 0 AS l, 1 AS s
            FROM signin_event WHERE ts >= :lo
        ) AS e GROUP BY d, user_id ORDER BY d, user_id""")
    m = month_of_day.format("day")
    run(f"""INSERT INTO user_month (month, user_id, department, launches, signins)
        SELECT {m}, user_id, MAX(department), SUM(launches), SUM(signins)
        FROM user_day WHERE day >= :start GROUP BY {m}, user_id ORDER BY {m}, user_id""")
    run(f"""INSERT INTO user_month_app (month, app_id, user_id, launches)
        SELECT {m}, app_id, user_id, SUM(launches)
        FROM user_day_app WHERE day >= :start GROUP BY {m}, app_id, user_id
        ORDER BY {m}, app_id, user_id""")
    run("""INSERT INTO user_first (user_id, first_day, department)
        SELECT user_id, MIN(day), MAX(department) FROM user_day WHERE day >= :start
        GROUP BY user_id ON CONFLICT (user_id) DO NOTHING""")
    run("""INSERT INTO month_stats (month, active_users, launchers, launches, signins)
        SELECT month, COUNT(*), SUM(CASE WHEN launches > 0 THEN 1 ELSE 0 END), SUM(launches),
               SUM(signins)
        FROM user_month WHERE month >= :start GROUP BY month""")
    run("""INSERT INTO day_stats (day, active_users, launchers, launches, signins)
        SELECT day, COUNT(*), SUM(CASE WHEN launches > 0 THEN 1 ELSE 0 END), SUM(launches),
               SUM(signins)
        FROM user_day WHERE day >= :start GROUP BY day""")
    _rebuild_spans(run, sqlite)
    run("""INSERT INTO month_app (month, app_id, launches, users)
        SELECT month, app_id, SUM(launches), COUNT(*)
        FROM user_month_app WHERE month >= :start GROUP BY month, app_id""")
    f = month_of_day.format("f.first_day")
    run(f"""INSERT INTO cohort_month (cohort, month, users)
        SELECT {f}, m.month, COUNT(*) FROM user_month AS m
        JOIN user_first AS f ON f.user_id = m.user_id
        WHERE m.month >= :start GROUP BY {f}, m.month""")
    cells = _local_cells_sql(conn, tz, local_lo)
    run(f"""INSERT INTO month_cell (month, weekday, hour, launches, users)
        SELECT month, weekday, hour, COUNT(*), COUNT(DISTINCT user_id) FROM ({cells}) AS c
        GROUP BY month, weekday, hour""")
    recent = month_of(month_of(dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=1))
    params["recent"] = recent.isoformat() if sqlite else recent
    run(f"""INSERT INTO cell_seen (month, weekday, hour, user_id)
        SELECT DISTINCT month, weekday, hour, user_id FROM ({cells}) AS c
        WHERE month >= :recent""")


def _rebuild_spans(run: Callable[[str], None], sqlite: bool) -> None:
    """The span rollups from all of user_day and user_month_app (see span_bits). Each (year,
    month, user, department) is one row of m, so the sum of the rows' bits is their OR."""
    if sqlite:
        year, month = "CAST(substr({0}, 1, 4) AS INTEGER)", "CAST(substr({0}, 6, 2) AS INTEGER)"
    else:
        year = "CAST(EXTRACT(YEAR FROM {0}) AS INTEGER)"
        month = "CAST(EXTRACT(MONTH FROM {0}) AS INTEGER)"
    y, mo = year.format("day"), month.format("day")
    run(f"""INSERT INTO user_span (year, user_id, department, active, launched)
        WITH m AS (
            SELECT {y} AS y, {mo} AS mo, user_id, department, MAX(launches) AS launches
            FROM user_day GROUP BY {y}, {mo}, user_id, department)
        SELECT y, user_id, department, SUM(bit), SUM(CASE WHEN launches > 0 THEN bit ELSE 0 END)
        FROM (SELECT y, user_id, department, launches, 1 << (mo - 1) AS bit FROM m
              UNION ALL
              SELECT y - 1, user_id, department, launches, 1 << (mo + 11) FROM m) AS s
        GROUP BY y, user_id, department ORDER BY y, user_id, department""")
    y, mo = year.format("month"), month.format("month")
    run(f"""INSERT INTO user_span_app (year, app_id, user_id, months)
        SELECT y, app_id, user_id, SUM(bit)
        FROM (SELECT {y} AS y, app_id, user_id, 1 << ({mo} - 1) AS bit FROM user_month_app
              UNION ALL
              SELECT {y} - 1, app_id, user_id, 1 << ({mo} + 11) FROM user_month_app) AS s
        GROUP BY y, app_id, user_id ORDER BY y, app_id, user_id""")


def _local_cells_sql(conn: sa.Connection, tz: ZoneInfo, since: dt.datetime) -> str:
    """SQL giving (month, weekday, hour, user_id) per launch in local time, from ``since``.

    PostgreSQL converts time zones itself. SQLite cannot, so a temporary table lists the UTC
    offset of each stretch between daylight-saving changes.
    """
    if conn.dialect.name != "sqlite":
        local = "(ts AT TIME ZONE :tz)"
        return f"""SELECT CAST(date_trunc('month', {local}) AS date) AS month,
            CAST(EXTRACT(ISODOW FROM {local}) AS integer) - 1 AS weekday,
            CAST(EXTRACT(HOUR FROM {local}) AS integer) AS hour, user_id
            FROM launch_event WHERE ts >= :local_lo"""
    conn.exec_driver_sql("DROP TABLE IF EXISTS temp.tz_offset")
    conn.exec_driver_sql("CREATE TEMP TABLE tz_offset (start TEXT, stop TEXT, seconds INTEGER)")
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    stretches: list[tuple[str, str, int]] = []
    cursor = since.replace(minute=0, second=0, microsecond=0)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    offset = cursor.astimezone(tz).utcoffset() or dt.timedelta()
    begin = cursor
    while cursor < end:
        cursor += dt.timedelta(hours=1)
        current = cursor.astimezone(tz).utcoffset() or dt.timedelta()
        if current != offset:
            stretches.append(
                (begin.strftime(fmt), cursor.strftime(fmt), int(offset.total_seconds()))
            )
            begin, offset = cursor, current
    stretches.append((begin.strftime(fmt), "9999-12-31", int(offset.total_seconds())))
    stretches[0] = ("0000-01-01", stretches[0][1], stretches[0][2])
    conn.exec_driver_sql("INSERT INTO tz_offset VALUES (?, ?, ?)", stretches)
    local = "datetime(l.ts, o.seconds || ' seconds')"
    return f"""SELECT strftime('%Y-%m-01', {local}) AS month,
        (CAST(strftime('%w', {local}) AS INTEGER) + 6) % 7 AS weekday,
        CAST(strftime('%H', {local}) AS INTEGER) AS hour, l.user_id AS user_id
        FROM launch_event AS l JOIN tz_offset AS o ON l.ts >= o.start AND l.ts < o.stop
        WHERE l.ts >= :local_lo"""

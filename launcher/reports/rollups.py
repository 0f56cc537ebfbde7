"""Rollups: the tables reports read, kept up to date as launches and sign-ins are flushed.

Reports never scan raw events. Each flush of the event store calls :func:`apply` inside the
same transaction as the raw insert, so raw events and rollups never disagree. Distinct-user
counts cannot be added up across batches, so the rollups keep one row per user per day, per
user per app per day, and per user per month (see launcher/models.py); the per-month totals
and heatmap cells count a user the first time that user appears in them.

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
from launcher.launches import FLUSH_LOCK, Launch, SignIn
from launcher.models import (
    CellSeen,
    CohortMonth,
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
)


def month_of(day: dt.date) -> dt.date:
    return day.replace(day=1)


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
    b = _Batch(Counter(), {}, {}, {}, {}, Counter(), set(), Counter())
    events: list[Launch | SignIn] = [*launches, *signins]
    for e in sorted(events, key=lambda e: _utc(e.ts)):
        ts = _utc(e.ts)
        day, dept, user = ts.date(), e.department or "", e.user_id
        launch = isinstance(e, Launch)
        ud = b.user_day.setdefault((day, user), [dept, 0, 0])
        um = b.user_month.setdefault((month_of(day), user), [dept, 0, 0])
        ud[0], um[0] = max(ud[0], dept), max(um[0], dept)  # as the SQL rebuild's MAX()
        first = b.user_first.get(user)
        b.user_first[user] = (min(day, first[0]), max(dept, first[1])) if first else (day, dept)
        if launch:
            assert isinstance(e, Launch)
            ud[1] += 1
            um[1] += 1
            b.usage_day[(day, e.app_id, dept)] += 1
            uda = b.user_day_app.setdefault((day, e.app_id, user), [dept, 0])
            uda[0] = max(uda[0], dept)
            uda[1] += 1
            b.user_month_app[(month_of(day), e.app_id, user)] += 1
            local = ts.astimezone(tz)
            cell = (month_of(local.date()), local.weekday(), local.hour)
            b.cells[cell] += 1
            b.cell_users.add((*cell, user))
        else:
            ud[2] += 1
            um[2] += 1
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
    add: Iterable[str],
    keep_max: Iterable[str] = (),
) -> None:
    """INSERT rows; on a key conflict add the ``add`` columns and keep the greater value of
    the ``keep_max`` columns."""
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
    sql = (
        f"INSERT INTO {table.name} ({', '.join(cols)}) "
        f"VALUES ({', '.join([_ph(conn)] * len(cols))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}"
    )
    conn.exec_driver_sql(sql, [tuple(_db(conn, r[c]) for c in cols) for r in rows])


def _insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    cols = [c.name for c in table.primary_key.columns]
    sql = (
        f"INSERT INTO {table.name} ({', '.join(cols)}) "
        f"VALUES ({', '.join([_ph(conn)] * len(cols))}) ON CONFLICT DO NOTHING"
    )
    conn.exec_driver_sql(sql, [tuple(_db(conn, v) for v in r) for r in rows])


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

    # Month totals first: they need to know which users and launchers are new this month.
    before = _existing(conn, T_USER_MONTH, ("month", "user_id"), b.user_month, ("launches",))
    stats: dict[dt.date, Counter[str]] = defaultdict(Counter)
    for (month, user), (_, n_launch, n_signin) in b.user_month.items():
        s = stats[month]
        old = before.get((month, user))
        s["active_users"] += old is None
        s["launchers"] += n_launch > 0 and (old is None or old[0] == 0)
        s["launches"] += n_launch
        s["signins"] += n_signin
    _cohorts(conn, b, {k for k in b.user_month if k not in before})
    before_app = _existing(conn, T_USER_MONTH_APP, ("month", "app_id", "user_id"), b.user_month_app)
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
    _upsert_add(
        conn,
        T_MONTH_STATS,
        [
            {"month": m, **{k: c[k] for k in ("active_users", "launchers", "launches", "signins")}}
            for m, c in stats.items()
        ],
        add=("active_users", "launchers", "launches", "signins"),
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
    ph = _ph(conn)
    conn.exec_driver_sql(
        f"INSERT INTO user_first (user_id, first_day, department) VALUES ({ph}, {ph}, {ph}) "
        "ON CONFLICT (user_id) DO UPDATE SET first_day = CASE "
        "WHEN excluded.first_day < user_first.first_day THEN excluded.first_day "
        "ELSE user_first.first_day END, department = CASE "
        "WHEN excluded.department > user_first.department THEN excluded.department "
        "ELSE user_first.department END",
        [(u, _db(conn, d), dept) for u, (d, dept) in b.user_first.items()],
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


def flush_hook(
    tz: Callable[[], ZoneInfo],
) -> Callable[[sa.Connection, Sequence[Launch], Sequence[SignIn]], None]:
    """The event store's on_flush: rollups in the same transaction as the raw events."""

    def hook(conn: sa.Connection, launches: Sequence[Launch], signins: Sequence[SignIn]) -> None:
        apply(conn, launches, signins, tz())

    return hook


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
            if table is T_USER_FIRST:
                conn.execute(sa.delete(table).where(table.c.first_day >= start))
            elif table is T_COHORT_MONTH:
                conn.execute(sa.delete(table).where(table.c.month >= start))
            else:
                col = table.c.month if "month" in table.c else table.c.day
                conn.execute(sa.delete(table).where(col >= start))
        _rebuild_sql(conn, start, tz)
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

    run(f"""INSERT INTO usage_day (day, app_id, department, launches)
        SELECT {day}, app_id, {dept}, COUNT(*) FROM launch_event WHERE ts >= :lo
        GROUP BY {day}, app_id, {dept}""")
    run(f"""INSERT INTO user_day_app (day, app_id, user_id, department, launches)
        SELECT {day}, app_id, user_id, MAX({dept}), COUNT(*) FROM launch_event WHERE ts >= :lo
        GROUP BY {day}, app_id, user_id""")
    run(f"""INSERT INTO user_day (day, user_id, department, launches, signins)
        SELECT d, user_id, MAX(dept), SUM(l), SUM(s) FROM (
            SELECT {day} AS d, user_id, {dept} AS dept, 1 AS l, 0 AS s
            FROM launch_event WHERE ts >= :lo
            UNION ALL
            SELECT {day} AS d, user_id, {dept} AS dept, 0 AS l, 1 AS s
            FROM signin_event WHERE ts >= :lo
        ) AS e GROUP BY d, user_id""")
    m = month_of_day.format("day")
    run(f"""INSERT INTO user_month (month, user_id, department, launches, signins)
        SELECT {m}, user_id, MAX(department), SUM(launches), SUM(signins)
        FROM user_day WHERE day >= :start GROUP BY {m}, user_id""")
    run(f"""INSERT INTO user_month_app (month, app_id, user_id, launches)
        SELECT {m}, app_id, user_id, SUM(launches)
        FROM user_day_app WHERE day >= :start GROUP BY {m}, app_id, user_id""")
    run("""INSERT INTO user_first (user_id, first_day, department)
        SELECT user_id, MIN(day), MAX(department) FROM user_day WHERE day >= :start
        GROUP BY user_id ON CONFLICT (user_id) DO NOTHING""")
    run("""INSERT INTO month_stats (month, active_users, launchers, launches, signins)
        SELECT month, COUNT(*), SUM(CASE WHEN launches > 0 THEN 1 ELSE 0 END), SUM(launches),
               SUM(signins)
        FROM user_month WHERE month >= :start GROUP BY month""")
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

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
from sqlalchemy.dialects import postgresql, sqlite

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
    for e in sorted([*launches, *signins], key=lambda e: _utc(e.ts)):
        ts = _utc(e.ts)
        day, dept, user = ts.date(), e.department or "", e.user_id
        launch = isinstance(e, Launch)
        ud = b.user_day.setdefault((day, user), [dept, 0, 0])
        um = b.user_month.setdefault((month_of(day), user), [dept, 0, 0])
        ud[0] = um[0] = dept or ud[0]
        first = b.user_first.get(user)
        if first is None or day < first[0]:
            b.user_first[user] = (day, dept)
        if launch:
            assert isinstance(e, Launch)
            ud[1] += 1
            um[1] += 1
            b.usage_day[(day, e.app_id, dept)] += 1
            uda = b.user_day_app.setdefault((day, e.app_id, user), [dept, 0])
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


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _upsert_add(
    conn: sa.Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    add: Iterable[str],
    replace: Iterable[str] = (),
) -> None:
    """INSERT rows; on a key conflict add the ``add`` columns and overwrite ``replace``."""
    if not rows:
        return
    stmt = _insert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    update = {c: table.c[c] + stmt.excluded[c] for c in add}
    update.update({c: stmt.excluded[c] for c in replace})
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update), rows)


def _existing(
    conn: sa.Connection,
    table: sa.Table,
    key_cols: Sequence[str],
    keys: Iterable[tuple[Any, ...]],
    extra: Sequence[str] = (),
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Rows of ``table`` among ``keys`` (looked up in chunks), as key -> extra columns."""
    keys = list(keys)
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    cols = [table.c[c] for c in key_cols]
    for start in range(0, len(keys), 400):
        chunk = keys[start : start + 400]
        query = sa.select(*cols, *(table.c[c] for c in extra)).where(sa.tuple_(*cols).in_(chunk))
        for row in conn.execute(query):
            found[tuple(row[: len(key_cols)])] = tuple(row[len(key_cols) :])
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
    if new := [k for k in b.cell_users if k not in seen]:
        conn.execute(
            _insert(conn, T_CELL_SEEN).on_conflict_do_nothing(),
            [{"month": m, "weekday": w, "hour": h, "user_id": u} for m, w, h, u in new],
        )

    _upsert_add(
        conn,
        T_USER_MONTH,
        [
            {"month": m, "user_id": u, "department": d, "launches": nl, "signins": ns}
            for (m, u), (d, nl, ns) in b.user_month.items()
        ],
        add=("launches", "signins"),
        replace=("department",),
    )
    _upsert_add(
        conn,
        T_USER_DAY,
        [
            {"day": day, "user_id": u, "department": d, "launches": nl, "signins": ns}
            for (day, u), (d, nl, ns) in b.user_day.items()
        ],
        add=("launches", "signins"),
        replace=("department",),
    )
    _upsert_add(
        conn,
        T_USER_DAY_APP,
        [
            {"day": day, "app_id": a, "user_id": u, "department": d, "launches": n}
            for (day, a, u), (d, n) in b.user_day_app.items()
        ],
        add=("launches",),
        replace=("department",),
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
    stmt = _insert(conn, T_USER_FIRST)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                "first_day": sa.case(
                    (stmt.excluded.first_day < T_USER_FIRST.c.first_day, stmt.excluded.first_day),
                    else_=T_USER_FIRST.c.first_day,
                )
            },
        ),
        [
            {"user_id": u, "first_day": d, "department": dept}
            for u, (d, dept) in b.user_first.items()
        ],
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


def purge_raw(engine: sa.Engine, retention_days: int, now: dt.datetime | None = None) -> int:
    """Delete raw events older than the retention; rollups stay. Returns rows deleted."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    deleted = 0
    with engine.begin() as conn:
        for table in (T_LAUNCH, T_SIGNIN):
            deleted += conn.execute(sa.delete(table).where(table.c.ts < cutoff)).rowcount or 0
        prune_cell_seen(conn, cutoff.date() + dt.timedelta(days=retention_days))
    return deleted


def rebuild(
    engine: sa.Engine,
    tz: ZoneInfo,
    chunk: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute every rollup from the raw events (``launcher db rebuild-rollups``).

    Rollup rows for days before the oldest raw event are kept: raw events past the retention
    are gone, and their rollups are all that is left of them.
    """
    with engine.connect() as conn:
        oldest = [
            conn.execute(sa.select(sa.func.min(t.c.ts))).scalar_one() for t in (T_LAUNCH, T_SIGNIN)
        ]
        total = sum(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (T_LAUNCH, T_SIGNIN)
        )
    starts = [_utc(ts) for ts in oldest if ts is not None]
    if not starts:
        return 0
    start_day = min(starts).date()
    # whole months, so that per-month distinct counts are rebuilt complete
    start_month = month_of(start_day)
    with db.serialized_write(engine, ROLLUP_LOCK) as conn:
        for table in ROLLUP_TABLES:
            if table is T_USER_FIRST:
                continue
            col = table.c.month if "month" in table.c else table.c.day
            conn.execute(sa.delete(table).where(col >= start_month))
        conn.execute(sa.delete(T_USER_FIRST).where(T_USER_FIRST.c.first_day >= start_month))
    done = 0
    lo = dt.datetime.combine(start_month, dt.time(), tzinfo=dt.UTC)
    for launches, signins in _stream(engine, lo, chunk):
        with db.serialized_write(engine, ROLLUP_LOCK) as conn:
            apply(conn, launches, signins, tz)
        done += len(launches) + len(signins)
        if progress:
            progress(done, total)
    return done


def _stream(
    engine: sa.Engine, since: dt.datetime, chunk: int
) -> Iterable[tuple[list[Launch], list[SignIn]]]:
    """Raw events from ``since`` in time order, in chunks of about ``chunk`` events."""
    for table in (T_LAUNCH, T_SIGNIN):
        last_id = 0
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(table)
                    .where(table.c.id > last_id, table.c.ts >= since)
                    .order_by(table.c.id)
                    .limit(chunk)
                ).all()
            if not rows:
                break
            last_id = rows[-1].id
            if table is T_LAUNCH:
                yield (
                    [Launch(_utc(r.ts), r.app_id, r.user_id, r.department, r.source) for r in rows],
                    [],
                )
            else:
                yield [], [SignIn(_utc(r.ts), r.user_id, r.department) for r in rows]

"""Report queries: pure functions of (engine, registry, period, …) -> rows. No HTTP here.

Everything reads the rollup tables of :mod:`launcher.reports.rollups`, never raw events.
Distinct users over a period come from the span rollups: one row per user (and app) with the
months as bits, and, for a month the period covers only in part, one index probe of the daily
rollups per user who was active in that month (see :func:`_active_in`). So a report over a
year reads about as many rows as there are users, not one per user and day.
Privacy: any figure about fewer distinct users than the minimum group size is suppressed,
and when a table would have exactly one suppressed row, the next smallest row is suppressed
too, so that no suppressed figure can be worked out as "total minus the other rows".
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from launcher.errors import BadRequest
from launcher.registry import Registry
from launcher.reports.rollups import (
    T_COHORT_MONTH,
    T_DAY_STATS,
    T_MONTH_APP,
    T_MONTH_CELL,
    T_MONTH_STATS,
    T_USAGE_DAY,
    T_USER_DAY,
    T_USER_DAY_APP,
    T_USER_MONTH,
    T_USER_SPAN,
    T_USER_SPAN_APP,
)
from launcher.reports.rollups import month_of as month_of

By = Literal["app", "category", "department", "day", "month"]
BY_VALUES: tuple[str, ...] = ("app", "category", "department", "day", "month")
MAX_RANGE_DAYS = 5 * 366
UNKNOWN = "unknown"  # the key for events without a department
Row = dict[str, Any]


# --- periods ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    start: dt.date  # inclusive
    end: dt.date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        lo = dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)
        hi = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        return lo, hi

    @property
    def whole_months(self) -> int:
        """How many calendar months the period is, when it is whole months; else 0."""
        if self.start.day != 1 or self.end != _month_end(self.end):
            return 0
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    def previous(self) -> Period:
        """The period of the same kind just before: the previous month for a month, the
        previous quarter for a quarter, else as many days just before."""
        if n := self.whole_months:
            return Period(_add_months(self.start, -n), self.start - dt.timedelta(days=1))
        return Period(self.start - dt.timedelta(days=self.days), self.start - dt.timedelta(days=1))

    def months(self) -> list[dt.date]:
        out, month = [], month_of(self.start)
        while month <= self.end:
            out.append(month)
            month = _month_end(month) + dt.timedelta(days=1)
        return out


def _month_end(month: dt.date) -> dt.date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def month_period(month: dt.date) -> Period:
    return Period(month_of(month), _month_end(month_of(month)))


def quarter_period(day: dt.date) -> Period:
    first = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    last = _month_end(dt.date(first.year, first.month + 2, 1))
    return Period(first, last)


def parse_period(start: str | None, end: str | None, today: dt.date) -> Period:
    """``from``/``to`` as YYYY-MM-DD (both inclusive); defaults to the last 30 days."""

    def parse(value: str | None, name: str, default: dt.date) -> dt.date:
        if value is None or value == "":
            return default
        try:
            date: dt.date | None = dt.date.fromisoformat(value)
        except ValueError:
            date = None
        if date is None or date.isoformat() != value:  # fromisoformat takes 2025-W10-1 too
            raise BadRequest(f"'{name}' must be a date as YYYY-MM-DD, got {value[:40]!r}")
        return date

    end_date = parse(end, "to", today)
    start_date = parse(start, "from", end_date - dt.timedelta(days=29))
    if start_date > end_date:
        raise BadRequest("'from' must not be after 'to'")
    if (end_date - start_date).days > MAX_RANGE_DAYS:
        raise BadRequest(f"a report covers at most {MAX_RANGE_DAYS} days")
    return Period(start_date, end_date)


def parse_by(value: str | None, allowed: Sequence[str] = BY_VALUES) -> str:
    value = value or allowed[0]
    if value not in allowed:
        raise BadRequest(f"'by' must be one of {', '.join(allowed)}, got {value[:40]!r}")
    return value


def _add_months(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def go_live_baseline(go_live: dt.date | None, period: Period) -> Period | None:
    """The period to compare with "just after go-live": from the first full month after
    go-live, as many calendar months as ``period`` has (a month for a month, three for a
    quarter), or as many days for a range that is not whole months."""
    if go_live is None:
        return None
    first = go_live if go_live.day == 1 else _month_end(go_live) + dt.timedelta(days=1)
    if n := period.whole_months:
        return Period(first, _add_months(first, n) - dt.timedelta(days=1))
    return Period(first, first + dt.timedelta(days=period.days - 1))


# --- suppression ------------------------------------------------------------------------
def _hide(row: Row) -> Row:
    return {**{k: (v if k == "key" else None) for k, v in row.items()}, "suppressed": True}


def suppress(row: Row, min_group: int, users_key: str = "users") -> Row:
    """Hide a row about 1 to min_group - 1 users (a row about nobody reveals nobody)."""
    users = row[users_key]
    return _hide(row) if users is not None and 0 < users < min_group else row


def suppress_rows(rows: list[Row], min_group: int, users_key: str = "users") -> list[Row]:
    """Suppress small rows; with exactly one, also the next smallest (no subtraction attack)."""
    out = [suppress(r, min_group, users_key) for r in rows]
    hidden = [i for i, r in enumerate(out) if r.get("suppressed")]
    shown = [i for i, r in enumerate(out) if not r.get("suppressed") and rows[i][users_key]]
    if len(hidden) == 1 and shown:
        smallest = min(shown, key=lambda i: (rows[i][users_key], rows[i].get("launches") or 0))
        out[smallest] = _hide(rows[smallest])
    return out


# --- SQL helpers ------------------------------------------------------------------------
@contextmanager
def _connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for report queries, with PostgreSQL settings for them (this transaction
    only): room to hash the users of a month (the default 4 MB makes the planner sort them on
    disk instead), and no JIT, which would compile each query for longer than it runs."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            conn.exec_driver_sql("SET LOCAL jit = off")
        yield conn


def _month_key(engine: sa.Engine, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    if engine.dialect.name == "sqlite":
        return sa.func.substr(col, 1, 7)
    return sa.func.to_char(col, "YYYY-MM")


def _day_key(engine: sa.Engine, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    if engine.dialect.name == "sqlite":
        return sa.cast(col, sa.String)
    return sa.func.to_char(col, "YYYY-MM-DD")


def _category_key(registry: Registry, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    mapping = {app.id: app.category or "other" for app in registry.apps}
    if not mapping:
        return sa.literal("other")
    return sa.case(mapping, value=col, else_=sa.literal("other"))


def _dept(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.case((col == "", UNKNOWN), else_=col)


def _between(col: sa.ColumnElement[Any], period: Period) -> sa.ColumnElement[bool]:
    return sa.and_(col >= period.start, col <= period.end)


def _key(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


# --- distinct users over a period: the span rollups ---------------------------------------
@dataclass(frozen=True)
class _Span:
    """What a period reads of the span rows of ``year`` (see rollups.span_bits): a mask of
    the months it covers whole, and (bit, days) for each month it covers in part."""

    year: int
    whole: int
    parts: tuple[tuple[int, Period], ...]


def _spans(period: Period) -> list[_Span]:
    """The period in spans of two calendar years, each of its months in exactly one. Any
    period of up to a year is one span."""
    spans = []
    for year in range(period.start.year, period.end.year + 1, 2):
        within = Period(
            max(period.start, dt.date(year, 1, 1)), min(period.end, dt.date(year + 1, 12, 31))
        )
        whole, parts = 0, []
        for month in within.months():
            bit = 1 << ((month.year - year) * 12 + month.month - 1)
            days = Period(max(within.start, month), min(within.end, _month_end(month)))
            if days.whole_months:
                whole |= bit
            else:
                parts.append((bit, days))
        parts.sort(key=lambda part: -part[1].days)  # the likelier hit first
        spans.append(_Span(year, whole, tuple(parts)))
    return spans


def _active_in(
    mask: sa.ColumnElement[int],
    span: _Span,
    active_on: Callable[[Period], sa.ColumnElement[bool]],
) -> sa.ColumnElement[bool]:
    """A span row that counts: active in a month the period covers whole or, in a month it
    covers in part, on one of those days (``active_on``: an EXISTS that one index probe
    answers, asked only of rows with that month's bit; PostgreSQL may hash those days'
    rows instead, which is why each part asks about its own days only).

    A part from the month's first day up to the last day with data (the current month, in
    a period that ends today) is as good as whole: no probe."""
    horizon = sa.select(sa.func.max(T_DAY_STATS.c.day)).scalar_subquery()
    tests = [mask.bitwise_and(span.whole) != 0] if span.whole else []
    for bit, days in span.parts:
        probe = active_on(days)
        if days.start.day == 1:
            probe = sa.or_(sa.literal(days.end, sa.Date) >= horizon, probe)
        tests.append(sa.and_(mask.bitwise_and(bit) != 0, probe))
    return sa.or_(*tests)


Key = Callable[[sa.Table], sa.ColumnElement[Any]]


def _user_in(span: _Span, launched: bool) -> sa.ColumnElement[bool]:
    """A user_span row active (or that launched) in the span's part of the period."""
    w, u = T_USER_SPAN, T_USER_DAY

    def active_on(days: Period) -> sa.ColumnElement[bool]:
        probe = [
            u.c.user_id == w.c.user_id,
            _between(u.c.day, days),
            u.c.department == w.c.department,
        ]
        return (
            sa.exists().where(*probe, u.c.launches > 0) if launched else sa.exists().where(*probe)
        )

    return _active_in(w.c.launched if launched else w.c.active, span, active_on)


def _user_rows(period: Period, key: Key, launched: bool = False) -> list[sa.Select[Any]]:
    """(key, user_id) of the users active in the period (who launched, with ``launched``);
    a user in several departments has a row in each."""
    w = T_USER_SPAN
    return [
        sa.select(key(w).label("key"), w.c.user_id).where(w.c.year == s.year, _user_in(s, launched))
        for s in _spans(period)
    ]


def _active_and_launchers(conn: sa.Connection, period: Period) -> tuple[int, int]:
    """Distinct users active in the period, and how many of them launched, in one pass.

    A period without a whole month has at most two months of days: grouping their user_day
    rows by user is cheaper than the span rows and a probe per user (on PostgreSQL, which
    probes slowly, about three times)."""
    spans = _spans(period)
    if not any(s.whole for s in spans):
        u = T_USER_DAY
        per_user = (
            sa.select(u.c.user_id, sa.func.max(u.c.launches).label("launches"))
            .where(_between(u.c.day, period))
            .group_by(u.c.user_id)
            .subquery()
        )
        query = sa.select(sa.func.count(), sa.func.count(sa.case((per_user.c.launches > 0, 1))))
        users, launchers = conn.execute(query).one()
        return int(users), int(launchers)
    w = T_USER_SPAN
    selects = [
        sa.select(w.c.user_id, sa.case((_user_in(s, True), w.c.user_id)).label("launcher")).where(
            w.c.year == s.year, _user_in(s, False)
        )
        for s in spans
    ]
    rows = sa.union_all(*selects).subquery() if len(selects) > 1 else selects[0].subquery()
    query = sa.select(
        sa.func.count(sa.distinct(rows.c.user_id)), sa.func.count(sa.distinct(rows.c.launcher))
    )
    users, launchers = conn.execute(query).one()
    return int(users), int(launchers)


def _app_rows(
    period: Period, key: Key, apps: sa.ColumnElement[bool] | None = None
) -> list[sa.Select[Any]]:
    """(key, user_id) per app (of ``apps``, a condition on ``app_id``) a user launched in the
    period."""
    w, uda = T_USER_SPAN_APP, T_USER_DAY_APP

    def active_on(days: Period) -> sa.ColumnElement[bool]:
        return sa.exists().where(
            uda.c.app_id == w.c.app_id, uda.c.user_id == w.c.user_id, _between(uda.c.day, days)
        )

    return [
        sa.select(key(w).label("key"), w.c.user_id).where(
            w.c.year == s.year,
            _active_in(w.c.months, s, active_on),
            sa.true() if apps is None else apps,
        )
        for s in _spans(period)
    ]


def _category_users(conn: sa.Connection, registry: Registry, period: Period) -> dict[str, int]:
    """Distinct users per category: a count per category over the rows of its own apps,
    which the span rows' key finds, rather than one count over every row mapped to its
    category (about twice as slow)."""
    apps: dict[str, list[str]] = {}
    for app in registry.apps:
        apps.setdefault(app.category or "other", []).append(app.id)
    categorized = [a for category, ids in apps.items() if category != "other" for a in ids]
    app_id = T_USER_SPAN_APP.c.app_id
    counts = []
    for category in sorted({*apps, "other"}):
        test = ~app_id.in_(categorized) if category == "other" else app_id.in_(apps[category])
        selects = _app_rows(period, lambda w: w.c.app_id, test)
        rows = sa.union_all(*selects).subquery() if len(selects) > 1 else selects[0].subquery()
        counts.append(sa.select(sa.literal(category), sa.func.count(sa.distinct(rows.c.user_id))))
    return {k: int(n) for k, n in conn.execute(sa.union_all(*counts)) if n}


def _count_users(conn: sa.Connection, selects: list[sa.Select[Any]]) -> dict[str, int]:
    """Distinct users per key of rows keyed by app or department: one span's rows hold each
    (key, user) once, rows from several spans need deduplicating."""
    rows = selects[0].subquery()
    if len(selects) > 1:
        rows = sa.union(*selects).subquery()
    query = sa.select(rows.c.key, sa.func.count()).group_by(rows.c.key)
    return {_key(k): int(n) for k, n in conn.execute(query)}


def _monthly_users(conn: sa.Connection, period: Period) -> dict[str, tuple[int, int]]:
    """Per month of the period with activity: (active users, launchers)."""
    out: dict[str, tuple[int, int]] = {}
    whole = []
    for month in period.months():
        days = Period(max(period.start, month), min(period.end, _month_end(month)))
        if days.whole_months:
            whole.append(month)
            continue
        users, launchers = _active_and_launchers(conn, days)
        if users:
            out[month.isoformat()[:7]] = (users, launchers)
    m = T_MONTH_STATS
    query = sa.select(m.c.month, m.c.active_users, m.c.launchers).where(m.c.month.in_(whole))
    for month, users, launchers in conn.execute(query):
        if users:
            out[month.isoformat()[:7]] = (int(users), int(launchers))
    return out


# --- the launches report (DESIGN.md's contract) -------------------------------------------
def launches(
    engine: sa.Engine, registry: Registry, period: Period, by: str, min_group: int
) -> list[Row]:
    """Launches and distinct launching users per key; keys with no launches left out."""
    ud, ds = T_USAGE_DAY, T_DAY_STATS
    table = ds if by in ("day", "month") else ud
    if by == "app":
        count_key = ud.c.app_id
    elif by == "category":
        count_key = _category_key(registry, ud.c.app_id)
    elif by == "department":
        count_key = _dept(ud.c.department)
    elif by == "day":
        count_key = _day_key(engine, ds.c.day)
    elif by == "month":
        count_key = _month_key(engine, ds.c.day)
    else:
        raise BadRequest(f"unknown breakdown {by!r}")
    counts = sa.select(count_key, sa.func.sum(table.c.launches))
    counts = counts.where(_between(table.c.day, period)).group_by(count_key)
    with _connect(engine) as conn:
        launch_counts = {_key(k): int(n) for k, n in conn.execute(counts)}
        if by == "day":
            query = sa.select(count_key, ds.c.launchers).where(_between(ds.c.day, period))
            user_counts = {_key(k): int(n) for k, n in conn.execute(query)}
        elif by == "month":
            user_counts = {k: n for k, (_, n) in _monthly_users(conn, period).items()}
        elif by == "app" and period.whole_months == 1:  # a calendar month: counted already
            m = T_MONTH_APP
            query = sa.select(m.c.app_id, m.c.users).where(m.c.month == period.start)
            user_counts = {k: int(n) for k, n in conn.execute(query)}
        elif by == "app":
            user_counts = _count_users(conn, _app_rows(period, lambda w: w.c.app_id))
        elif by == "category":
            user_counts = _category_users(conn, registry, period)
        else:
            selects = _user_rows(period, lambda w: _dept(w.c.department), launched=True)
            user_counts = _count_users(conn, selects)
    rows = [
        {"key": k, "launches": n, "users": user_counts.get(k, 0)}
        for k, n in sorted(launch_counts.items())
        if n > 0
    ]
    return suppress_rows(rows, min_group)


# --- headline figures and comparisons -----------------------------------------------------
METRICS = ("active_users", "launches", "launches_per_user", "signins", "launcher_share")


def summary(engine: sa.Engine, period: Period) -> dict[str, int]:
    ds, ms = T_DAY_STATS, T_MONTH_STATS
    with _connect(engine) as conn:
        if period.whole_months == 1:
            query = sa.select(ms.c.active_users, ms.c.launchers, ms.c.launches, ms.c.signins)
            found = conn.execute(query.where(ms.c.month == period.start)).first()
            active, launchers, n_launches, signins = found or (0, 0, 0, 0)
        else:
            totals = sa.select(
                sa.func.coalesce(sa.func.sum(ds.c.launches), 0),
                sa.func.coalesce(sa.func.sum(ds.c.signins), 0),
            ).where(_between(ds.c.day, period))
            n_launches, signins = conn.execute(totals).one()
            active, launchers = _active_and_launchers(conn, period)
    return {
        "active_users": int(active),
        "launchers": int(launchers),
        "launches": int(n_launches),
        "signins": int(signins),
    }


def _metrics(raw: dict[str, int], min_group: int) -> dict[str, float | int | None]:
    active = raw["active_users"]
    if active == 0:
        return {
            "active_users": 0,
            "launches": 0,
            "launches_per_user": None,
            "signins": 0,
            "launcher_share": None,
        }
    if active < min_group:
        return dict.fromkeys(METRICS)
    launchers, idle = raw["launchers"], active - raw["launchers"]
    # the share times the active users gives both counts: each must be about enough people
    share_hidden = 0 < launchers < min_group or 0 < idle < min_group
    return {
        "active_users": active,
        "launches": raw["launches"],
        "launches_per_user": round(raw["launches"] / active, 2),
        "signins": raw["signins"],
        "launcher_share": None if share_hidden else round(launchers / active, 4),
    }


def _change(now: float | int | None, then: float | int | None) -> float | None:
    if now is None or then is None or then == 0:
        return None
    return round((now - then) / then, 4)


def comparison(
    engine: sa.Engine, registry: Registry, period: Period, min_group: int
) -> dict[str, Any]:
    """Each headline metric with its change against the previous period and against go-live."""
    previous = period.previous()
    baseline = go_live_baseline(registry.portal.go_live, period)
    now = _metrics(summary(engine, period), min_group)
    before = _metrics(summary(engine, previous), min_group)
    base = _metrics(summary(engine, baseline), min_group) if baseline else dict.fromkeys(METRICS)
    rows = []
    for metric in METRICS:
        vs_prev, vs_base = _change(now[metric], before[metric]), _change(now[metric], base[metric])
        rows.append(
            {
                "metric": metric,
                "value": now[metric],
                "previous": before[metric],
                "change_previous": vs_prev,
                "go_live": base[metric],
                "change_go_live": vs_base,
                "decline": bool((vs_prev or 0) < 0 or (vs_base or 0) < 0),
            }
        )
    return {
        "previous": {"from": previous.start.isoformat(), "to": previous.end.isoformat()},
        "go_live": (
            {"from": baseline.start.isoformat(), "to": baseline.end.isoformat()}
            if baseline
            else None
        ),
        "rows": rows,
    }


# --- over time ----------------------------------------------------------------------------
def active_users(engine: sa.Engine, period: Period, by: str, min_group: int) -> list[Row]:
    """Distinct users who signed in or launched (and who launched) per day or month."""
    ds = T_DAY_STATS
    with _connect(engine) as conn:
        if by == "day":
            query = sa.select(_day_key(engine, ds.c.day), ds.c.active_users, ds.c.launchers)
            found = {
                _key(k): (int(n), int(lu))
                for k, n, lu in conn.execute(query.where(_between(ds.c.day, period)))
                if n
            }
        else:
            found = _monthly_users(conn, period)
    rows: list[Row] = [
        {"key": k, "users": n, "launchers": lu} for k, (n, lu) in sorted(found.items())
    ]
    out: list[Row] = []
    for row in rows:
        if row["users"] < min_group:
            out.append({"key": row["key"], "users": None, "launchers": None, "suppressed": True})
        elif 0 < row["launchers"] < min_group or 0 < row["users"] - row["launchers"] < min_group:
            out.append({**row, "launchers": None})  # it would tell about fewer than k people
        else:
            out.append(row)
    return out


def adoption_curve(
    engine: sa.Engine, first_month: dt.date, last_month: dt.date, min_group: int
) -> list[Row]:
    """Monthly active users, launches and sign-ins, month by month (months without data: 0)."""
    m = T_MONTH_STATS
    query = sa.select(m).where(m.c.month >= first_month, m.c.month <= last_month)
    with _connect(engine) as conn:
        found = {r.month: r for r in conn.execute(query)}
    rows = []
    month = first_month
    while month <= last_month:
        r = found.get(month)
        row: Row = {
            "key": month.isoformat()[:7],
            "users": r.active_users if r else 0,
            "launches": r.launches if r else 0,
            "signins": r.signins if r else 0,
        }
        rows.append(
            row if row["users"] >= min_group or row["users"] == 0 else suppress(row, min_group)
        )
        month = _month_end(month) + dt.timedelta(days=1)
    return rows


def app_trends(
    engine: sa.Engine, months: Sequence[dt.date], min_group: int
) -> dict[str, list[Row]]:
    """Per app, launches and distinct users per month (for small multiples)."""
    m = T_MONTH_APP
    query = sa.select(m).where(m.c.month >= months[0], m.c.month <= months[-1])
    with _connect(engine) as conn:
        found = {(r.app_id, r.month): r for r in conn.execute(query)}
    apps = sorted({app for app, _ in found})
    out: dict[str, list[Row]] = {app: [] for app in apps}
    for month in months:
        # one month's apps form a table of their own: its total is in the adoption curve
        rows: list[Row] = []
        for app in apps:
            r = found.get((app, month))
            rows.append(
                {
                    "key": month.isoformat()[:7],
                    "launches": r.launches if r else 0,
                    "users": r.users if r else 0,
                }
            )
        for app, row in zip(apps, suppress_rows(rows, min_group), strict=True):
            out[app].append(row)
    return out


def heatmap(engine: sa.Engine, period: Period, min_group: int) -> list[Row]:
    """Launches per weekday (0 = Monday) x hour in the portal's time zone, over the months of
    the period. A cell is shown only when every month that has launches in it had enough
    distinct users there, and never as the only hidden cell (the period's total is known)."""
    c = T_MONTH_CELL
    query = (
        sa.select(c.c.weekday, c.c.hour, sa.func.sum(c.c.launches), sa.func.min(c.c.users))
        .where(c.c.month >= month_of(period.start), c.c.month <= month_of(period.end))
        .group_by(c.c.weekday, c.c.hour)
    )
    with _connect(engine) as conn:
        found = {(w, h): (int(n), int(u)) for w, h, n, u in conn.execute(query)}
    cells = [(w, h) for w in range(7) for h in range(24)]
    rows: list[Row] = [
        {"key": cell, "launches": found.get(cell, (0, 0))[0], "users": found.get(cell, (0, 0))[1]}
        for cell in cells
    ]
    out: list[Row] = []
    for (weekday, hour), row in zip(cells, suppress_rows(rows, min_group), strict=True):
        if row.get("suppressed"):
            out.append({"weekday": weekday, "hour": hour, "launches": None, "suppressed": True})
        else:
            out.append({"weekday": weekday, "hour": hour, "launches": row["launches"]})
    return out


def cohorts(
    engine: sa.Engine, first_month: dt.date, last_month: dt.date, min_group: int
) -> list[Row]:
    """Users grouped by the month they were first seen; share still active in later months."""
    c = T_COHORT_MONTH
    query = sa.select(c).where(
        c.c.cohort >= first_month, c.c.cohort <= last_month, c.c.month <= last_month
    )
    with _connect(engine) as conn:
        found: dict[dt.date, dict[dt.date, int]] = {}
        for r in conn.execute(query):
            found.setdefault(r.cohort, {})[r.month] = r.users
    cohort_list = sorted(found)
    hidden_cohorts = {c for c in cohort_list if 0 < found[c].get(c, 0) < min_group}
    # Each month's column is a table of its own (its total is that month's active users, in
    # the adoption curve): hide small cells, and never leave exactly one hidden.
    hidden_cells: set[tuple[dt.date, dt.date]] = set()
    month = first_month
    while month <= last_month:
        column = [c for c in cohort_list if c <= month]
        cells: list[Row] = [
            {
                "key": c,
                "launches": 0,
                # a hidden cohort's cells are hidden too: its size is in its first cell
                "users": min(found[c].get(month, 0), 1)
                if c in hidden_cohorts
                else found[c].get(month, 0),
            }
            for c in column
        ]
        hidden_cells |= {
            (c, month)
            for c, cell in zip(column, suppress_rows(cells, min_group), strict=True)
            if cell.get("suppressed")
        }
        month = _month_end(month) + dt.timedelta(days=1)
    rows: list[Row] = []
    for cohort in cohort_list:
        size = found[cohort].get(cohort, 0)
        if cohort in hidden_cohorts or (cohort, cohort) in hidden_cells:
            rows.append(
                {
                    "cohort": cohort.isoformat()[:7],
                    "size": None,
                    "suppressed": True,
                    "retention": [],
                }
            )
            continue
        retention = []
        month, offset = cohort, 0
        while month <= last_month:
            active = found[cohort].get(month, 0)
            share = None if (cohort, month) in hidden_cells else round(active / size, 4)
            retention.append({"month": month.isoformat()[:7], "offset": offset, "share": share})
            month, offset = _month_end(month) + dt.timedelta(days=1), offset + 1
        rows.append({"cohort": cohort.isoformat()[:7], "size": size, "retention": retention})
    return rows


def dormant(
    engine: sa.Engine, registry: Registry, today: dt.date, min_group: int
) -> dict[str, Any]:
    """Users active in the first full month after go-live but not in the last 30 days."""
    baseline = go_live_baseline(registry.portal.go_live, month_period(today))
    if baseline is None:
        return {"baseline": None, "users": None, "rows": []}
    recent = Period(today - dt.timedelta(days=29), today)
    um, u = T_USER_MONTH, T_USER_DAY
    # one index probe per user of the baseline month
    active_recently = sa.exists().where(u.c.user_id == um.c.user_id, _between(u.c.day, recent))
    dept = _dept(um.c.department)
    query = (
        sa.select(dept.label("key"), sa.func.count())
        .where(um.c.month == baseline.start, ~active_recently)
        .group_by(dept)
        .order_by(dept)
    )
    with _connect(engine) as conn:
        rows = [{"key": k, "users": int(n)} for k, n in conn.execute(query)]
    total = sum(r["users"] for r in rows)
    return {
        "baseline": baseline.start.isoformat()[:7],
        "users": total if total >= min_group else None,
        "rows": suppress_rows(rows, min_group),
    }


def departments(engine: sa.Engine, registry: Registry, period: Period, min_group: int) -> list[Row]:
    """Active users per department, and their share of head count where the registry has it."""
    with _connect(engine) as conn:
        counts = _count_users(conn, _user_rows(period, lambda w: _dept(w.c.department)))
    rows: list[Row] = [{"key": k, "users": n} for k, n in sorted(counts.items())]
    heads = {d.id: d.headcount for d in registry.departments}
    names = {d.id: d.name for d in registry.departments}
    for dep in registry.departments:  # departments that never arrived still get a row
        if dep.id not in {r["key"] for r in rows}:
            rows.append({"key": dep.id, "users": 0})
    rows.sort(key=lambda r: r["key"])
    out = []
    for row in suppress_rows(rows, min_group):
        headcount = heads.get(row["key"])
        share = (
            round(row["users"] / headcount, 4)
            if headcount and row.get("users") is not None
            else None
        )
        out.append(
            {
                **row,
                "headcount": headcount,
                "share": share,
                "name": names[row["key"]].en if row["key"] in names else None,
            }
        )
    return out


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return Period(month_of(first), last).months()


def data_range(engine: sa.Engine) -> tuple[dt.date, dt.date] | None:
    m = T_MONTH_STATS
    with _connect(engine) as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(m.c.month), sa.func.max(m.c.month))).one()
    return (lo, hi) if lo is not None else None

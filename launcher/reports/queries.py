"""Report queries: pure functions of (engine, registry, period, …) -> rows. No HTTP here.

Everything reads the rollup tables of :mod:`launcher.reports.rollups`, never raw events.
Privacy: any figure about fewer distinct users than the minimum group size is suppressed,
and when a table would have exactly one suppressed row, the next smallest row is suppressed
too, so that no suppressed figure can be worked out as "total minus the other rows".
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from launcher.errors import BadRequest
from launcher.registry import Registry
from launcher.reports.rollups import (
    T_COHORT_MONTH,
    T_MONTH_APP,
    T_MONTH_CELL,
    T_MONTH_STATS,
    T_USAGE_DAY,
    T_USER_DAY,
    T_USER_DAY_APP,
    T_USER_MONTH,
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


# --- the launches report (DESIGN.md's contract) -------------------------------------------
def launches(
    engine: sa.Engine, registry: Registry, period: Period, by: str, min_group: int
) -> list[Row]:
    """Launches and distinct launching users per key; keys with no launches left out."""
    ud, uda, u = T_USAGE_DAY, T_USER_DAY_APP, T_USER_DAY
    if by == "app":
        count_key, users_key, users_from = ud.c.app_id, uda.c.app_id, uda
    elif by == "category":
        count_key = _category_key(registry, ud.c.app_id)
        users_key, users_from = _category_key(registry, uda.c.app_id), uda
    elif by == "department":
        count_key, users_key, users_from = _dept(ud.c.department), _dept(uda.c.department), uda
    elif by == "day":
        count_key, users_key, users_from = _day_key(engine, ud.c.day), _day_key(engine, u.c.day), u
    elif by == "month":
        count_key = _month_key(engine, ud.c.day)
        users_key, users_from = _month_key(engine, u.c.day), u
    else:
        raise BadRequest(f"unknown breakdown {by!r}")
    counts = (
        sa.select(count_key.label("key"), sa.func.sum(ud.c.launches).label("n"))
        .where(_between(ud.c.day, period))
        .group_by(count_key)
    )
    where = [_between(users_from.c.day, period)]
    if users_from is u:
        where.append(u.c.launches > 0)
    users = (
        sa.select(users_key.label("key"), sa.func.count(sa.distinct(users_from.c.user_id)))
        .where(*where)
        .group_by(users_key)
    )
    with engine.connect() as conn:
        launch_counts = {_key(k): int(n) for k, n in conn.execute(counts)}
        user_counts = {_key(k): int(n) for k, n in conn.execute(users)}
    rows = [
        {"key": k, "launches": n, "users": user_counts.get(k, 0)}
        for k, n in sorted(launch_counts.items())
        if n > 0
    ]
    return suppress_rows(rows, min_group)


# --- headline figures and comparisons -----------------------------------------------------
METRICS = ("active_users", "launches", "launches_per_user", "signins", "launcher_share")


def summary(engine: sa.Engine, period: Period) -> dict[str, int]:
    u = T_USER_DAY
    query = sa.select(
        sa.func.count(sa.distinct(u.c.user_id)),
        sa.func.count(sa.distinct(sa.case((u.c.launches > 0, u.c.user_id)))),
        sa.func.coalesce(sa.func.sum(u.c.launches), 0),
        sa.func.coalesce(sa.func.sum(u.c.signins), 0),
    ).where(_between(u.c.day, period))
    with engine.connect() as conn:
        active, launchers, n_launches, signins = conn.execute(query).one()
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
    u = T_USER_DAY
    key = _day_key(engine, u.c.day) if by == "day" else _month_key(engine, u.c.day)
    query = (
        sa.select(
            key.label("key"),
            sa.func.count(sa.distinct(u.c.user_id)),
            sa.func.count(sa.distinct(sa.case((u.c.launches > 0, u.c.user_id)))),
        )
        .where(_between(u.c.day, period))
        .group_by(key)
        .order_by(key)
    )
    with engine.connect() as conn:
        rows: list[Row] = [
            {"key": _key(k), "users": int(n), "launchers": int(lu)}
            for k, n, lu in conn.execute(query)
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
    with engine.connect() as conn:
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
    with engine.connect() as conn:
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
    with engine.connect() as conn:
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
    with engine.connect() as conn:
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
    active_recently = sa.select(u.c.user_id).where(_between(u.c.day, recent))
    dept = _dept(um.c.department)
    query = (
        sa.select(dept.label("key"), sa.func.count())
        .where(um.c.month == baseline.start, um.c.user_id.not_in(active_recently))
        .group_by(dept)
        .order_by(dept)
    )
    with engine.connect() as conn:
        rows = [{"key": k, "users": int(n)} for k, n in conn.execute(query)]
    total = sum(r["users"] for r in rows)
    return {
        "baseline": baseline.start.isoformat()[:7],
        "users": total if total >= min_group else None,
        "rows": suppress_rows(rows, min_group),
    }


def departments(engine: sa.Engine, registry: Registry, period: Period, min_group: int) -> list[Row]:
    """Active users per department, and their share of head count where the registry has it."""
    u = T_USER_DAY
    dept = _dept(u.c.department)
    query = (
        sa.select(dept.label("key"), sa.func.count(sa.distinct(u.c.user_id)))
        .where(_between(u.c.day, period))
        .group_by(dept)
        .order_by(dept)
    )
    with engine.connect() as conn:
        rows = [{"key": k, "users": int(n)} for k, n in conn.execute(query)]
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
    with engine.connect() as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(m.c.month), sa.func.max(m.c.month))).one()
    return (lo, hi) if lo is not None else None

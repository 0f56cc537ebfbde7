"""Report queries: pure functions of (engine, registry, period, …) -> rows. No HTTP here.

Everything reads the rollup tables of :mod:`launcher.reports.rollups`, never raw events;
distinct users over a period come from the span rollups (:mod:`launcher.reports.spans`).
Privacy: any figure about fewer distinct users than the minimum group size is suppressed,
and when a table would have exactly one suppressed row, the next smallest row is suppressed
too, so that no suppressed figure can be worked out as "total minus the other rows".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from launcher.dates import month_end, month_of
from launcher.errors import BadRequest
from launcher.registry import Registry
from launcher.reports import spans
from launcher.reports.periods import Period, go_live_baseline, month_period
from launcher.reports.rollups import (
    T_COHORT_MONTH,
    T_DAY_STATS,
    T_MONTH_APP,
    T_MONTH_CELL,
    T_MONTH_STATS,
    T_USAGE_DAY,
    T_USER_DAY,
    T_USER_MONTH,
)
from launcher.reports.sql import (
    between,
    category_key,
    connect,
    day_key,
    dept,
    key_of,
    month_key,
)

Row = dict[str, Any]


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


# --- the launches report (the Report API in the README) -------------------------------------------
def launches(
    engine: sa.Engine, registry: Registry, period: Period, by: str, min_group: int
) -> list[Row]:
    """Launches and distinct launching users per key; keys with no launches left out."""
    ud, ds = T_USAGE_DAY, T_DAY_STATS
    table = ds if by in ("day", "month") else ud
    count_key: sa.ColumnElement[Any]
    if by == "app":
        count_key = ud.c.app_id
    elif by == "category":
        count_key = category_key(registry, ud.c.app_id)
    elif by == "department":
        count_key = dept(ud.c.department)
    elif by == "day":
        count_key = day_key(engine, ds.c.day)
    elif by == "month":
        count_key = month_key(engine, ds.c.day)
    else:
        raise BadRequest(f"unknown breakdown {by!r}")
    counts = sa.select(count_key, sa.func.sum(table.c.launches))
    counts = counts.where(between(table.c.day, period)).group_by(count_key)
    with connect(engine) as conn:
        launch_counts = {key_of(k): int(n) for k, n in conn.execute(counts)}
        if by == "day":
            query = sa.select(count_key, ds.c.launchers).where(between(ds.c.day, period))
            user_counts = {key_of(k): int(n) for k, n in conn.execute(query)}
        elif by == "month":
            user_counts = {k: n for k, (_, n) in spans.monthly_users(conn, period).items()}
        elif by == "app" and period.whole_months == 1:  # a calendar month: counted already
            m = T_MONTH_APP
            query = sa.select(m.c.app_id, m.c.users).where(m.c.month == period.start)
            user_counts = {k: int(n) for k, n in conn.execute(query)}
        elif by == "app":
            user_counts = spans.count_users(conn, spans.app_rows(period, lambda w: w.c.app_id))
        elif by == "category":
            user_counts = spans.category_users(conn, registry, period)
        else:
            selects = spans.user_rows(period, lambda w: dept(w.c.department), launched=True)
            user_counts = spans.count_users(conn, selects)
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
    with connect(engine) as conn:
        if period.whole_months == 1:
            query = sa.select(ms.c.active_users, ms.c.launchers, ms.c.launches, ms.c.signins)
            found = conn.execute(query.where(ms.c.month == period.start)).first()
            active, launchers, n_launches, signins = found or (0, 0, 0, 0)
        else:
            totals = sa.select(
                sa.func.coalesce(sa.func.sum(ds.c.launches), 0),
                sa.func.coalesce(sa.func.sum(ds.c.signins), 0),
            ).where(between(ds.c.day, period))
            n_launches, signins = conn.execute(totals).one()
            active, launchers = spans.active_and_launchers(conn, period)
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
    with connect(engine) as conn:
        if by == "day":
            query = sa.select(day_key(engine, ds.c.day), ds.c.active_users, ds.c.launchers)
            found = {
                key_of(k): (int(n), int(lu))
                for k, n, lu in conn.execute(query.where(between(ds.c.day, period)))
                if n
            }
        else:
            found = spans.monthly_users(conn, period)
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
    with connect(engine) as conn:
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
        month = month_end(month) + dt.timedelta(days=1)
    return rows


def app_trends(
    engine: sa.Engine, months: Sequence[dt.date], min_group: int
) -> dict[str, list[Row]]:
    """Per app, launches and distinct users per month (for small multiples)."""
    m = T_MONTH_APP
    query = sa.select(m).where(m.c.month >= months[0], m.c.month <= months[-1])
    with connect(engine) as conn:
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
    with connect(engine) as conn:
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
    with connect(engine) as conn:
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
        month = month_end(month) + dt.timedelta(days=1)
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
            month, offset = month_end(month) + dt.timedelta(days=1), offset + 1
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
    active_recently = sa.exists().where(u.c.user_id == um.c.user_id, between(u.c.day, recent))
    department = dept(um.c.department)
    query = (
        sa.select(department.label("key"), sa.func.count())
        .where(um.c.month == baseline.start, ~active_recently)
        .group_by(department)
        .order_by(department)
    )
    with connect(engine) as conn:
        rows = [{"key": k, "users": int(n)} for k, n in conn.execute(query)]
    total = sum(r["users"] for r in rows)
    return {
        "baseline": baseline.start.isoformat()[:7],
        "users": total if total >= min_group else None,
        "rows": suppress_rows(rows, min_group),
    }


def departments(engine: sa.Engine, registry: Registry, period: Period, min_group: int) -> list[Row]:
    """Active users per department, and their share of head count where the registry has it."""
    with connect(engine) as conn:
        counts = spans.count_users(conn, spans.user_rows(period, lambda w: dept(w.c.department)))
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


def data_range(engine: sa.Engine) -> tuple[dt.date, dt.date] | None:
    m = T_MONTH_STATS
    with connect(engine) as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(m.c.month), sa.func.max(m.c.month))).one()
    return (lo, hi) if lo is not None else None

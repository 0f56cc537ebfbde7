"""Report queries: pure functions of (engine, registry, period, …) -> rows. No HTTP here.

Everything reads the rollup tables of :mod:`launcher.reports.rollups`, never raw events;
distinct users over a period come from bitmaps of who was active (:mod:`launcher.reports.distinct`).
Privacy: every count is published with the cell-key method's small, consistent noise
(:mod:`launcher.reports.cellkey`), and any figure about fewer distinct users than the minimum
group size is suppressed. The noise is what stops subtraction across figures and tables
(total minus the other rows, a category minus its apps, one period minus an overlapping one),
so a table no longer hides a second row beside a suppressed one: the difference between a
total and the rows shown is the hidden figure give or take the sum of their noises.
``exact=True`` skips the noise: for tests of the rollups' arithmetic and the attack tests'
control run only; no view or command passes it.

Longer than the house's ~400 lines: one function per table of the reports page, each a few
dozen lines over the same rollups, noise and suppression; a module per table would scatter
the one privacy rule they all follow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pyroaring import AbstractBitMap, BitMap

from launcher.dates import month_end, month_of
from launcher.errors import BadRequest
from launcher.registry import Registry
from launcher.reports import distinct
from launcher.reports.cellkey import MOD, NONE, Count, shown
from launcher.reports.distinct import EACH
from launcher.reports.people import ANY
from launcher.reports.periods import Period, go_live_baseline, month_period
from launcher.reports.rollups import (
    T_COHORT_MONTH,
    T_DAY_STATS,
    T_MONTH_APP,
    T_MONTH_CELL,
    T_MONTH_STATS,
    T_USAGE_DAY,
    T_USAGE_MONTH,
)
from launcher.reports.sql import (
    UNKNOWN,
    between,
    connect,
    day_key,
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
    """Suppress each row about 1 to min_group - 1 users (the decision is made on the true
    count, before noise). No complementary suppression: see the module docstring."""
    return [suppress(r, min_group, users_key) for r in rows]


# --- the launches report (the Report API in the README) -------------------------------------------
def launches(
    engine: sa.Engine,
    registry: Registry,
    period: Period,
    by: str,
    min_group: int,
    *,
    exact: bool = False,
) -> list[Row]:
    """Launches and distinct launching users per key; keys with no launches left out."""
    ds = T_DAY_STATS
    count_key: sa.ColumnElement[Any]
    if by == "day":
        count_key = day_key(engine, ds.c.day)
    elif by == "month":
        count_key = month_key(engine, ds.c.day)
    elif by not in ("app", "category", "department"):
        raise BadRequest(f"unknown breakdown {by!r}")
    user_counts: dict[str, Count]
    launch_counts: dict[str, Count]
    with connect(engine) as conn:
        if by in ("day", "month"):
            counts = sa.select(
                count_key, sa.func.sum(ds.c.launches), sa.func.sum(ds.c.launches_key)
            )
            counts = counts.where(between(ds.c.day, period)).group_by(count_key)
            launch_counts = {key_of(k): _count(n, lk) for k, n, lk in conn.execute(counts)}
        else:
            launch_counts = {}
            category = {app.id: app.category or "other" for app in registry.apps}
            sums = launch_sums(conn, period, by != "department", by == "department")
            for (a, d), (launches_n, lk) in sums.items():
                k = a if by == "app" else category.get(a, "other") if by == "category" else d
                before = launch_counts.get(k, NONE)
                launch_counts[k] = (before[0] + launches_n, (before[1] + lk) % MOD)
        if by == "day":
            query = sa.select(count_key, ds.c.launchers, ds.c.launchers_key)
            query = query.where(between(ds.c.day, period))
            user_counts = {key_of(k): _count(n, uk) for k, n, uk in conn.execute(query)}
        elif by == "month":
            user_counts = {k: n for k, (_, n) in monthly_users(conn, period).items()}
        elif by == "app" and period.whole_months == 1:  # a calendar month: counted already
            m = T_MONTH_APP
            query = sa.select(m.c.app_id, m.c.users, m.c.users_key)
            query = query.where(m.c.month == period.start)
            user_counts = {k: _count(n, uk) for k, n, uk in conn.execute(query)}
        elif by in ("app", "category"):
            count = distinct.Counter(conn)
            apps = distinct.people(conn, period, "launched", app=EACH)
            if by == "app":
                user_counts = {a: count(people) for (a, _), people in apps.items()}
            else:
                category = {app.id: app.category or "other" for app in registry.apps}
                grouped: dict[str, list[Any]] = {}
                for (a, _), people in apps.items():
                    grouped.setdefault(category.get(a, "other"), []).append(people)
                user_counts = {c: count(distinct.union(p)) for c, p in grouped.items()}
        else:
            count = distinct.Counter(conn)
            found = distinct.people(conn, period, "launched", department=EACH)
            user_counts = {d: count(people) for (_, d), people in found.items()}
    out = []
    for k, n in sorted(launch_counts.items()):
        if n[0] <= 0:
            continue
        users = user_counts.get(k, NONE)
        row: Row = {"key": k, "launches": shown(n, exact), "users": shown(users, exact)}
        # every launch is by one of the users: the published pair keeps that true
        row["launches"] = max(row["launches"], row["users"])
        out.append(_hide(row) if 0 < users[0] < min_group else row)
    return out


def launch_sums(
    conn: sa.Connection, period: Period, by_app: bool, by_department: bool
) -> dict[tuple[str, str], Count]:
    """Launches with their cell keys per (app, department) in the period -- ANY where not
    asked for by it; the unknown department is "unknown". Whole months from usage_month, the
    days at the edges from usage_day: about 60 rows per key for five years, not 1,800. Read
    once per period within distinct.shared() (a page asks for it by app, category, department
    and both)."""
    found = distinct.memoized(("launch_sums", period), lambda: _launch_sums(conn, period))
    out: dict[tuple[str, str], Count] = {}
    for (a, d), (n, k) in found.items():
        key = (a if by_app else ANY, d if by_department else ANY)
        before = out.get(key, NONE)
        out[key] = (before[0] + n, (before[1] + k) % MOD)
    return out


def _launch_sums(conn: sa.Connection, period: Period) -> dict[tuple[str, str], Count]:
    p = distinct.parts(period)
    selects: list[sa.Select[Any]] = []
    for tbl, when, ranges in (
        (T_USAGE_MONTH, T_USAGE_MONTH.c.month, [(p.first, p.last)] if p.first else []),
        (T_USAGE_DAY, T_USAGE_DAY.c.day, [(d.start, d.end) for d in p.days]),
    ):
        if not ranges:
            continue
        keys = (tbl.c.app_id, tbl.c.department)
        query = sa.select(*keys, sa.func.sum(tbl.c.launches), sa.func.sum(tbl.c.launches_key))
        query = query.where(sa.or_(*(sa.and_(when >= lo, when <= hi) for lo, hi in ranges)))
        selects.append(query.group_by(*keys))
    out: dict[tuple[str, str], Count] = {}
    for query in selects:
        for row in conn.execute(query):
            a, d, n, k = str(row[0]), str(row[1]), int(row[2] or 0), int(row[3] or 0)
            key = (a, d or UNKNOWN)
            before = out.get(key, NONE)
            out[key] = (before[0] + n, (before[1] + k) % MOD)
    return out


def _count(n: Any, k: Any) -> Count:
    return int(n or 0), int(k or 0) % MOD


def active_and_launchers(conn: sa.Connection, period: Period) -> tuple[Count, Count]:
    """Distinct users active in the period, and how many of them launched, each with its
    cell key."""
    count = distinct.Counter(conn)
    active = distinct.people(conn, period, "active").get((ANY, ANY))
    launched = distinct.people(conn, period, "launched").get((ANY, ANY))
    return count(active), count(launched)


def monthly_users(conn: sa.Connection, period: Period) -> dict[str, tuple[Count, Count]]:
    """Per month of the period with activity: (active users, launchers). A month the period
    covers whole was counted already (month_stats); one it covers in part, from bitmaps."""
    out: dict[str, tuple[Count, Count]] = {}
    whole = []
    for month in period.months():
        days = Period(max(period.start, month), min(period.end, month_end(month)))
        if days.whole_months:
            whole.append(month)
            continue
        users, launchers = active_and_launchers(conn, days)
        if users[0]:
            out[month.isoformat()[:7]] = (users, launchers)
    m = T_MONTH_STATS
    query = sa.select(
        m.c.month, m.c.active_users, m.c.active_key, m.c.launchers, m.c.launchers_key
    ).where(m.c.month.in_(whole))
    for month, users, users_key, launchers, launchers_key in conn.execute(query):
        if users:
            out[month.isoformat()[:7]] = (
                _count(users, users_key),
                _count(launchers, launchers_key),
            )
    return out


def app_departments(
    engine: sa.Engine, period: Period, min_group: int, *, exact: bool = False
) -> list[Row]:
    """Launches and distinct launching users per app x department (the decline view's
    table), protected like every other table: a cell about fewer than the minimum is hidden,
    and every count carries its cell's noise, so a department's total minus its apps is no
    exact count."""
    with connect(engine) as conn:
        launch_counts = launch_sums(conn, period, True, True)
        count = distinct.Counter(conn)
        found = distinct.people(conn, period, "launched", app=EACH, department=EACH)
        user_counts = {key: count(people) for key, people in found.items()}
    out: list[Row] = []
    for (app, department_key), n in sorted(launch_counts.items()):
        if n[0] <= 0:
            continue
        users = user_counts.get((app, department_key), NONE)
        row: Row = {
            "key": f"{app}/{department_key}",
            "app": app,
            "department": department_key,
            "launches": shown(n, exact),
            "users": shown(users, exact),
        }
        row["launches"] = max(row["launches"], row["users"])
        if 0 < users[0] < min_group:
            row = {**_hide(row), "app": app, "department": department_key}
        out.append(row)
    return out


# --- headline figures and comparisons -----------------------------------------------------
METRICS = ("active_users", "launches", "launches_per_user", "signins", "launcher_share")


def summary(engine: sa.Engine, period: Period) -> dict[str, Count]:
    """The period's totals, each with its cell key."""
    ds, ms = T_DAY_STATS, T_MONTH_STATS
    with connect(engine) as conn:
        if period.whole_months == 1:
            query = sa.select(
                ms.c.active_users,
                ms.c.active_key,
                ms.c.launchers,
                ms.c.launchers_key,
                ms.c.launches,
                ms.c.launches_key,
                ms.c.signins,
                ms.c.signins_key,
            )
            found = conn.execute(query.where(ms.c.month == period.start)).first()
            v = tuple(found) if found else (0,) * 8
            active, launchers = _count(v[0], v[1]), _count(v[2], v[3])
            n_launches, signins = _count(v[4], v[5]), _count(v[6], v[7])
        else:
            totals = sa.select(
                sa.func.sum(ds.c.launches),
                sa.func.sum(ds.c.launches_key),
                sa.func.sum(ds.c.signins),
                sa.func.sum(ds.c.signins_key),
            ).where(between(ds.c.day, period))
            nl, kl, ns, ks = conn.execute(totals).one()
            n_launches, signins = _count(nl, kl), _count(ns, ks)
            active, launchers = active_and_launchers(conn, period)
    return {
        "active_users": active,
        "launchers": launchers,
        "launches": n_launches,
        "signins": signins,
    }


def _metrics(
    raw: dict[str, Count], min_group: int, exact: bool = False
) -> dict[str, float | int | None]:
    active_n, launchers_n = raw["active_users"][0], raw["launchers"][0]
    if active_n == 0:
        return {
            "active_users": 0,
            "launches": 0,
            "launches_per_user": None,
            "signins": 0,
            "launcher_share": None,
        }
    if active_n < min_group:
        return dict.fromkeys(METRICS)
    # whether to hide is decided on the true counts; what is shown is the published ones
    idle = active_n - launchers_n
    share_hidden = 0 < launchers_n < min_group or 0 < idle < min_group
    active = shown(raw["active_users"], exact)
    n_launches = shown(raw["launches"], exact)
    launchers = min(shown(raw["launchers"], exact), active)
    return {
        "active_users": active,
        "launches": n_launches,
        "launches_per_user": round(n_launches / active, 2),
        "signins": shown(raw["signins"], exact),
        "launcher_share": None if share_hidden else round(launchers / active, 4),
    }


def _change(now: float | int | None, then: float | int | None) -> float | None:
    if now is None or then is None or then == 0:
        return None
    return round((now - then) / then, 4)


def comparison(
    engine: sa.Engine, registry: Registry, period: Period, min_group: int, *, exact: bool = False
) -> dict[str, Any]:
    """Each headline metric with its change against the previous period and against go-live."""
    previous = period.previous()
    baseline = go_live_baseline(registry.portal.go_live, period)
    threshold = registry.portal.decline_threshold
    now = _metrics(summary(engine, period), min_group, exact)
    before = _metrics(summary(engine, previous), min_group, exact)
    base = (
        _metrics(summary(engine, baseline), min_group, exact)
        if baseline
        else dict.fromkeys(METRICS)
    )
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
                # only a drop past the registry's threshold: a flag on every dip means nothing
                "decline": bool((vs_prev or 0) <= -threshold or (vs_base or 0) <= -threshold),
            }
        )
    return {
        "threshold": threshold,
        "previous": {"from": previous.start.isoformat(), "to": previous.end.isoformat()},
        "go_live": (
            {"from": baseline.start.isoformat(), "to": baseline.end.isoformat()}
            if baseline
            else None
        ),
        "rows": rows,
    }


# --- over time ----------------------------------------------------------------------------
def active_users(
    engine: sa.Engine, period: Period, by: str, min_group: int, *, exact: bool = False
) -> list[Row]:
    """Distinct users who signed in or launched (and who launched) per day or month."""
    ds = T_DAY_STATS
    found: dict[str, tuple[Count, Count]]
    with connect(engine) as conn:
        if by == "day":
            query = sa.select(
                day_key(engine, ds.c.day),
                ds.c.active_users,
                ds.c.active_key,
                ds.c.launchers,
                ds.c.launchers_key,
            )
            found = {
                key_of(k): (_count(n, nk), _count(lu, lk))
                for k, n, nk, lu, lk in conn.execute(query.where(between(ds.c.day, period)))
                if n
            }
        else:
            found = monthly_users(conn, period)
    out: list[Row] = []
    for key, (users, launchers) in sorted(found.items()):
        if users[0] < min_group:
            out.append({"key": key, "users": None, "launchers": None, "suppressed": True})
            continue
        active = shown(users, exact)
        row: Row = {"key": key, "users": active, "launchers": min(shown(launchers, exact), active)}
        if 0 < launchers[0] < min_group or 0 < users[0] - launchers[0] < min_group:
            row["launchers"] = None  # it would tell about fewer than k people
        out.append(row)
    return out


def adoption_curve(
    engine: sa.Engine,
    first_month: dt.date,
    last_month: dt.date,
    min_group: int,
    *,
    exact: bool = False,
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
        users = _count(r.active_users, r.active_key) if r else NONE
        row: Row = {
            "key": month.isoformat()[:7],
            "users": shown(users, exact),
            "launches": shown(_count(r.launches, r.launches_key), exact) if r else 0,
            "signins": shown(_count(r.signins, r.signins_key), exact) if r else 0,
        }
        rows.append(_hide(row) if 0 < users[0] < min_group else row)
        month = month_end(month) + dt.timedelta(days=1)
    return rows


def app_trends(
    engine: sa.Engine, months: Sequence[dt.date], min_group: int, *, exact: bool = False
) -> dict[str, list[Row]]:
    """Per app, launches and distinct users per month (for small multiples)."""
    m = T_MONTH_APP
    query = sa.select(m).where(m.c.month >= months[0], m.c.month <= months[-1])
    with connect(engine) as conn:
        found = {(r.app_id, r.month): r for r in conn.execute(query)}
    apps = sorted({app for app, _ in found})
    out: dict[str, list[Row]] = {app: [] for app in apps}
    for month in months:
        for app in apps:
            r = found.get((app, month))
            users = _count(r.users, r.users_key) if r else NONE
            row: Row = {
                "key": month.isoformat()[:7],
                "launches": shown(_count(r.launches, r.launches_key), exact) if r else 0,
                "users": shown(users, exact),
            }
            out[app].append(_hide(row) if 0 < users[0] < min_group else row)
    return out


def heatmap(engine: sa.Engine, period: Period, min_group: int, *, exact: bool = False) -> list[Row]:
    """Launches per weekday (0 = Monday) x hour in the portal's time zone, over the months of
    the period. A cell is shown only when every month that has launches in it had enough
    distinct users there."""
    c = T_MONTH_CELL
    query = (
        sa.select(
            c.c.weekday,
            c.c.hour,
            sa.func.sum(c.c.launches),
            sa.func.sum(c.c.launches_key),
            sa.func.min(c.c.users),
        )
        .where(c.c.month >= month_of(period.start), c.c.month <= month_of(period.end))
        .group_by(c.c.weekday, c.c.hour)
    )
    with connect(engine) as conn:
        found = {(w, h): (_count(n, k), int(u)) for w, h, n, k, u in conn.execute(query)}
    out: list[Row] = []
    for weekday in range(7):
        for hour in range(24):
            launches_count, users = found.get((weekday, hour), (NONE, 0))
            if 0 < users < min_group:
                out.append({"weekday": weekday, "hour": hour, "launches": None, "suppressed": True})
            else:
                out.append(
                    {"weekday": weekday, "hour": hour, "launches": shown(launches_count, exact)}
                )
    return out


def cohorts(
    engine: sa.Engine,
    first_month: dt.date,
    last_month: dt.date,
    min_group: int,
    *,
    exact: bool = False,
) -> list[Row]:
    """Users grouped by the month they were first seen; share still active in later months.
    A cohort of fewer than the minimum is hidden whole; a later month with fewer than the
    minimum of it active shows no share (both counts carry noise, so the share's complement
    is no exact count either)."""
    c = T_COHORT_MONTH
    query = sa.select(c).where(
        c.c.cohort >= first_month, c.c.cohort <= last_month, c.c.month <= last_month
    )
    with connect(engine) as conn:
        found: dict[dt.date, dict[dt.date, Count]] = {}
        for r in conn.execute(query):
            found.setdefault(r.cohort, {})[r.month] = _count(r.users, r.users_key)
    rows: list[Row] = []
    for cohort in sorted(found):
        size = found[cohort].get(cohort, NONE)
        if size[0] < min_group:
            rows.append(
                {
                    "cohort": cohort.isoformat()[:7],
                    "size": None,
                    "suppressed": True,
                    "retention": [],
                }
            )
            continue
        size_shown = shown(size, exact)
        retention = []
        month, offset = cohort, 0
        while month <= last_month:
            active = found[cohort].get(month, NONE)
            small = 0 < active[0] < min_group
            share = None if small else round(min(shown(active, exact), size_shown) / size_shown, 4)
            retention.append({"month": month.isoformat()[:7], "offset": offset, "share": share})
            month, offset = month_end(month) + dt.timedelta(days=1), offset + 1
        rows.append({"cohort": cohort.isoformat()[:7], "size": size_shown, "retention": retention})
    return rows


def dormant(
    engine: sa.Engine, registry: Registry, today: dt.date, min_group: int, *, exact: bool = False
) -> dict[str, Any]:
    """Users active in the first full month after go-live but not in the last 30 days --
    people who stopped using the portal. Leavers are left out: no sign-in (no activity) for
    ``portal.leaver_days`` days means someone who left the organisation, not a lost user;
    they are counted apart."""
    baseline = go_live_baseline(registry.portal.go_live, month_period(today))
    leaver_days = registry.portal.leaver_days
    if baseline is None:
        return {"baseline": None, "users": None, "rows": [], "leavers": None}
    recent = Period(today - dt.timedelta(days=29), today)
    present = Period(today - dt.timedelta(days=leaver_days - 1), today)
    with connect(engine) as conn:
        count = distinct.Counter(conn)
        everyone = distinct.people(conn, baseline, "active").get((ANY, ANY), BitMap())
        if not everyone:
            # the baseline month's people may be past the retention (rebuild.purge_people):
            # its count is kept, who was in it is not -- so dormancy is no longer known
            ms = T_MONTH_STATS
            had = conn.execute(sa.select(ms.c.active_users).where(ms.c.month == baseline.start))
            if (had.scalar() or 0) > 0:
                return {
                    "baseline": baseline.start.isoformat()[:7],
                    "users": None,
                    "rows": [],
                    "leavers": None,
                    "leaver_days": leaver_days,
                    "past_retention": True,
                }
        by_dept = distinct.people(conn, baseline, "active", department=EACH)
        lately = distinct.people(conn, recent, "active").get((ANY, ANY), BitMap())
        still = distinct.people(conn, present, "active").get((ANY, ANY), BitMap())
        # each person in one department, the greatest of the month's (as user_month keeps)
        counted, counts = BitMap(), []

        def raw(
            item: tuple[tuple[str, str], AbstractBitMap],
        ) -> str:  # "" is the unknown department
            return "" if item[0][1] == UNKNOWN else item[0][1]

        for (_, key), members in sorted(by_dept.items(), key=raw, reverse=True):
            mine = members - counted
            counted |= members
            dormant_here = (mine & still) - lately
            if dormant_here:
                counts.append((key, count(dormant_here)))
        counts.sort()
        leavers = count(everyone - still)
    total: Count = NONE
    rows: list[Row] = []
    for key, n in counts:
        total = (total[0] + n[0], (total[1] + n[1]) % MOD)
        row: Row = {"key": key, "users": shown(n, exact)}
        rows.append(_hide(row) if 0 < n[0] < min_group else row)
    return {
        "baseline": baseline.start.isoformat()[:7],
        "users": shown(total, exact) if total[0] >= min_group else None,
        "rows": rows,
        "leavers": shown(leavers, exact) if not 0 < leavers[0] < min_group else None,
        "leaver_days": leaver_days,
    }


def departments(
    engine: sa.Engine, registry: Registry, period: Period, min_group: int, *, exact: bool = False
) -> list[Row]:
    """Active users per department, and their share of head count where the registry has it."""
    with connect(engine) as conn:
        count = distinct.Counter(conn)
        found = distinct.people(conn, period, "active", department=EACH)
        counts = {d: count(people) for (_, d), people in found.items()}
    for dep in registry.departments:  # departments that never arrived still get a row
        counts.setdefault(dep.id, NONE)
    # the headcount in force when the period starts (registry: one number or one per date)
    heads = {d.id: d.headcount_at(period.start) for d in registry.departments}
    names = {d.id: d.name for d in registry.departments}
    out = []
    for key, n in sorted(counts.items()):
        row: Row = {"key": key, "users": shown(n, exact)}
        if 0 < n[0] < min_group:
            row = _hide(row)
        headcount = heads.get(key)
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
                "name": names[key].en if key in names else None,
            }
        )
    return out


def data_range(engine: sa.Engine) -> tuple[dt.date, dt.date] | None:
    m = T_MONTH_STATS
    with connect(engine) as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(m.c.month), sa.func.max(m.c.month))).one()
    return (lo, hi) if lo is not None else None

"""The front door: imported sign-ins against the portal's launches (launcher/signins).

Rows for ``GET /api/v1/reports/gateway``: per app, department or month, the successful
interactive sign-ins at the identity provider to apps that have a tile, how many came through
the portal (``via_portal``), their ``share`` and the distinct users; ``by=unregistered`` lists
the apps people sign in to that have no tile, by the provider's app name.

Read from the gateway rollups only (launcher/signins/rollups.py): signin_day for counts; for
distinct users the span rows (months as bits) for the months the period covers whole, and the
month rows (days as bits) for a month it covers in part -- per user and app for the apps, per
person for the organisation, the departments and the months. A year thus reads about one row
per person (and app), not one per day.
Privacy, as the launch reports (launcher/reports/queries.py): every count is published with
the cell-key method's small, consistent noise (launcher/reports/cellkey.py: signin_day keeps
the sum of its sign-ins' record keys beside each count, the per-person rows the person key),
which is what stops subtraction across overlapping periods and linked tables (1-31 October
minus 1-30 October, a department minus its apps, the total minus the rows shown); a row about
fewer than the minimum group is suppressed (decided on the true count); ``via_portal`` and
``share`` are left out when the people who came through the portal, or those who never did,
are fewer than that. The share is computed from the published (noisy) counts, so that it is
the quotient of the two figures a reader sees. ``exact=True`` skips the noise: for tests of
the rollups' arithmetic and the attack tests' control run only; no view or command passes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from launcher.dates import month_end
from launcher.errors import BadRequest
from launcher.reports.cellkey import MOD, NONE, Count, shown
from launcher.reports.periods import Period
from launcher.reports.queries import Row
from launcher.reports.sql import UNKNOWN, between, connect, dept, key_of, month_key
from launcher.signins import rollups as signin_rollups
from launcher.signins.rollups import (
    T_MONTH_USERS,
    T_PERSON_MONTH,
    T_PERSON_SPAN,
    T_SIGNIN_DAY,
    T_USER_MONTH,
    T_USER_SPAN,
)

BY_VALUES: tuple[str, ...] = ("app", "department", "month", "unregistered")


def _key(engine: sa.Engine, by: str, t: sa.Table) -> sa.ColumnElement[Any]:
    if by == "app":
        return t.c.app_id
    if by == "department":
        return dept(t.c.department)
    if by == "unregistered":
        return t.c.provider_app
    if by == "month":
        return month_key(engine, t.c.month if "month" in t.c else t.c.day)
    raise BadRequest(f"unknown breakdown {by!r}: use one of {', '.join(BY_VALUES)}")


def _registered(t: sa.Table, by: str) -> sa.ColumnElement[bool]:
    return t.c.app_id == "" if by == "unregistered" else t.c.app_id != ""


def _parts(period: Period) -> tuple[dict[int, list[dt.date]], list[tuple[dt.date, int]]]:
    """The period's whole months by the span row that holds them (a span row of year Y holds
    Y and Y + 1), and (month, mask of its days) for each month it covers in part."""
    whole: dict[int, list[dt.date]] = {}
    parts: list[tuple[dt.date, int]] = []
    for month in period.months():
        days = Period(max(period.start, month), min(period.end, month_end(month)))
        if days.whole_months:
            span = period.start.year + (month.year - period.start.year) // 2 * 2
            whole.setdefault(span, []).append(month)
        else:
            mask = sum(1 << (d - 1) for d in range(days.start.day, days.end.day + 1))
            parts.append((month, mask))
    return whole, parts


def _bit(span: int, month: dt.date) -> int:
    return 1 << ((month.year - span) * 12 + month.month - 1)


def _user_rows(engine: sa.Engine, period: Period, by: str | None) -> list[sa.Select[Any]]:
    """Selects of (key, user_id, via, person_key) from the span and month rows the period
    reads: per user and app for ``by`` app and unregistered, else per person (apps with a
    tile)."""
    person = by in (None, "department")
    st, mt = (T_PERSON_SPAN, T_PERSON_MONTH) if person else (T_USER_SPAN, T_USER_MONTH)

    def key(t: sa.Table, month: dt.date) -> sa.ColumnElement[Any]:
        return sa.literal("all") if by is None else _key(engine, by, t)

    def select(
        t: sa.Table, month: dt.date, where: sa.ColumnElement[bool], bits: Any, via: Any, mask: int
    ) -> sa.Select[Any]:
        stmt = sa.select(
            key(t, month).label("key"),
            t.c.user_id,
            sa.case((via.op("&")(mask) != 0, 1), else_=0).label("via"),
            t.c.person_key,
        ).where(where, bits.op("&")(mask) != 0)
        return stmt if person else stmt.where(_registered(t, by or "app"))

    whole, parts = _parts(period)
    selects = []
    for span, months in whole.items():
        mask = sum(_bit(span, m) for m in months)
        selects.append(select(st, months[0], st.c.year == span, st.c.months, st.c.via_months, mask))
    for month, mask in parts:
        selects.append(select(mt, month, mt.c.month == month, mt.c.days, mt.c.via_days, mask))
    return selects


Figures = list[Count]  # [signins, via_portal, users, users who came through the portal]


def _count(n: Any, k: Any) -> Count:
    return int(n or 0), int(k or 0) % MOD


def _month_users(engine: sa.Engine, period: Period) -> dict[str, tuple[Count, Count]]:
    """Per month of the period, the people (apps with a tile) with a sign-in, and with one
    through the portal, with their cell keys: for the whole months one pass over the span
    rows summing a bit test per month, for a month in part one pass over its month rows."""
    st, mt = T_PERSON_SPAN, T_PERSON_MONTH

    def has(t: sa.Table, column: Any, mask: int) -> list[sa.ColumnElement[Any]]:
        hit = column.op("&")(mask) != 0
        return [
            sa.func.sum(sa.case((hit, 1), else_=0)),
            sa.func.sum(sa.case((hit, t.c.person_key), else_=0)),
        ]

    def counts(sums: Sequence[Any]) -> tuple[Count, Count]:
        return _count(sums[0], sums[1]), _count(sums[2], sums[3])

    whole, parts = _parts(period)
    out: dict[str, tuple[Count, Count]] = {}
    with connect(engine) as conn:
        for span, months in whole.items():
            bits = [_bit(span, m) for m in months]
            columns = [
                x for b in bits for c in (st.c.months, st.c.via_months) for x in has(st, c, b)
            ]
            sums = conn.execute(sa.select(*columns).where(st.c.year == span)).one()
            for i, m in enumerate(months):
                out[m.strftime("%Y-%m")] = counts(sums[4 * i : 4 * i + 4])
        for month, mask in parts:
            sums = conn.execute(
                sa.select(*has(mt, mt.c.days, mask), *has(mt, mt.c.via_days, mask)).where(
                    mt.c.month == month, mt.c.days.op("&")(mask) != 0
                )
            ).one()
            out[month.strftime("%Y-%m")] = counts(sums)
    return out


def _figures(engine: sa.Engine, period: Period, by: str | None) -> dict[str, Figures]:
    """key -> [signins, via_portal, users, users who came through the portal], each a
    (count, cell key)."""
    d = T_SIGNIN_DAY
    key = sa.literal("all") if by is None else _key(engine, by, d)
    counts = (
        sa.select(
            key,
            sa.func.sum(d.c.signins),
            sa.func.sum(d.c.via_portal),
            sa.func.sum(d.c.signins_key),
            sa.func.sum(d.c.via_key),
        )
        .where(between(d.c.day, period), _registered(d, by or "app"))
        .group_by(key)
    )
    out: dict[str, Figures] = {}
    with connect(engine) as conn:
        for k, n, via, n_key, via_key in conn.execute(counts):
            if n:
                out[key_of(k)] = [_count(n, n_key), _count(via, via_key), NONE, NONE]
    for k, (n, via_users, known) in _people(engine, period, by).items():
        if k in out:
            out[k][2:] = [n, via_users]
            if not known:
                out[k].append(NONE)  # a fifth figure: the people are a lower bound only
    return out


People = tuple[Count, Count, bool]  # people, those through the portal, whether known


def _live(engine: sa.Engine, period: Period, by: str | None) -> dict[str, tuple[Count, Count]]:
    return _month_users(engine, period) if by == "month" else _users(engine, period, by)


def _people(engine: sa.Engine, period: Period, by: str | None) -> dict[str, People]:
    """key -> (people, people who came through the portal, known). From the per-person rows;
    for the months before them that the retention purged (launcher/signins/rollups.py
    ``purge_people``), from the counts of each month kept in signin_month_users. A key whose
    period is one whole purged month, or lies within the kept months, has its people known;
    otherwise distinct people across those parts cannot be counted any more: the people are
    then the largest count of a whole month -- a lower bound, for the suppression only."""
    with connect(engine) as conn:
        horizon = signin_rollups.purged_before(conn)
    if horizon is None or period.start >= horizon:
        return {k: (n, v, True) for k, (n, v) in _live(engine, period, by).items()}
    units: dict[str, list[People]] = {}
    if period.end >= horizon:
        for k, (n, v) in _live(engine, Period(horizon, period.end), by).items():
            units.setdefault(k, []).append((n, v, True))
    m = T_MONTH_USERS
    kind = "all" if by in (None, "month") else by
    old = [month for month in period.months() if month < horizon]
    with connect(engine) as conn:
        rows = conn.execute(
            sa.select(m).where(m.c.kind == kind, m.c.month.in_(old)).order_by(m.c.month)
        ).all()
    for row in rows:
        month = dt.date.fromisoformat(row.month) if isinstance(row.month, str) else row.month
        whole = period.start <= month and month_end(month) <= period.end
        if by == "month":
            k = month.strftime("%Y-%m")
        elif by is None:
            k = "all"
        else:
            k = UNKNOWN if by == "department" and row.key == "" else row.key
        n, v = (row.users, row.users_key), (row.via_users, row.via_users_key)
        units.setdefault(k, []).append((_count(*n), _count(*v), whole))
    out: dict[str, People] = {}
    for k, parts in units.items():
        if len(parts) == 1 and parts[0][2]:
            out[k] = parts[0]
        else:
            lower = max((p[0][0] for p in parts if p[2]), default=0)
            out[k] = ((lower, 0), NONE, False)
    return out


def _users(engine: sa.Engine, period: Period, by: str | None) -> dict[str, tuple[Count, Count]]:
    """key -> (people, people who came through the portal), with their cell keys, from the
    span and month rows."""
    selects = _user_rows(engine, period, by)
    rows = (sa.union_all(*selects) if len(selects) > 1 else selects[0]).subquery()
    if len(selects) > 1:
        # a person may be in several of the selects: once per key
        rows = (
            sa.select(
                rows.c.key,
                rows.c.user_id,
                sa.func.max(rows.c.via).label("via"),
                sa.func.max(rows.c.person_key).label("person_key"),
            )
            .group_by(rows.c.key, rows.c.user_id)
            .subquery()
        )
    # else each (key, person) is in one row: a span or month row is one person's (and app's)
    query = sa.select(
        rows.c.key,
        sa.func.count(),
        sa.func.sum(rows.c.person_key),
        sa.func.sum(rows.c.via),
        sa.func.sum(rows.c.via * rows.c.person_key),
    ).group_by(rows.c.key)
    with connect(engine) as conn:
        return {
            key_of(k): (_count(n, n_key), _count(via, via_key))
            for k, n, n_key, via, via_key in conn.execute(query)
        }


def _row(key: str, f: Figures, min_group: int, exact: bool) -> Row:
    """A row's published figures: noisy counts kept consistent with each other (through the
    portal <= sign-ins, people <= sign-ins), the share their quotient; suppression decided
    on the true counts. A row whose people are only a lower bound (a fifth figure, see
    :func:`_people`) shows its sign-ins only, and only when that bound is the minimum group."""
    signins, via, users, via_users = f[:4]
    known = len(f) == 4
    hide_via = not known or (
        0 < via_users[0] < min_group or 0 < users[0] - via_users[0] < min_group
    )
    n = shown(signins, exact)
    people = min(shown(users, exact), n) if known else None
    through = min(shown(via, exact), n)
    row: Row = {
        "key": key,
        "signins": n,
        "via_portal": None if hide_via else through,
        "share": None if hide_via else round(through / n, 3),
        "users": people,
    }
    small = 0 < users[0] < min_group if known else users[0] < min_group
    return _hide(row) if small else row


def _hide(row: Row) -> Row:
    return {**dict.fromkeys(row), "key": row.get("key"), "suppressed": True}


def gateway(
    engine: sa.Engine, period: Period, by: str, min_group: int, *, exact: bool = False
) -> list[Row]:
    """The gateway report's rows (``/api/v1/reports/gateway``, README), sorted by key;
    keys without sign-ins are left out."""
    figures = _figures(engine, period, by)
    rows: list[Row] = []
    for k, f in sorted(figures.items()):
        if by != "unregistered":
            rows.append(_row(k, f, min_group, exact))
            continue
        n, known = shown(f[0], exact), len(f) == 4
        row: Row = {"key": k, "signins": n, "users": min(shown(f[2], exact), n) if known else None}
        small = 0 < f[2][0] < min_group if known else f[2][0] < min_group
        rows.append(_hide(row) if small else row)
    return rows


def front_door(engine: sa.Engine, period: Period, min_group: int, *, exact: bool = False) -> Row:
    """The organisation-wide figures over apps with a tile: sign-ins, through the portal,
    share, distinct users (suppressed below the minimum group, as a row)."""
    figures = _figures(engine, period, None).get("all", [NONE, NONE, NONE, NONE])
    if figures[0][0] == 0:
        return {"signins": 0, "via_portal": 0, "share": None, "users": 0}
    row = _row("all", figures, min_group, exact)
    del row["key"]
    return row


def imported(engine: sa.Engine) -> tuple[dt.date, dt.date] | None:
    """The first and last day with imported sign-ins, or None when nothing was imported (the
    report then says how to import instead of showing zeros)."""
    d = T_SIGNIN_DAY
    with connect(engine) as conn:
        lo, hi = conn.execute(sa.select(sa.func.min(d.c.day), sa.func.max(d.c.day))).one()
    if lo is None:
        return None
    return (
        dt.date.fromisoformat(lo) if isinstance(lo, str) else lo,
        dt.date.fromisoformat(hi) if isinstance(hi, str) else hi,
    )

"""Distinct users over a period, from the span rollups (see rollups.span_bits).

One row per user (and app) with the months of two calendar years as bits; for a month the
period covers only in part, one index probe of the daily rollups per user who was active in
that month (:func:`_active_in`). So a report over a year reads about as many rows as there
are users, not one per user and day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from launcher.dates import month_end
from launcher.registry import Registry
from launcher.reports.cellkey import MOD, Count
from launcher.reports.periods import Period
from launcher.reports.rollups import (
    T_DAY_STATS,
    T_MONTH_STATS,
    T_USER_DAY,
    T_USER_DAY_APP,
    T_USER_SPAN,
    T_USER_SPAN_APP,
)
from launcher.reports.sql import between, key_of


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
            days = Period(max(within.start, month), min(within.end, month_end(month)))
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
            between(u.c.day, days),
            u.c.department == w.c.department,
        ]
        return (
            sa.exists().where(*probe, u.c.launches > 0) if launched else sa.exists().where(*probe)
        )

    return _active_in(w.c.launched if launched else w.c.active, span, active_on)


def user_rows(period: Period, key: Key, launched: bool = False) -> list[sa.Select[Any]]:
    """(key, user_id, person_key) of the users active in the period (who launched, with
    ``launched``); a user in several departments has a row in each."""
    w = T_USER_SPAN
    return [
        sa.select(key(w).label("key"), w.c.user_id, w.c.person_key).where(
            w.c.year == s.year, _user_in(s, launched)
        )
        for s in _spans(period)
    ]


def _count(n: Any, k: Any) -> Count:
    return int(n or 0), int(k or 0) % MOD


def active_and_launchers(conn: sa.Connection, period: Period) -> tuple[Count, Count]:
    """Distinct users active in the period, and how many of them launched, in one pass, each
    with its cell key (the sum of the people's keys).

    A period without a whole month has at most two months of days: grouping their user_day
    rows by user is cheaper than the span rows and a probe per user (on PostgreSQL, which
    probes slowly, about three times)."""
    spans = _spans(period)
    if not any(s.whole for s in spans):
        u = T_USER_DAY
        per_user = (
            sa.select(
                sa.func.max(u.c.launches).label("launches"),
                sa.func.max(u.c.person_key).label("pk"),
            )
            .where(between(u.c.day, period))
            .group_by(u.c.user_id)
            .subquery()
        )
    else:
        w = T_USER_SPAN
        selects = [
            sa.select(
                w.c.user_id,
                w.c.person_key,
                sa.case((_user_in(s, True), 1), else_=0).label("launched"),
            ).where(w.c.year == s.year, _user_in(s, False))
            for s in spans
        ]
        rows = sa.union_all(*selects).subquery() if len(selects) > 1 else selects[0].subquery()
        per_user = (
            sa.select(
                sa.func.max(rows.c.launched).label("launches"),
                sa.func.max(rows.c.person_key).label("pk"),
            )
            .group_by(rows.c.user_id)
            .subquery()
        )
    launched = per_user.c.launches > 0
    query = sa.select(
        sa.func.count(),
        sa.func.sum(per_user.c.pk),
        sa.func.count(sa.case((launched, 1))),
        sa.func.sum(sa.case((launched, per_user.c.pk), else_=0)),
    )
    users, users_key, launchers, launchers_key = conn.execute(query).one()
    return _count(users, users_key), _count(launchers, launchers_key)


def app_rows(
    period: Period, key: Key, apps: sa.ColumnElement[bool] | None = None
) -> list[sa.Select[Any]]:
    """(key, user_id, person_key) per app (of ``apps``, a condition on ``app_id``) a user
    launched in the period."""
    w, uda = T_USER_SPAN_APP, T_USER_DAY_APP

    def active_on(days: Period) -> sa.ColumnElement[bool]:
        return sa.exists().where(
            uda.c.app_id == w.c.app_id, uda.c.user_id == w.c.user_id, between(uda.c.day, days)
        )

    return [
        sa.select(key(w).label("key"), w.c.user_id, w.c.person_key).where(
            w.c.year == s.year,
            _active_in(w.c.months, s, active_on),
            sa.true() if apps is None else apps,
        )
        for s in _spans(period)
    ]


def category_users(conn: sa.Connection, registry: Registry, period: Period) -> dict[str, Count]:
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
        selects = app_rows(period, lambda w: w.c.app_id, test)
        rows = sa.union_all(*selects).subquery() if len(selects) > 1 else selects[0].subquery()
        people = sa.select(rows.c.user_id, rows.c.person_key).distinct().subquery()
        counts.append(
            sa.select(sa.literal(category), sa.func.count(), sa.func.sum(people.c.person_key))
        )
    return {k: _count(n, pk) for k, n, pk in conn.execute(sa.union_all(*counts)) if n}


def count_users(conn: sa.Connection, selects: list[sa.Select[Any]]) -> dict[str, Count]:
    """Distinct users per key of rows keyed by app or department, with their cell keys: one
    span's rows hold each (key, user) once, rows from several spans need deduplicating."""
    rows = selects[0].subquery()
    if len(selects) > 1:
        rows = sa.union(*selects).subquery()
    query = sa.select(rows.c.key, sa.func.count(), sa.func.sum(rows.c.person_key))
    return {key_of(k): _count(n, pk) for k, n, pk in conn.execute(query.group_by(rows.c.key))}


def monthly_users(conn: sa.Connection, period: Period) -> dict[str, tuple[Count, Count]]:
    """Per month of the period with activity: (active users, launchers)."""
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

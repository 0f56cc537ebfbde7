"""The front door: imported sign-ins against the portal's launches (launcher/signins).

Rows for ``GET /api/v1/reports/gateway``: per app, department or month, the successful
interactive sign-ins at the identity provider to apps that have a tile, how many came through
the portal (``via_portal``), their ``share`` and the distinct users; ``by=unregistered`` lists
the apps people sign in to that have no tile, by the provider's app name.

Read from the gateway rollups only (signin_day for counts; for distinct users
signin_user_month over the months the period covers whole and signin_user_day over the rest).
Privacy: a row about fewer than the minimum group is suppressed, never as the only one in its
table (the next smallest goes with it, so that a total minus the rows shown does not give it
away); and ``via_portal`` and ``share`` are left out when the people who came through the
portal, or those who never did, are fewer than that. These figures are exact: the cell-key
noise the launch reports carry (launcher/reports/cellkey.py) needs record keys in the gateway
rollups, which they do not keep yet -- so this table keeps the complementary suppression the
launch tables gave up (docs/PRIVACY.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from launcher.dates import month_end
from launcher.errors import BadRequest
from launcher.reports.periods import Period
from launcher.reports.queries import Row, suppress
from launcher.reports.sql import between, connect, dept, key_of, month_key
from launcher.signins.join import T_SIGNIN_DAY, T_SIGNIN_USER_DAY, T_SIGNIN_USER_MONTH

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


def _user_rows(engine: sa.Engine, period: Period, by: str | None) -> sa.Subquery:
    """(key, user_id, via) of each user's rows in the period: whole months from the monthly
    rollup, the other days from the daily one."""
    whole: list[Period] = []
    parts: list[Period] = []
    for month in period.months():
        days = Period(max(period.start, month), min(period.end, month_end(month)))
        (whole if days.whole_months else parts).append(days)
    um, ud = T_SIGNIN_USER_MONTH, T_SIGNIN_USER_DAY
    selects = []

    def key(t: sa.Table) -> sa.ColumnElement[Any]:
        return sa.literal("all") if by is None else _key(engine, by, t)

    if whole:
        selects.append(
            sa.select(key(um).label("key"), um.c.user_id, um.c.via_portal.label("via")).where(
                um.c.month.in_([p.start for p in whole]), _registered(um, by or "app")
            )
        )
    for days in parts:
        selects.append(
            sa.select(key(ud).label("key"), ud.c.user_id, ud.c.via_portal.label("via")).where(
                between(ud.c.day, days), _registered(ud, by or "app")
            )
        )
    return sa.union_all(*selects).subquery() if len(selects) > 1 else selects[0].subquery()


def _figures(engine: sa.Engine, period: Period, by: str | None) -> dict[str, list[int]]:
    """key -> [signins, via_portal, users, users who came through the portal]."""
    d = T_SIGNIN_DAY
    key = sa.literal("all") if by is None else _key(engine, by, d)
    counts = (
        sa.select(key, sa.func.sum(d.c.signins), sa.func.sum(d.c.via_portal))
        .where(between(d.c.day, period), _registered(d, by or "app"))
        .group_by(key)
    )
    rows = _user_rows(engine, period, by)
    per_user = (
        sa.select(rows.c.key, rows.c.user_id, sa.func.max(rows.c.via).label("via"))
        .group_by(rows.c.key, rows.c.user_id)
        .subquery()
    )
    users = sa.select(
        per_user.c.key,
        sa.func.count(),
        sa.func.count(sa.case((per_user.c.via > 0, 1))),
    ).group_by(per_user.c.key)
    out: dict[str, list[int]] = {}
    with connect(engine) as conn:
        for k, n, via in conn.execute(counts):
            if n:
                out[key_of(k)] = [int(n), int(via or 0), 0, 0]
        for k, n, via_users in conn.execute(users):
            if key_of(k) in out:
                out[key_of(k)][2:] = [int(n), int(via_users)]
    return out


def _row(key: str, f: list[int], min_group: int) -> Row:
    signins, via, users, via_users = f
    hide_via = 0 < via_users < min_group or 0 < users - via_users < min_group
    return {
        "key": key,
        "signins": signins,
        "via_portal": None if hide_via else via,
        "share": None if hide_via else round(via / signins, 3),
        "users": users,
    }


def _suppress_with_complement(rows: list[Row], min_group: int) -> list[Row]:
    """Hide rows about 1 to min_group - 1 people; with exactly one hidden, the next smallest
    too, so that no hidden row is a total minus the others."""
    out = [suppress(r, min_group) for r in rows]
    hidden = [i for i, r in enumerate(out) if r.get("suppressed")]
    shown = [i for i, r in enumerate(out) if not r.get("suppressed") and rows[i]["users"]]
    if len(hidden) == 1 and shown:
        smallest = min(shown, key=lambda i: (rows[i]["users"], rows[i].get("signins") or 0))
        out[smallest] = {**dict.fromkeys(rows[smallest]), "key": rows[smallest]["key"]}
        out[smallest]["suppressed"] = True
    return out


def gateway(engine: sa.Engine, period: Period, by: str, min_group: int) -> list[Row]:
    """The gateway report's rows (``/api/v1/reports/gateway``, README), sorted by key;
    keys without sign-ins are left out."""
    figures = _figures(engine, period, by)
    if by == "unregistered":
        rows: list[Row] = [
            {"key": k, "signins": f[0], "users": f[2]} for k, f in sorted(figures.items())
        ]
    else:
        rows = [_row(k, f, min_group) for k, f in sorted(figures.items())]
    out = _suppress_with_complement(rows, min_group)
    return [({**r, "share": None} if r.get("suppressed") and "share" in r else r) for r in out]


def front_door(engine: sa.Engine, period: Period, min_group: int) -> Row:
    """The organisation-wide figures over apps with a tile: sign-ins, through the portal,
    share, distinct users (suppressed below the minimum group, as a row)."""
    figures = _figures(engine, period, None).get("all", [0, 0, 0, 0])
    if figures[0] == 0:
        return {"signins": 0, "via_portal": 0, "share": None, "users": 0}
    row = _row("all", figures, min_group)
    del row["key"]
    if figures[2] < min_group:
        return {**dict.fromkeys(row), "suppressed": True}
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

"""The decline view: which apps and departments fell back since go-live.

Per app (distinct launching users, launches) or per department (distinct active users, also
as a share of the headcount in force, and launches), the go-live baseline -- the first full
month after go-live, scaled to the period's length (``periods.go_live_baseline``: a month for
a month, three for a quarter, as many days for a custom range) -- beside the selected period.

Every figure is a published one from :mod:`launcher.reports.queries` (cell-key noise,
suppressed below the minimum group), and the changes are computed from those published
figures, so the decline view tells nothing the launches and departments reports do not.
A decline is flagged only when distinct users fell by at least the registry's
``portal.decline_threshold``: a flag on every dip of 0.3 % would mean nothing.

A row whose period figure is suppressed (fewer than the minimum group now) has no ``change``;
it is still flagged when even the largest hidden figure (minimum group - 1) would be a drop
past the threshold -- which tells no more than the suppression itself.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from launcher.errors import BadRequest
from launcher.registry import Registry
from launcher.reports import queries
from launcher.reports.periods import Period, go_live_baseline
from launcher.reports.queries import Row

BY_VALUES: tuple[str, ...] = ("app", "department")


def _figures(
    engine: sa.Engine, registry: Registry, period: Period, by: str, min_group: int, exact: bool
) -> dict[str, Row]:
    """key -> {"users", "launches", "suppressed"[, "headcount"]}: published figures."""
    launches = queries.launches(engine, registry, period, by, min_group, exact=exact)
    out: dict[str, Row] = {
        r["key"]: {
            "users": r["users"],
            "launches": r["launches"],
            "suppressed": bool(r.get("suppressed")),
        }
        for r in launches
    }
    if by == "department":
        # people who used the portal at all, not only those who launched: a department's
        # active users, as its share of headcount on the reports page
        for r in queries.departments(engine, registry, period, min_group, exact=exact):
            row = out.setdefault(r["key"], {"launches": 0, "suppressed": False})
            row["users"] = r["users"]
            row["headcount"] = r["headcount"]
            row["suppressed"] = bool(r.get("suppressed"))
            if row["suppressed"]:
                row["launches"] = None
    return out


def _change(now: int | None, then: int | None) -> float | None:
    if now is None or not then:
        return None
    return round((now - then) / then, 4)


def _share(users: int | None, headcount: int | None) -> float | None:
    return None if users is None or not headcount else round(users / headcount, 4)


def decline(
    engine: sa.Engine,
    registry: Registry,
    period: Period,
    by: str,
    min_group: int,
    *,
    exact: bool = False,
) -> dict[str, Any]:
    """The decline view (``GET /api/v1/reports/decline``): rows sorted by the change in
    distinct users, biggest drop first; rows without a change last, by key."""
    if by not in BY_VALUES:
        raise BadRequest(f"'by' must be one of {', '.join(BY_VALUES)}, got {by[:40]!r}")
    threshold = registry.portal.decline_threshold
    baseline = go_live_baseline(registry.portal.go_live, period)
    now = _figures(engine, registry, period, by, min_group, exact)
    base = _figures(engine, registry, baseline, by, min_group, exact) if baseline else {}
    if by == "app":
        names = {a.id: a.name for a in registry.apps}
    else:
        names = {d.id: d.name for d in registry.departments}
    rows: list[tuple[Row, float | None]] = []
    for key in sorted(now.keys() | base.keys()):
        n = now.get(key, {"users": 0, "launches": 0, "suppressed": False})
        b = base.get(key, {"users": 0, "launches": 0, "suppressed": False})
        change = _change(n["users"], b["users"])
        bound = None
        if n["suppressed"] and b["users"]:
            bound = (min_group - 1 - b["users"]) / b["users"]  # the smallest possible drop
        row: Row = {
            "key": key,
            "name": names[key].en if key in names else None,
            "baseline_users": b["users"],
            "users": n["users"],
            "change": change,
            "declined": bool(
                (change is not None and change <= -threshold)
                or (bound is not None and bound <= -threshold)
            ),
            "baseline_launches": b["launches"],
            "launches": n["launches"],
            "launches_change": _change(n["launches"], b["launches"]),
        }
        if by == "department":
            dep = next((d for d in registry.departments if d.id == key), None)
            heads_then = dep.headcount_at(baseline.start) if dep and baseline else None
            row["headcount"] = n.get("headcount")
            row["baseline_share"] = _share(b["users"], heads_then)
            row["share"] = _share(n["users"], n.get("headcount"))
            row["share_change"] = (
                None
                if row["share"] is None or row["baseline_share"] is None
                else round(row["share"] - row["baseline_share"], 4)
            )
        if n["suppressed"]:
            row["suppressed"] = True
        rows.append((row, bound))
    # stable: rows with the same change stay in key order
    ordered = sorted(rows, key=lambda pair: _order(pair[0]["change"], pair[1]))
    return {
        "by": by,
        "threshold": threshold,
        "baseline": (
            {"from": baseline.start.isoformat(), "to": baseline.end.isoformat()}
            if baseline
            else None
        ),
        "rows": [r for r, _ in ordered],
    }


def _order(change: float | None, bound: float | None) -> float:
    if change is not None:
        return change
    return bound if bound is not None else math.inf

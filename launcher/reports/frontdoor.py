"""The front door section of /reports: is the portal still how people reach their apps?

Built from the gateway queries (:mod:`launcher.reports.gateway`: imported sign-ins at the
identity provider against the portal's launches), for one period: the organisation-wide share
of sign-ins that came through the portal with its change against the previous period and the
go-live baseline, the share per app (lowest first, with its change), the monthly trend over the
last twelve months, and the apps people sign in to that have no tile (by distinct users: the
strongest hint of what the portal is missing).

Changes of a share are in percentage points (a share of 62 % that was 70 % changed by -8). When
nothing was imported, :func:`section` says so (``imported`` is None) and the page shows how to
import instead of a row of zeros.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from launcher.dates import add_months, month_of
from launcher.registry import Registry
from launcher.reports import gateway
from launcher.reports.periods import Period, go_live_baseline
from launcher.reports.queries import Row

IMPORT_COMMAND = "launcher import-signins --format entra FILE"


@dataclass
class FrontDoor:
    imported: tuple[dt.date, dt.date] | None
    headline: Row = field(default_factory=dict)
    previous: Row = field(default_factory=dict)
    baseline: Row | None = None
    baseline_period: Period | None = None
    apps: list[Row] = field(default_factory=list)  # lowest share first
    months: list[Row] = field(default_factory=list)
    unregistered: list[Row] = field(default_factory=list)  # most people first

    @property
    def change_previous(self) -> float | None:
        return points(self.headline.get("share"), self.previous.get("share"))

    @property
    def change_baseline(self) -> float | None:
        return points(self.headline.get("share"), (self.baseline or {}).get("share"))


def points(now: float | None, then: float | None) -> float | None:
    """The change of a share in percentage points, one decimal."""
    return None if now is None or then is None else round((now - then) * 100, 1)


def _lowest_share_first(row: Row) -> tuple[int, float, str]:
    share = row.get("share")
    return (1, 0.0, row["key"]) if share is None else (0, share, row["key"])


def section(engine: sa.Engine, registry: Registry, period: Period, min_group: int) -> FrontDoor:
    imported = gateway.imported(engine)
    if imported is None:
        return FrontDoor(imported=None)
    previous = period.previous()
    baseline = go_live_baseline(registry.portal.go_live, period)
    names = {a.id: a.name.get("en") for a in registry.apps}
    before = {r["key"]: r for r in gateway.gateway(engine, previous, "app", min_group)}
    apps = []
    for r in gateway.gateway(engine, period, "app", min_group):
        then = before.get(r["key"], {})
        apps.append(
            {
                **r,
                "name": names.get(r["key"], r["key"]),
                "change": points(r.get("share"), then.get("share")),
            }
        )
    apps.sort(key=_lowest_share_first)
    first_month = add_months(month_of(period.end), -11)
    months = gateway.gateway(engine, Period(first_month, period.end), "month", min_group)
    unregistered = gateway.gateway(engine, period, "unregistered", min_group)
    unregistered.sort(key=lambda r: (-(r.get("users") or 0), r["key"]))
    return FrontDoor(
        imported=imported,
        headline=gateway.front_door(engine, period, min_group),
        previous=gateway.front_door(engine, previous, min_group),
        baseline=gateway.front_door(engine, baseline, min_group) if baseline else None,
        baseline_period=baseline,
        apps=apps,
        months=months,
        unregistered=unregistered,
    )


def as_tables(
    front: FrontDoor, min_group: int, names: dict[str, str] | None = None
) -> dict[str, tuple[str, tuple[str, ...], list[Any]]]:
    """(title, columns, rows) of the section's two CSV tables: the API's rows and figures
    (``GET /api/v1/reports/gateway?by=app`` and ``by=unregistered``), in the page's order."""

    def cell(row: Row, key: str) -> Any:
        return f"< {min_group}" if row.get("suppressed") else row.get(key)

    return {
        "gateway": (
            "Front door: sign-ins per app through the portal",
            ("app", "name", "signins", "via_portal", "share", "users", "change_share_points"),
            [
                (
                    r["key"],
                    (names or {}).get(r["key"]) or r["name"],
                    cell(r, "signins"),
                    cell(r, "via_portal"),
                    cell(r, "share"),
                    cell(r, "users"),
                    r["change"],
                )
                for r in front.apps
            ],
        ),
        "gateway-unregistered": (
            "Apps in use without a tile",
            ("app", "signins", "users"),
            [(r["key"], cell(r, "signins"), cell(r, "users")) for r in front.unregistered],
        ),
    }

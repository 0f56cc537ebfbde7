"""The tables of the report page, built once and shared by the page, CSV export and CLI.

One definition of each table means the page, the CSV files and ``launcher report`` cannot
disagree: they format the same rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from launcher.dates import add_months, month_of
from launcher.errors import BadRequest, NotFound
from launcher.registry import Registry
from launcher.reports import decline, frontdoor, periods, queries
from launcher.reports.periods import Period


@dataclass(frozen=True)
class Table:
    name: str  # the CSV file name and the ?table= value
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([_safe_cell(v) for v in row])
        return out.getvalue()


def _safe_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run: text starting like a formula gets a quote
    (department names come from the identity provider's claims). Numbers stay numbers."""
    if value is None:
        return ""
    formula = isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r")
    if formula and not re.fullmatch(r"[-+]?\d[\d.,]*%?", value):
        return "'" + value
    return value


def _cell(row: dict[str, Any], key: str, min_group: int) -> Any:
    if row.get("suppressed") and key != "key":
        return f"< {min_group}"
    return row.get(key)


def _small(value: int | None, min_group: int) -> Any:
    """A published figure, or "< k" where the baseline's was suppressed."""
    return f"< {min_group}" if value is None else value


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.1f}%"


@dataclass
class Report:
    period: Period
    min_group: int
    tables: dict[str, Table]
    comparison: dict[str, Any]
    adoption: list[dict[str, Any]]
    app_trends: dict[str, list[dict[str, Any]]]
    heatmap: list[dict[str, Any]]
    cohorts: list[dict[str, Any]]
    dormant: dict[str, Any]
    go_live_month: str | None
    decline_apps: dict[str, Any] = field(default_factory=dict)
    decline_departments: dict[str, Any] = field(default_factory=dict)
    front_door: frontdoor.FrontDoor = field(default_factory=lambda: frontdoor.FrontDoor(None))


TABLE_NAMES = (
    "summary",
    "adoption",
    "apps",
    "categories",
    "departments",
    "heatmap",
    "cohorts",
    "dormant",
    "decline",
    "decline-departments",
    "app-departments",
    "gateway",
    "gateway-unregistered",
)


def build(
    engine: sa.Engine, registry: Registry, period: Period, today: dt.date, min_group: int
) -> Report:
    """Every figure of the report page for ``period``."""
    go_live = registry.portal.go_live
    span = queries.data_range(engine)
    first = month_of(go_live) if go_live else (span[0] if span else month_of(period.start))
    if span:
        first = min(first, span[0])
    last = month_of(period.end)
    comparison = queries.comparison(engine, registry, period, min_group)
    adoption = queries.adoption_curve(engine, first, last, min_group)
    trend_months = periods.months_between(max(first, add_months(last, -11)), last)
    # a period that ends before go-live has no months to trend
    app_trends = queries.app_trends(engine, trend_months, min_group) if trend_months else {}
    heat = queries.heatmap(engine, period, min_group)
    cohort_rows = queries.cohorts(engine, first, last, min_group)
    dormant = queries.dormant(engine, registry, today, min_group)
    by_app = queries.launches(engine, registry, period, "app", min_group)
    by_category = queries.launches(engine, registry, period, "category", min_group)
    departments = queries.departments(engine, registry, period, min_group)
    decline_apps = decline.decline(engine, registry, period, "app", min_group)
    decline_departments = decline.decline(engine, registry, period, "department", min_group)
    app_departments = queries.app_departments(engine, period, min_group)
    front = frontdoor.section(engine, registry, period, min_group)

    names = {app.id: app.name.get("en") for app in registry.apps}
    categories = {c.id: c.name.get("en") for c in registry.categories}

    def g(row: dict[str, Any], key: str) -> Any:
        return _cell(row, key, min_group)

    tables = {
        "summary": Table(
            "summary",
            "Headline figures",
            ("metric", "value", "previous", "change_previous", "go_live", "change_go_live"),
            [
                (
                    r["metric"],
                    r["value"],
                    r["previous"],
                    _percent(r["change_previous"]),
                    r["go_live"],
                    _percent(r["change_go_live"]),
                )
                for r in comparison["rows"]
            ],
        ),
        "adoption": Table(
            "adoption",
            "Adoption since go-live (per month)",
            ("month", "active_users", "launches", "signins"),
            [(r["key"], g(r, "users"), g(r, "launches"), g(r, "signins")) for r in adoption],
        ),
        "apps": Table(
            "apps",
            "Launches per app",
            ("app", "name", "launches", "users"),
            [
                (r["key"], names.get(r["key"], r["key"]), g(r, "launches"), g(r, "users"))
                for r in by_app
            ],
        ),
        "categories": Table(
            "categories",
            "Launches per category",
            ("category", "name", "launches", "users"),
            [
                (r["key"], categories.get(r["key"], r["key"]), g(r, "launches"), g(r, "users"))
                for r in by_category
            ],
        ),
        "departments": Table(
            "departments",
            "Active users per department",
            ("department", "name", "active_users", "headcount", "share_of_headcount"),
            [
                (
                    r["key"],
                    r.get("name") or r["key"],
                    g(r, "users"),
                    r.get("headcount"),
                    _percent(r.get("share")),
                )
                for r in departments
            ],
        ),
        "heatmap": Table(
            "heatmap",
            f"Launches by weekday and hour ({registry.portal.timezone})",
            ("weekday", "hour", "launches"),
            [
                (
                    queries_weekday(r["weekday"]),
                    r["hour"],
                    f"< {min_group}" if r.get("suppressed") else r["launches"],
                )
                for r in heat
            ],
        ),
        "cohorts": Table(
            "cohorts",
            "Cohort retention (share of each cohort active in later months)",
            ("cohort", "size", "month", "months_after", "share_active"),
            [
                (c["cohort"], f"< {min_group}", None, None, None)
                if c.get("suppressed")
                else (
                    c["cohort"],
                    c["size"],
                    m["month"],
                    m["offset"],
                    f"< {min_group} users" if m["share"] is None else _percent(m["share"]),
                )
                for c in cohort_rows
                for m in (c["retention"] or [{}])
            ],
        ),
        "dormant": Table(
            "dormant",
            "Dormant users (active in the first month after go-live, not in the last 30 days)",
            ("department", "users"),
            [(r["key"], g(r, "users")) for r in dormant["rows"]],
        ),
        "decline": Table(
            "decline",
            "Apps: change since the first month after go-live",
            (
                "app",
                "name",
                "baseline_users",
                "users",
                "change",
                "baseline_launches",
                "launches",
                "launches_change",
                "declined",
            ),
            [
                (
                    r["key"],
                    r["name"] or r["key"],
                    _small(r["baseline_users"], min_group),
                    g(r, "users"),
                    _percent(r["change"]),
                    _small(r["baseline_launches"], min_group),
                    g(r, "launches"),
                    _percent(r["launches_change"]),
                    "yes" if r["declined"] else "no",
                )
                for r in decline_apps["rows"]
            ],
        ),
        "decline-departments": Table(
            "decline-departments",
            "Departments: change since the first month after go-live",
            (
                "department",
                "name",
                "baseline_users",
                "users",
                "change",
                "headcount",
                "baseline_share",
                "share",
                "change_of_headcount",
                "declined",
            ),
            [
                (
                    r["key"],
                    r["name"] or r["key"],
                    _small(r["baseline_users"], min_group),
                    g(r, "users"),
                    _percent(r["change"]),
                    r["headcount"],
                    _percent(r["baseline_share"]),
                    _percent(r["share"]),
                    _percent(r["share_change"]),
                    "yes" if r["declined"] else "no",
                )
                for r in decline_departments["rows"]
            ],
        ),
        "app-departments": Table(
            "app-departments",
            "Launches and users per app and department",
            ("app", "department", "launches", "users"),
            [(r["app"], r["department"], g(r, "launches"), g(r, "users")) for r in app_departments],
        ),
    }
    for name, (title, columns, rows) in frontdoor.as_tables(front, min_group).items():
        tables[name] = Table(name, title, columns, rows)
    return Report(
        period=period,
        min_group=min_group,
        tables=tables,
        comparison=comparison,
        adoption=adoption,
        app_trends=app_trends,
        heatmap=heat,
        cohorts=cohort_rows,
        dormant=dormant,
        go_live_month=go_live.isoformat()[:7] if go_live else None,
        decline_apps=decline_apps,
        decline_departments=decline_departments,
        front_door=front,
    )


def queries_weekday(index: int) -> str:
    return ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[index]


def period_from_query(get: Callable[[str], str | None], today: dt.date) -> tuple[str, Period]:
    """The period selector: month=YYYY-MM, quarter=YYYY-Qn, or from/to (custom)."""
    kind = get("period") or ("custom" if get("from") or get("to") else "month")
    if kind == "month":
        value = get("month")
        if value:
            try:
                month = dt.date.fromisoformat(value + "-01")
            except ValueError:
                raise BadRequest(f"'month' must be YYYY-MM, got {value[:20]!r}") from None
            periods.check_in_range(month, "month")
        else:
            month = month_of(month_of(today) - dt.timedelta(days=1))  # last full month
        return kind, periods.month_period(month)
    if kind == "quarter":
        value = get("quarter")
        if value:
            try:
                year, q = value.upper().split("-Q")
                day = dt.date(int(year), 3 * (int(q) - 1) + 1, 1)
            except ValueError:
                raise BadRequest(f"'quarter' must be YYYY-Qn, got {value[:20]!r}") from None
            periods.check_in_range(day, "quarter")
        else:
            day = periods.quarter_period(today).start - dt.timedelta(days=1)
        return kind, periods.quarter_period(day)
    if kind == "custom":
        return kind, periods.parse_period(get("from"), get("to"), today)
    raise BadRequest("'period' must be month, quarter or custom")


def table(report: Report, name: str) -> Table:
    if name not in report.tables:
        raise NotFound(f"no table {name!r}; tables: {', '.join(TABLE_NAMES)}")
    return report.tables[name]


def as_text(table: Table) -> str:
    """The table aligned for a terminal; numbers right-aligned."""
    cells = [list(table.columns)] + [["" if v is None else str(v) for v in r] for r in table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    numeric = [
        all(
            isinstance(r[i], int | float) or r[i] is None or str(r[i]).startswith("< ")
            for r in table.rows
        )
        for i in range(len(table.columns))
    ]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                v.rjust(w) if numeric[i] and n else v.ljust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)

"""The tables of the report page, built once and shared by the page, CSV export and CLI.

One definition of each table means the page, the CSV files and ``launcher report`` cannot
disagree: they format the same rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from launcher import i18n
from launcher.dates import add_months, month_of
from launcher.errors import NotFound
from launcher.registry import Registry
from launcher.reports import decline, distinct, frontdoor, periods, queries, sources, sql
from launcher.reports.csvtable import Table, as_text
from launcher.reports.periods import Period, period_from_query

__all__ = ["TABLE_NAMES", "Report", "Table", "as_text", "build", "period_from_query", "table"]


def _cell(row: dict[str, Any], key: str, min_group: int) -> Any:
    if row.get("suppressed") and key != "key":
        return f"< {min_group}"
    return row.get(key)


def _small(value: int | None, min_group: int) -> Any:
    """A published figure, or "< k" where the baseline's was suppressed."""
    return f"< {min_group}" if value is None else value


def _percent(value: float | None, lang: str = "en") -> str | None:
    """A share as text for a table cell, with the language's decimal sign and an ASCII
    minus (which spreadsheets read as a number)."""
    if value is None:
        return None
    from babel.numbers import format_percent  # Babel on first use (launcher/i18n.py)

    return str(format_percent(value, "#,##0.0%", locale=lang)).replace("\u2212", "-")


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
    sources_period: Period | None = None  # the twelve months the sources table covers
    sources: list[dict[str, Any]] = field(default_factory=list)
    announcements: list[dict[str, Any]] = field(default_factory=list)


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
    "sources",
    "announcements",
)


def build(
    engine: sa.Engine,
    registry: Registry,
    period: Period,
    today: dt.date,
    min_group: int,
    lang: str = "en",
) -> Report:
    """Every figure of the report page for ``period``; titles, headers and words in ``lang``
    (numbers stay numbers: a spreadsheet formats them)."""
    t = i18n.translator(lang)
    go_live = registry.portal.go_live
    # the tables below read the same bitmaps more than once; one connection for them all
    with distinct.shared(), sql.one_connection(engine):
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
        sources_period = sources.trend_period(period)
        by_source = sources.by_month(engine, sources_period, min_group)
        reach = sources.announcement_reach(engine, period, min_group)

    names = {app.id: app.name.get(lang) for app in registry.apps}
    categories = {c.id: c.name.get(lang) for c in registry.categories}
    department_names = {d.id: d.name.get(lang) for d in registry.departments}
    days = weekdays(lang)

    def pct(value: float | None) -> str | None:
        return _percent(value, lang)

    def yes(flag: bool) -> str:
        return t("yes") if flag else t("no")

    def g(row: dict[str, Any], key: str) -> Any:
        return _cell(row, key, min_group)

    tables = {
        "summary": Table(
            "summary",
            "Headline figures",
            ("metric", "value", "previous", "change_previous", "go_live", "change_go_live"),
            [
                (
                    t(r["metric"]),
                    r["value"],
                    r["previous"],
                    pct(r["change_previous"]),
                    r["go_live"],
                    pct(r["change_go_live"]),
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
                    department_names.get(r["key"]) or r.get("name") or r["key"],
                    g(r, "users"),
                    r.get("headcount"),
                    pct(r.get("share")),
                )
                for r in departments
            ],
        ),
        "heatmap": Table(
            "heatmap",
            t("Launches by weekday and hour ({timezone})").format(
                timezone=registry.portal.timezone
            ),
            ("weekday", "hour", "launches"),
            [
                (
                    days[r["weekday"]],
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
                    t("< {n} users").format(n=min_group) if m["share"] is None else pct(m["share"]),
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
                    names.get(r["key"]) or r["key"],
                    _small(r["baseline_users"], min_group),
                    g(r, "users"),
                    pct(r["change"]),
                    _small(r["baseline_launches"], min_group),
                    g(r, "launches"),
                    pct(r["launches_change"]),
                    yes(r["declined"]),
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
                    department_names.get(r["key"]) or r["key"],
                    _small(r["baseline_users"], min_group),
                    g(r, "users"),
                    pct(r["change"]),
                    r["headcount"],
                    pct(r["baseline_share"]),
                    pct(r["share"]),
                    pct(r["share_change"]),
                    yes(r["declined"]),
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
    tables["sources"] = Table(
        "sources",
        "Where launches start (per month)",
        ("month", "source", "name", "launches", "users"),
        [
            (r["month"], r["source"], t(sources.label(r["source"])))
            + (g(r, "launches"), g(r, "users"))
            for r in by_source
        ],
    )
    tables["announcements"] = Table(
        "announcements",
        "Announcements and their reach",
        ("id", "title", "starts", "ends", "audience", "language", "reach"),
        [
            (
                r["id"],
                r["title"],
                r["starts"],
                r["ends"],
                ", ".join(r["groups"]) or t("everyone"),
                r["language"] or t("all languages"),
                g(r, "reach"),
            )
            for r in reach
        ],
    )
    for name, (title, columns, rows) in frontdoor.as_tables(front, min_group, names).items():
        tables[name] = Table(name, title, columns, rows)
    tables = {
        name: Table(name, t(tb.title), tb.columns, tb.rows, tuple(t(c) for c in tb.columns))
        for name, tb in tables.items()
    }
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
        sources_period=sources_period,
        sources=by_source,
        announcements=reach,
    )


def weekdays(lang: str) -> tuple[str, ...]:
    """Weekday names, Monday first, in ``lang``."""
    from babel.dates import get_day_names

    names = get_day_names("wide", locale=lang)
    return tuple(str(names[i]) for i in range(7))


def table(report: Report, name: str) -> Table:
    if name not in report.tables:
        raise NotFound(f"no table {name!r}; tables: {', '.join(TABLE_NAMES)}")
    return report.tables[name]

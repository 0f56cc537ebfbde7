"""What the /reports page shows beyond its tables: the charts and the answer in words, in the
reviewer's language. The view (launcher/views/reports.py) only renders it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from launcher import i18n
from launcher.registry import Registry
from launcher.reports import charts, firstscreen, frontdoor, sources
from launcher.reports.tables import Report


def context(report: Report, registry: Registry, kind: str, query: str, lang: str) -> dict[str, Any]:
    t = i18n.translator(lang)

    def number(value: float) -> str:
        return i18n.format_number(value, lang)

    adoption = report.adoption
    labels = [r["key"] for r in adoption]
    marker = labels.index(report.go_live_month) if report.go_live_month in labels else None
    curve = charts.line_chart(
        labels,
        [
            (t("Monthly active users"), [r["users"] for r in adoption]),
            (t("Launches"), [r["launches"] for r in adoption]),
        ],
        title=t("Adoption since go-live"),
        desc=t("Monthly active users and launches per month; the vertical line marks go-live."),
        marker=marker,
        marker_label=t("go-live"),
        css_id="adoption",
    )
    app_names = {a.id: a.name.get(lang) for a in registry.apps}
    sparklines = []
    for app, series in report.app_trends.items():
        months = [r["key"] for r in series]
        axis = t("launches per month, {first} – {last}").format(first=months[0], last=months[-1])
        svg = charts.sparkline(
            [r["launches"] for r in series],
            months,
            title=t("Launches of {app} per month").format(app=app_names.get(app, app)),
            axis_label=axis,
            css_id=f"spark-{app}",
            fmt=number,
            suppressed=t("too few users to show"),
        )
        sparklines.append((app_names.get(app, app), svg))

    def bars(name: str, label_col: int, value_col: int, title: str) -> Markup:
        rows = report.tables[name].rows
        return charts.bar_chart(
            [
                (str(r[label_col]), r[value_col] if isinstance(r[value_col], int) else None)
                for r in rows
            ],
            title=title,
            desc=t("{title}, as listed in the table beside the chart.").format(title=title),
            css_id=f"bars-{name}",
        )

    front = report.front_door
    front_chart = None
    if front.imported is not None and front.months:
        front_chart = charts.line_chart(
            [r["key"] for r in front.months],
            [
                (
                    t("Share through the portal (%)"),
                    [None if r.get("share") is None else r["share"] * 100 for r in front.months],
                )
            ],
            title=t("Share of sign-ins through the portal, per month"),
            desc=t(
                "The share of sign-ins to apps with a tile that came right after a launch "
                "from the portal, month by month; the table below has the figures per app."
            ),
            css_id="front-door",
        )
    by_source = _by_source(report, t, number)
    names = {a.id: a.name.get(lang) for a in registry.apps}
    names.update({"department:" + d.id: d.name.get(lang) for d in registry.departments})
    return {
        "answer": firstscreen.sentence(report, lang, names),
        "front": front,
        "front_chart": front_chart,
        "import_command": frontdoor.IMPORT_COMMAND,
        "report": report,
        "kind": kind,
        "period": report.period,
        "query": query,
        "curve": curve,
        "sparklines": sparklines,
        "apps_chart": bars("apps", 1, 2, t("Launches per app")),
        "categories_chart": bars("categories", 1, 2, t("Launches per category")),
        "departments_chart": bars("departments", 1, 2, t("Active users per department")),
        "heatmap_chart": charts.heatmap(
            report.heatmap,
            title=t("When people use the portal"),
            desc=t(
                "Launches per weekday and hour; darker is more, hatched cells have too few "
                "users to show."
            ),
            weekdays=weekdays(lang),
        ),
        **by_source,
        "min_group": report.min_group,
        "fmt_number": number,
        "fmt_percent": lambda v, signed=False: i18n.format_percent(v, lang, signed=signed),
        "fmt_signed": lambda v: i18n.format_signed(v, lang),
        "fmt_date": lambda d: i18n.format_date(
            d if isinstance(d, dt.date) else dt.date.fromisoformat(d), lang
        ),
    }


def _by_source(
    report: Report, t: Callable[[str], str], number: Callable[[float], str]
) -> dict[str, Any]:
    """The section "Where launches start": a sparkline per source (its text alternative in
    its description, and the table of months by sources under them) from the report's rows,
    from the first month that has any."""
    rows = report.sources
    found = sorted({r["source"] for r in rows}, key=sources.order)
    shown = report.sources_period
    all_months = [m.isoformat()[:7] for m in shown.months()] if rows and shown else []
    first = min((r["month"] for r in rows), default=None)
    months = [m for m in all_months if first is not None and m >= first]
    cells = {(r["month"], r["source"]): r for r in rows}

    def launches(month: str, source: str) -> int | None:
        row = cells.get((month, source))
        return 0 if row is None else row["launches"]  # None: suppressed

    labels = {s: t(sources.label(s)) for s in found}
    lines = []
    for i, source in enumerate(found):
        axis = t("launches per month, {first} – {last}").format(first=months[0], last=months[-1])
        lines.append(
            (
                labels[source],
                charts.sparkline(
                    [launches(m, source) for m in months],
                    months,
                    title=t("Launches from “{source}” per month").format(source=labels[source]),
                    axis_label=axis,
                    css_id=f"spark-source-{i}",  # an id of ours, whatever was stored
                    fmt=number,
                    suppressed=t("too few users to show"),
                ),
            )
        )
    return {
        "source_names": [labels[s] for s in found],
        "source_matrix": [(m, [launches(m, s) for s in found]) for m in months],
        "source_sparklines": lines,
        "sources_months": (months[0], months[-1]) if months else None,
    }


def weekdays(lang: str) -> tuple[str, ...]:
    """Short weekday names, Monday first, in ``lang``."""
    from babel.dates import get_day_names

    names = get_day_names("abbreviated", locale=lang)
    return tuple(str(names[i]) for i in range(7))

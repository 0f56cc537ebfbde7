"""``launcher report``: the reviewer figures as text for a terminal, CSV or JSON.

The tables are the report page's own (``tables.py``), so the terminal, the page and its CSV
export agree to the unit; this module only chooses the table and formats it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import sqlalchemy as sa

from launcher import i18n
from launcher.registry import Registry
from launcher.reports import queries, tables
from launcher.reports.periods import Period

Format = Literal["table", "csv", "json"]


def report_text(
    engine: sa.Engine,
    registry: Registry,
    period: Period,
    today: dt.date,
    *,
    by: str = "app",
    table: str = "launches",
    fmt: Format = "table",
    min_group: int,
    lang: str = "en",
) -> str:
    """The report as the command prints it, ending in a newline.

    ``lang`` (nl or en) is the language of the title, the headers and the numbers.
    ``table`` is ``launches`` (launches broken down ``by`` app, category, department, day or
    month) or the name of a table of the /reports page; groups under ``min_group`` users show
    as ``< min_group``.
    """
    t = i18n.translator(lang)
    if table == "launches":
        rows = queries.launches(engine, registry, period, by, min_group)
        body: dict[str, Any] = {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "by": by,
            "rows": rows,
        }
        shown = tables.Table(
            "launches",
            t("Launches by {by}").format(by=t(by)),
            (by, "launches", "users"),
            [
                (
                    r["key"],
                    *(
                        (f"< {min_group}",) * 2
                        if r.get("suppressed")
                        else (r["launches"], r["users"])
                    ),
                )
                for r in rows
            ],
            (t(by), t("launches"), t("users")),
        )
    else:
        if table == "decline" and by == "department":  # --table decline --by department
            table = "decline-departments"
        report = tables.build(engine, registry, period, today, min_group, lang)
        shown = tables.table(report, table)
        body = {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "table": shown.name,
            "columns": list(shown.columns),
            "rows": [list(r) for r in shown.rows],
        }
    if fmt == "json":
        return json.dumps(body, indent=2, default=str) + "\n"
    if fmt == "csv":
        return shown.csv()
    dates = t("{start} to {end} (UTC)").format(
        start=i18n.format_date(period.start, lang), end=i18n.format_date(period.end, lang)
    )
    text = tables.as_text(shown, lambda v: i18n.format_number(v, lang))
    return f"{shown.title}, {dates}\n{text}\n"

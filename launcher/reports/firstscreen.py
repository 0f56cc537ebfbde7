"""The answer at the top of /reports, in words and in the reviewer's language.

A reviewer opens the reports to learn whether the portal is still the front door; the first
screen says it in one sentence with the numbers: "Compared with the first month after
go-live: 42 fewer active people (−8.1 %); the biggest drops: Wiki (−35.0 %), Nursing
(−6.0 % of headcount); the front door share is 61.5 % (was 74.0 %)." Every number is one
the page shows below it (published, protected figures); nothing here is computed anew.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from launcher import i18n

if TYPE_CHECKING:
    from launcher.reports.tables import Report


def _first_drop(rows: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The first (biggest) flagged drop that has a figure to show."""
    return next((r for r in rows if r["declined"] and r.get(key) is not None), None)


def sentence(report: Report, lang: str, names: dict[str, str] | None = None) -> str:
    """One sentence answering "did use fall back since go-live, and where?"."""
    t = i18n.translator(lang)
    names = names or {}
    go_live = report.comparison.get("go_live")
    if not go_live:
        return t(
            "Set portal.go_live in the registry to compare with the first month after go-live."
        )

    def pct(value: float, signed: bool = True) -> str:
        return i18n.format_percent(value, lang, signed=signed)

    parts: list[str] = []
    active = next(r for r in report.comparison["rows"] if r["metric"] == "active_users")
    now, then = active["value"], active["go_live"]
    if now is None or then is None or not then:
        parts.append(t("too few active people to compare"))
    else:
        n = i18n.format_number(abs(then - now), lang)
        change = pct(active["change_go_live"] or 0.0)
        if now < then:
            parts.append(t("{n} fewer active people ({change})").format(n=n, change=change))
        elif now > then:
            parts.append(t("{n} more active people ({change})").format(n=n, change=change))
        else:
            parts.append(t("as many active people as then ({n})").format(n=now))
    drops: list[str] = []
    app = _first_drop(report.decline_apps.get("rows", []), "change")
    if app:
        name = names.get(app["key"]) or app.get("name") or app["key"]
        drops.append(t("app {name} ({change})").format(name=name, change=pct(app["change"])))
    dep = _first_drop(report.decline_departments.get("rows", []), "change")
    if dep:
        name = names.get("department:" + dep["key"]) or dep.get("name") or dep["key"]
        if dep.get("share_change") is not None:
            text = t("department {name} ({change} of headcount)")
            drops.append(text.format(name=name, change=pct(dep["share_change"])))
        else:
            text = t("department {name} ({change})")
            drops.append(text.format(name=name, change=pct(dep["change"])))
    if drops:
        parts.append(t("the biggest drops: {drops}").format(drops=", ".join(drops)))
    else:
        threshold = pct(report.comparison["threshold"], signed=False)
        parts.append(
            t("no app or department fell back by {threshold} or more").format(threshold=threshold)
        )
    front = report.front_door
    if front.imported is not None and front.headline.get("share") is not None:
        share = pct(front.headline["share"], signed=False)
        was = (front.baseline or {}).get("share")
        if was is not None:
            text = t("the front door share is {share} (was {was})")
            parts.append(text.format(share=share, was=pct(was, signed=False)))
        else:
            parts.append(t("the front door share is {share}").format(share=share))
    lead = t("Compared with the first month after go-live")
    return f"{lead}: {'; '.join(parts)}."

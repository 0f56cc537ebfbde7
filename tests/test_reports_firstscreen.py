"""The answer on the first screen of /reports (launcher/reports/firstscreen.py): one sentence
with the numbers, in the reviewer's language, from the figures the page shows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from launcher.reports import firstscreen
from launcher.reports.frontdoor import FrontDoor
from launcher.reports.periods import Period
from launcher.reports.tables import Report

APRIL = Period(dt.date(2025, 4, 1), dt.date(2025, 4, 30))


def _report(
    active: tuple[int | None, int | None] = (460, 500),
    apps: list[dict[str, Any]] | None = None,
    departments: list[dict[str, Any]] | None = None,
    front: FrontDoor | None = None,
    go_live: bool = True,
) -> Report:
    now, then = active
    change = None if now is None or not then else round((now - then) / then, 4)
    return Report(
        period=APRIL,
        min_group=5,
        tables={},
        comparison={
            "threshold": 0.1,
            "go_live": {"from": "2025-03-01", "to": "2025-03-31"} if go_live else None,
            "rows": [
                {"metric": "active_users", "value": now, "go_live": then, "change_go_live": change}
            ],
        },
        adoption=[],
        app_trends={},
        heatmap=[],
        cohorts=[],
        dormant={},
        go_live_month="2025-03",
        decline_apps={"rows": apps if apps is not None else []},
        decline_departments={"rows": departments if departments is not None else []},
        front_door=front or FrontDoor(None),
    )


WIKI = {"key": "wiki", "name": "Wiki", "change": None, "declined": True}  # hidden: skipped
TEAMS = {"key": "teams", "name": "Teams", "change": -0.351, "declined": True}
EHR = {"key": "ehr", "name": "EHR", "change": -0.05, "declined": False}
NURSING = {"key": "nursing", "name": "Nursing", "change": -0.2, "share_change": -0.06,
           "declined": True}  # fmt: skip
FRONT = FrontDoor(
    (dt.date(2025, 3, 1), dt.date(2025, 4, 30)),
    headline={"share": 0.615},
    baseline={"share": 0.74},
)


def test_the_whole_answer_in_english() -> None:
    report = _report(apps=[WIKI, TEAMS, EHR], departments=[NURSING], front=FRONT)
    assert firstscreen.sentence(report, "en") == (
        "Compared with the first month after go-live: 40 fewer active people (−8.0%); "
        "the biggest drops: app Teams (−35.1%), department Nursing (−6.0% of headcount); "
        "the front door share is 61.5% (was 74.0%)."
    )


def test_the_whole_answer_in_dutch_with_the_registry_names() -> None:
    report = _report(active=(1460, 1200), apps=[TEAMS], departments=[NURSING], front=FRONT)
    names = {"teams": "Microsoft Teams", "department:nursing": "Verpleging"}
    assert firstscreen.sentence(report, "nl", names) == (
        "Vergeleken met de eerste maand na de livegang: 260 meer actieve mensen (+21,7%); "
        "de grootste dalingen: app Microsoft Teams (−35,1%), afdeling Verpleging "
        "(−6,0% van de formatie); het aandeel via de voordeur is 61,5% (was 74,0%)."
    )


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        pytest.param(
            _report(apps=[EHR]),
            "Compared with the first month after go-live: 40 fewer active people (−8.0%); "
            "no app or department fell back by 10.0% or more.",
            id="no drop past the threshold, nothing imported",
        ),
        pytest.param(
            _report(active=(None, 500)),
            "Compared with the first month after go-live: too few active people to compare; "
            "no app or department fell back by 10.0% or more.",
            id="too few people",
        ),
        pytest.param(
            _report(go_live=False),
            "Set portal.go_live in the registry to compare with the first month after go-live.",
            id="no go-live date",
        ),
        pytest.param(
            _report(front=FrontDoor(FRONT.imported, headline={"share": 0.5}, baseline=None)),
            "Compared with the first month after go-live: 40 fewer active people (−8.0%); "
            "no app or department fell back by 10.0% or more; the front door share is 50.0%.",
            id="front door without a baseline",
        ),
    ],
)
def test_partial_answers(report: Report, expected: str) -> None:
    assert firstscreen.sentence(report, "en") == expected

"""Report figures against a small hand-computed fixture, on SQLite and PostgreSQL.

The fixture (go-live 2025-03-01, minimum group 3):

- nursing: n1..n5 (5 people), medical: m1, m2 (2 people, too few to show on their own)
- March 2025 (the go-live month): every nurse launches Teams twice and the EHR once and signs
  in once; m1 and m2 launch the EHR once each.
- April 2025: n1..n3 launch Teams once each; m1 launches the EHR once; n4, n5 only sign in.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.registry import parse_registry
from launcher.reports import periods, queries, rebuild, rollups, tables
from launcher.reports.periods import Period
from tests.helpers import REVIEWER, STAFF, BatchWriter, InProcess, Launch, SignIn

TZ = ZoneInfo("Europe/Amsterdam")
MIN = 3
REGISTRY_TEXT = """
portal: {title: Test, go_live: 2025-03-01, timezone: Europe/Amsterdam}
categories:
  - {id: communication, name: Communication}
  - {id: care, name: Care}
departments:
  - {id: nursing, name: Nursing, headcount: 10}
  - {id: medical, name: Medical, headcount: 4}
  - {id: youth-care, name: Youth care, headcount: 8}
apps:
  - {id: teams, name: Teams, url: "https://teams.example/", category: communication}
  - {id: ehr, name: EHR, url: "https://ehr.example/", category: care}
"""
REGISTRY = parse_registry(REGISTRY_TEXT)
NURSES = [f"n{i}" for i in range(1, 6)]


def _events() -> tuple[list[Launch], list[SignIn]]:
    launches: list[Launch] = []
    signins: list[SignIn] = []
    march = dt.datetime(2025, 3, 10, 8, 30, tzinfo=dt.UTC)  # a Monday, 09:30 in Amsterdam
    for i, n in enumerate(NURSES):
        at = march + dt.timedelta(days=i % 2)
        signins.append(SignIn(at, n, "nursing"))
        launches += [Launch(at, "teams", n, "nursing", "portal")] * 2
        launches.append(Launch(at, "ehr", n, "nursing", "portal"))
    for m in ("m1", "m2"):
        launches.append(Launch(march, "ehr", m, "medical", "portal"))
    april = dt.datetime(2025, 4, 15, 12, 0, tzinfo=dt.UTC)
    for n in NURSES[:3]:
        launches.append(Launch(april, "teams", n, "nursing", "portal"))
    launches.append(Launch(april, "ehr", "m1", "medical", "portal"))
    signins += [SignIn(april, n, "nursing") for n in NURSES[3:]]
    return launches, signins


@pytest.fixture(params=["incremental", "rebuilt"])
def engine(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[sa.Engine]:
    """The fixture written through the live flush path, or rebuilt in SQL from raw events."""
    eng = db.make_engine(database_url)
    launches, signins = _events()
    writer = BatchWriter(eng, tmp_path / "spool", on_flush=rollups.apply)
    writer.write("fixture", launches, signins, TZ)
    if request.param == "rebuilt":
        rebuild.rebuild(eng, TZ)
    yield eng
    eng.dispose()


MARCH = Period(dt.date(2025, 3, 1), dt.date(2025, 3, 31))
APRIL = Period(dt.date(2025, 4, 1), dt.date(2025, 4, 30))


def test_launches_by_app_and_small_group_suppression(engine: sa.Engine) -> None:
    rows = queries.launches(engine, REGISTRY, MARCH, "app", MIN, exact=True)
    # ehr: 5 nurses + 2 medics = 7 launches by 7 people; teams: 10 launches by 5 nurses
    assert rows == [
        {"key": "ehr", "launches": 7, "users": 7},
        {"key": "teams", "launches": 10, "users": 5},
    ]
    by_dept = queries.launches(engine, REGISTRY, MARCH, "department", MIN, exact=True)
    # medical is 2 people: hidden. Nursing stays: no second row is hidden beside it, because
    # every published count carries noise, so "total minus nursing" is no exact count either
    assert by_dept == [
        {"key": "medical", "launches": None, "users": None, "suppressed": True},
        {"key": "nursing", "launches": 15, "users": 5},
    ]
    april = queries.launches(engine, REGISTRY, APRIL, "app", MIN, exact=True)
    assert april == [
        {"key": "ehr", "launches": None, "users": None, "suppressed": True},  # m1 alone
        {"key": "teams", "launches": 3, "users": 3},
    ]
    # published (with noise): the same rows hidden, the others within the noise's bound
    noisy = queries.launches(engine, REGISTRY, APRIL, "app", MIN)
    assert noisy[0] == april[0]
    assert abs(noisy[1]["users"] - 3) <= 2 and noisy[1]["launches"] >= noisy[1]["users"] >= 1


def test_launches_by_category_day_and_month(engine: sa.Engine) -> None:
    both = Period(dt.date(2025, 3, 1), dt.date(2025, 4, 30))
    assert queries.launches(engine, REGISTRY, both, "category", MIN, exact=True) == [
        {"key": "care", "launches": 8, "users": 7},
        {"key": "communication", "launches": 13, "users": 5},
    ]
    assert queries.launches(engine, REGISTRY, both, "month", MIN, exact=True) == [
        {"key": "2025-03", "launches": 17, "users": 7},
        {"key": "2025-04", "launches": 4, "users": 4},
    ]
    days = queries.launches(engine, REGISTRY, MARCH, "day", 1, exact=True)
    assert days == [
        {"key": "2025-03-10", "launches": 11, "users": 5},  # n1, n3, n5 and both medics
        {"key": "2025-03-11", "launches": 6, "users": 2},
    ]


def test_dates_are_inclusive_and_utc(engine: sa.Engine) -> None:
    assert (
        queries.launches(
            engine,
            REGISTRY,
            Period(dt.date(2025, 3, 10), dt.date(2025, 3, 10)),
            "app",
            1,
            exact=True,
        )[0]["launches"]
        == 5
    )  # ehr that day: n1, n3, n5, m1, m2
    assert (
        queries.launches(
            engine,
            REGISTRY,
            Period(dt.date(2025, 3, 12), dt.date(2025, 4, 14)),
            "app",
            1,
            exact=True,
        )
        == []
    )


def test_comparison_against_previous_period_and_go_live(engine: sa.Engine) -> None:
    result = queries.comparison(engine, REGISTRY, APRIL, MIN, exact=True)
    rows = {r["metric"]: r for r in result["rows"]}
    assert result["go_live"] == {"from": "2025-03-01", "to": "2025-03-31"}
    assert result["previous"] == {"from": "2025-03-01", "to": "2025-03-31"}
    # April: 5 nurses + m1 active = 6; launches 4; sign-ins 2; launchers n1..n3 + m1 = 4
    assert rows["active_users"]["value"] == 6
    assert rows["active_users"]["go_live"] == 7
    assert rows["active_users"]["change_go_live"] == round((6 - 7) / 7, 4)
    assert rows["active_users"]["decline"] is True
    assert rows["launches"]["value"] == 4 and rows["launches"]["go_live"] == 17
    assert rows["signins"]["value"] == 2 and rows["signins"]["go_live"] == 5
    assert rows["launches_per_user"]["value"] == round(4 / 6, 2)
    # 4 of 6 launched: the share would also tell that 2 people (fewer than 3) did not
    assert rows["launcher_share"]["value"] is None
    assert rows["launcher_share"]["go_live"] == 1.0  # March: all 7 launched


def test_adoption_cohorts_heatmap_dormant_departments(engine: sa.Engine) -> None:
    curve = queries.adoption_curve(
        engine, dt.date(2025, 3, 1), dt.date(2025, 5, 1), MIN, exact=True
    )
    assert curve == [
        {"key": "2025-03", "users": 7, "launches": 17, "signins": 5},
        {"key": "2025-04", "users": 6, "launches": 4, "signins": 2},
        {"key": "2025-05", "users": 0, "launches": 0, "signins": 0},
    ]
    cohorts = queries.cohorts(engine, dt.date(2025, 3, 1), dt.date(2025, 4, 1), MIN, exact=True)
    assert cohorts == [
        {
            "cohort": "2025-03",
            "size": 7,
            "retention": [
                {"month": "2025-03", "offset": 0, "share": 1.0},
                {"month": "2025-04", "offset": 1, "share": round(6 / 7, 4)},
            ],
        }
    ]
    cells = {(c["weekday"], c["hour"]): c for c in queries.heatmap(engine, MARCH, 2, exact=True)}
    assert cells[(0, 9)] == {"weekday": 0, "hour": 9, "launches": 11}  # Monday 09:xx local
    assert cells[(1, 9)] == {"weekday": 1, "hour": 9, "launches": 6}  # n2, n4 on Tuesday
    assert cells[(2, 9)] == {"weekday": 2, "hour": 9, "launches": 0}
    # with a minimum of 3, Tuesday (2 people) is hidden; Monday (5 people) is shown
    cells = {(c["weekday"], c["hour"]): c for c in queries.heatmap(engine, MARCH, MIN, exact=True)}
    assert cells[(1, 9)] == {"weekday": 1, "hour": 9, "launches": None, "suppressed": True}
    assert cells[(0, 9)] == {"weekday": 0, "hour": 9, "launches": 11}
    assert cells[(2, 9)] == {"weekday": 2, "hour": 9, "launches": 0}
    # April alone: n1..n3 and m1 on one Tuesday 14:00 -- 4 people, shown; March + April
    # together: the Tuesday-09 cell exists only in March, where it had 2 people: hidden
    both = {
        (c["weekday"], c["hour"]): c
        for c in queries.heatmap(engine, Period(MARCH.start, APRIL.end), MIN, exact=True)
    }
    assert both[(1, 9)].get("suppressed") is True
    # dormant on 2025-04-20: active in March, not since 2025-03-22 -- only m2 (n4 and n5
    # signed in on 04-15), which is fewer than 3 people; by the end of June the 6 seen on
    # 04-15 are, while m2 (not seen for over 90 days, portal.leaver_days) is a leaver
    dormant = queries.dormant(engine, REGISTRY, dt.date(2025, 4, 20), MIN, exact=True)
    assert dormant["baseline"] == "2025-03" and dormant["users"] is None
    later = queries.dormant(engine, REGISTRY, dt.date(2025, 6, 30), MIN, exact=True)
    assert later["users"] == 6 and later["leavers"] is None  # 1 leaver: fewer than 3
    depts = {r["key"]: r for r in queries.departments(engine, REGISTRY, MARCH, MIN, exact=True)}
    assert depts["youth-care"]["users"] == 0  # a department that never arrived shows 0
    assert depts["medical"].get("suppressed") and depts["nursing"]["users"] == 5


def test_department_share_of_headcount(engine: sa.Engine) -> None:
    depts = {r["key"]: r for r in queries.departments(engine, REGISTRY, MARCH, 1, exact=True)}
    assert depts["nursing"]["users"] == 5 and depts["nursing"]["share"] == 0.5
    assert depts["medical"]["share"] == 0.5 and depts["medical"]["headcount"] == 4


def test_csv_equals_json_equals_page(engine: sa.Engine) -> None:
    report = tables.build(engine, REGISTRY, MARCH, dt.date(2025, 4, 20), MIN)
    csv_rows = list(csv.DictReader(io.StringIO(report.tables["apps"].csv())))
    json_rows = queries.launches(engine, REGISTRY, MARCH, "app", MIN)
    assert [(r["app"], int(r["launches"]), int(r["users"])) for r in csv_rows] == [
        (r["key"], r["launches"], r["users"]) for r in json_rows
    ]
    dept_csv = report.tables["departments"].csv()
    assert "< 3" in dept_csv and ",5," not in dept_csv  # suppressed in the export too


def test_suppression_hides_small_rows_and_leaves_differences_to_the_noise() -> None:
    rows = [
        {"key": "a", "launches": 50, "users": 20},
        {"key": "b", "launches": 9, "users": 6},
        {"key": "c", "launches": 4, "users": 2},
        {"key": "d", "launches": 0, "users": 0},  # about nobody: reveals nobody
    ]
    out = queries.suppress_rows(rows, 5)
    assert [r.get("suppressed", False) for r in out] == [False, False, True, False]
    assert out[2] == {"key": "c", "launches": None, "users": None, "suppressed": True}


# --- the handlers: access rules and the page (in process) -------------------------------
REPORT_PATHS = [
    "/reports",
    "/reports/export.csv?table=apps",
    "/api/v1/reports/launches",
    "/api/v1/reports/active-users",
    "/api/v1/reports/comparison",
    "/api/v1/reports/cohorts",
    "/api/v1/reports/heatmap",
    "/api/v1/reports/departments",
]


def test_access_staff_403_reviewer_200(portal: InProcess) -> None:
    for path in REPORT_PATHS:
        r = portal.get(path)
        if path.startswith("/api/"):
            assert r.status_code == 401 and r.json()["status"] == 401, path
        else:
            assert r.status_code in (303, 401), path
    staff = portal.cookie(STAFF)
    for path in REPORT_PATHS:
        r = portal.get(path, staff)
        assert r.status_code == 403, path
        if path.startswith("/api/"):
            assert r.json()["status"] == 403
    reviewer = portal.cookie(REVIEWER)
    for path in REPORT_PATHS:
        r = portal.get(path, reviewer)
        assert r.status_code == 200, (path, r.text[:300])
    english = {"Accept-Language": "en"}
    page = portal.get("/reports?period=month&month=2025-03", reviewer, headers=english).text
    assert "<script>" not in page and "<svg" in page
    assert re.search(r'<svg class="chart[^"]*"[^>]*role="img"', page)
    assert "Adoption since go-live" in page
    bad = portal.get("/api/v1/reports/launches?by=user", reviewer)
    assert bad.status_code == 400 and "by" in bad.json()["message"]
    bad = portal.get("/api/v1/reports/launches?from=2025-13-01", reviewer)
    assert bad.status_code == 400


def test_quarters_compare_with_the_previous_quarter_and_the_first_three_months() -> None:
    q2 = periods.quarter_period(dt.date(2025, 5, 10))
    assert q2 == Period(dt.date(2025, 4, 1), dt.date(2025, 6, 30))
    assert q2.previous() == Period(dt.date(2025, 1, 1), dt.date(2025, 3, 31))
    assert MARCH.previous() == Period(dt.date(2025, 2, 1), dt.date(2025, 2, 28))
    days = Period(dt.date(2025, 3, 10), dt.date(2025, 3, 19))
    assert days.previous() == Period(dt.date(2025, 2, 28), dt.date(2025, 3, 9))
    assert periods.go_live_baseline(dt.date(2025, 3, 15), q2) == Period(
        dt.date(2025, 4, 1), dt.date(2025, 6, 30)
    )
    assert periods.go_live_baseline(dt.date(2025, 3, 1), MARCH) == MARCH
    assert periods.go_live_baseline(dt.date(2025, 3, 1), days) == Period(
        dt.date(2025, 3, 1), dt.date(2025, 3, 10)
    )


def test_csv_cells_that_look_like_formulas_are_defused() -> None:
    table = tables.Table("t", "T", ("department", "change"), [("=HYPERLINK(1)", "-2.0%")])
    rows = list(csv.reader(io.StringIO(table.csv())))
    assert rows[1] == ["'=HYPERLINK(1)", "-2.0%"]

"""The launches report on both databases: ``queries.launches`` and its JSON endpoint.

Launch events go straight into ``launch_event``; ``rebuild.rebuild`` then derives the tables the
reports read (as ``launcher db rebuild-rollups`` does), so every figure is traced to raw rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher.events import Launch
from launcher.models import SignInEvent, table
from launcher.registry import Registry, load_registry
from launcher.reports import queries, rebuild
from launcher.reports.periods import Period
from tests.helpers import EXAMPLE_APPS, REVIEWER, InProcess
from tests.reports_support import far_from_utc, insert_launches, utc

API = "/api/v1/reports/launches"
MARCH = Period(dt.date(2025, 3, 1), dt.date(2025, 3, 31))
BY = ("app", "category", "department", "day", "month")

# (UTC time, app, user, department)
Event = tuple[str, str, str, str | None]


@pytest.fixture
def registry() -> Registry:
    return load_registry(EXAMPLE_APPS)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    yield from far_from_utc(database_url)


def _load(
    engine: sa.Engine,
    registry: Registry,
    events: Sequence[Event],
    signins: Sequence[tuple[str, str]] = (),
) -> None:
    """Insert raw events and rebuild the rollups from them."""
    insert_launches(
        engine, [Launch(utc(ts), app, user, dept, "portal") for ts, app, user, dept in events]
    )
    if signins:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(table(SignInEvent)),
                [{"ts": utc(ts), "user_id": user, "department": None} for ts, user in signins],
            )
    rebuild.rebuild(engine, ZoneInfo(registry.portal.timezone))


def _row(key: str, launches: int, users: int) -> dict[str, Any]:
    return {"key": key, "launches": launches, "users": users}


def _hidden(key: str) -> dict[str, Any]:
    return {"key": key, "launches": None, "users": None, "suppressed": True}


# --- the query ------------------------------------------------------------------------------
def test_both_dates_are_inclusive_in_utc(engine: sa.Engine, registry: Registry) -> None:
    _load(
        engine,
        registry,
        [
            ("2025-02-28 23:59:59", "sharepoint", "u-before", "nursing"),  # one second early
            ("2025-03-01 00:00:00", "teams", "u1", "nursing"),
            ("2025-03-31 23:59:59", "outlook", "u2", "nursing"),
            ("2025-03-31 23:59:59.999999", "ehr", "u3", "medical"),
            ("2025-04-01 00:00:00", "rooster", "u-after", "nursing"),  # one second late
        ],
    )
    by_app = queries.launches(engine, registry, MARCH, "app", 1, exact=True)
    assert by_app == [_row("ehr", 1, 1), _row("outlook", 1, 1), _row("teams", 1, 1)]
    by_day = queries.launches(engine, registry, MARCH, "day", 1, exact=True)
    assert by_day == [_row("2025-03-01", 1, 1), _row("2025-03-31", 2, 2)]
    one_day = Period(dt.date(2025, 3, 31), dt.date(2025, 3, 31))
    assert queries.launches(engine, registry, one_day, "app", 1, exact=True) == [
        _row("ehr", 1, 1),
        _row("outlook", 1, 1),
    ]
    spring = Period(dt.date(2025, 2, 1), dt.date(2025, 4, 30))
    assert queries.launches(engine, registry, spring, "month", 1, exact=True) == [
        _row("2025-02", 1, 1),
        _row("2025-03", 3, 3),
        _row("2025-04", 1, 1),
    ]


GROUPED: list[Event] = [
    ("2025-03-02 08:00:00", "teams", "u1", "nursing"),
    ("2025-03-02 09:00:00", "teams", "u2", "nursing"),
    ("2025-03-02 10:00:00", "teams", "u1", "nursing"),  # same user again
    ("2025-03-15 07:00:00", "ehr", "u1", "nursing"),
    ("2025-03-15 07:30:00", "ehr", "u4", "medical"),
    ("2025-04-10 12:00:00", "teams", "u3", "medical"),
    ("2025-04-30 23:00:00", "retired-app", "u5", None),  # not in the registry any more
    ("2025-04-30 23:30:00", "outlook", "u2", "nursing"),
]
GROUPED_PERIOD = Period(dt.date(2025, 3, 1), dt.date(2025, 4, 30))
EXPECTED = {
    "app": [
        _row("ehr", 2, 2),
        _row("outlook", 1, 1),
        _row("retired-app", 1, 1),
        _row("teams", 4, 3),
    ],
    "category": [_row("care", 2, 2), _row("communication", 5, 3), _row("other", 1, 1)],
    "department": [_row("medical", 2, 2), _row("nursing", 5, 2), _row("unknown", 1, 1)],
    "day": [
        _row("2025-03-02", 3, 2),
        _row("2025-03-15", 2, 2),
        _row("2025-04-10", 1, 1),
        _row("2025-04-30", 2, 2),
    ],
    "month": [_row("2025-03", 5, 3), _row("2025-04", 3, 3)],
}


@pytest.mark.parametrize("by", BY)
def test_launches_by_each_breakdown(engine: sa.Engine, registry: Registry, by: str) -> None:
    # a sign-in without a launch makes nobody a launching user
    _load(engine, registry, GROUPED, signins=[("2025-03-02 07:00:00", "u-only-signed-in")])
    assert queries.launches(engine, registry, GROUPED_PERIOD, by, 1, exact=True) == EXPECTED[by]
    # keys with no launches are left out, whole periods included
    empty = Period(dt.date(2025, 5, 1), dt.date(2025, 5, 31))
    assert queries.launches(engine, registry, empty, by, 1, exact=True) == []


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        pytest.param(
            "app",
            [_hidden("ehr"), _hidden("outlook"), _hidden("retired-app"), _row("teams", 4, 3)],
            id="app",
        ),
        pytest.param(
            "category",
            [_hidden("care"), _row("communication", 5, 3), _hidden("other")],
            id="category",
        ),
        pytest.param(
            "department",
            [_hidden("medical"), _hidden("nursing"), _hidden("unknown")],
            id="department",
        ),
        pytest.param("month", [_row("2025-03", 5, 3), _row("2025-04", 3, 3)], id="month"),
    ],
)
def test_small_groups_are_suppressed(
    engine: sa.Engine, registry: Registry, by: str, expected: list[dict[str, Any]]
) -> None:
    _load(engine, registry, GROUPED)
    # with a minimum of 3, a row about 3 users is shown and one about 2 is not
    assert queries.launches(engine, registry, GROUPED_PERIOD, by, 3, exact=True) == expected


# --- the HTTP endpoint ----------------------------------------------------------------------
HTTP_EVENTS: list[Event] = [
    *[(f"2025-03-{day:02d} 09:00:00", "teams", f"u{day}", "nursing") for day in range(1, 7)],
    *[(f"2025-03-{day:02d} 10:00:00", "outlook", f"u{day}", "medical") for day in range(1, 6)],
    ("2025-03-31 23:59:59", "ehr", "u1", "medical"),
    ("2025-03-31 23:59:59", "ehr", "u2", "medical"),
    ("2025-03-20 12:00:00", "sharepoint", "u3", "nursing"),
    ("2025-02-28 23:59:59", "teams", "u7", "nursing"),  # the day before
    ("2025-04-01 00:00:00", "teams", "u7", "nursing"),  # the day after
]


def test_the_endpoint_answers_the_contract(
    portal_any_db: InProcess, engine: sa.Engine, registry: Registry
) -> None:
    assert portal_any_db.settings.report_min_group == 5
    reviewer = portal_any_db.as_user(REVIEWER)
    _load(engine, registry, HTTP_EVENTS)

    resp = reviewer.get(API, params={"from": "2025-03-01", "to": "2025-03-31", "by": "app"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body == {
        "from": "2025-03-01",
        "to": "2025-03-31",
        "by": "app",
        "rows": queries.launches(engine, registry, MARCH, "app", 5),
    }
    # the figures before their noise
    assert queries.launches(engine, registry, MARCH, "app", 5, exact=True) == [
        _hidden("ehr"),  # 2 users
        _row("outlook", 5, 5),  # exactly the minimum: shown
        _hidden("sharepoint"),  # 1 user
        _row("teams", 6, 6),  # not 8/7: the days around March are not in it
    ]
    published = {r["key"]: r for r in body["rows"]}
    assert published["ehr"] == _hidden("ehr")
    for key, true in (("outlook", 5), ("teams", 6)):
        assert abs(published[key]["users"] - true) <= 2, published[key]

    for by in BY:
        resp = reviewer.get(API, params={"from": "2025-03-01", "to": "2025-03-31", "by": by})
        assert resp.status_code == 200, by
        body = resp.json()
        assert list(body) == ["from", "to", "by", "rows"], by
        assert (body["from"], body["to"], body["by"]) == ("2025-03-01", "2025-03-31", by)
        assert body["rows"] == queries.launches(engine, registry, MARCH, by, 5), by
        for row in body["rows"]:
            if row.get("suppressed"):
                assert row == _hidden(row["key"]), by
            else:
                assert set(row) == {"key", "launches", "users"}, by
                assert row["users"] >= 5 and row["launches"] >= row["users"], by

    month = reviewer.get(API, params={"from": "2025-03-01", "to": "2025-03-31", "by": "month"})
    assert month.json()["rows"] == queries.launches(engine, registry, MARCH, "month", 5)
    assert queries.launches(engine, registry, MARCH, "month", 5, exact=True) == [
        _row("2025-03", 14, 6)
    ]


def test_parameters_defaults_and_errors(portal: InProcess) -> None:
    reviewer = portal.as_user(REVIEWER)
    default = reviewer.get(API)
    assert default.status_code == 200
    body = default.json()
    today = dt.datetime.now(dt.UTC).date()
    assert body["by"] == "app"
    assert body["to"] in (today.isoformat(), (today - dt.timedelta(days=1)).isoformat())
    span = dt.date.fromisoformat(body["to"]) - dt.date.fromisoformat(body["from"])
    assert span == dt.timedelta(days=29)

    bad = {
        "by=week": ({"by": "week"}, "by"),
        "by=App": ({"by": "App"}, "by"),
        "by=user": ({"by": "user"}, "by"),
        "month 13": ({"from": "2025-13-01", "to": "2025-12-31"}, "from"),
        "30 February": ({"from": "2025-01-01", "to": "2025-02-30"}, "to"),
        "words": ({"from": "yesterday"}, "from"),
        "no dashes": ({"from": "20250301", "to": "2025-03-31"}, "from"),
        "ISO week date": ({"from": "2025-W10-1", "to": "2025-03-31"}, "from"),
        "with a time": ({"from": "2025-03-01T00:00:00", "to": "2025-03-31"}, "from"),
        "from after to": ({"from": "2025-04-01", "to": "2025-03-01"}, "from"),
        "ten years": ({"from": "2015-01-01", "to": "2025-01-01"}, "days"),
    }
    for what, (params, mentioned) in bad.items():
        resp = reviewer.get(API, params=params)
        assert resp.status_code == 400, what
        assert resp.headers["content-type"].startswith("application/json"), what
        error = resp.json()
        assert error["status"] == 400 and error["error"] == "BadRequest", what
        assert mentioned in error["message"], (what, error["message"])

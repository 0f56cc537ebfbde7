"""Departments as organisations have them: the department claim mapped to registry ids
(launcher/auth/user.py ``department_of``), headcount per date in the department report, and
leavers left out of "dormant" (launcher/reports/queries.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.auth.user import department_of, user_from_claims
from launcher.registry import parse_registry
from launcher.reports import queries, rollups
from launcher.reports.periods import Period
from tests.helpers import BatchWriter, Launch, SignIn

REGISTRY = parse_registry(
    """
portal: {go_live: 2025-03-01, leaver_days: 60}
departments:
  - id: nursing
    name: Nursing
    claim_values: [VPL, Verpleging]
    headcount: {2025-01-01: 8, 2025-05-01: 4}
  - {id: it, name: IT, headcount: 2}
apps:
  - {id: teams, name: Teams, url: "https://teams.example/"}
"""
)
MIN = 3


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        pytest.param("nursing", "nursing", id="the registry id"),
        pytest.param("VPL", "nursing", id="an HR code"),
        pytest.param(" vpl ", "nursing", id="case and spaces ignored"),
        pytest.param("Verpleging", "nursing", id="a name"),
        pytest.param("FIN-01", None, id="claimed by no department: none, not itself"),
        pytest.param("", None, id="empty"),
        pytest.param(["VPL"], None, id="not text"),
    ],
)
def test_the_department_claim_maps_to_registry_ids(claim: object, expected: str | None) -> None:
    assert department_of(claim, REGISTRY.department_map()) == expected


def test_without_departments_in_the_registry_the_claim_is_kept() -> None:
    assert department_of("FIN-01", {}) == "FIN-01"
    assert department_of("x" * 300, None) == "x" * 128


def test_sign_in_records_the_mapped_department() -> None:
    claims = {"sub": "s1", "name": "N", "department": "VPL"}
    common: dict[str, Any] = {
        "issuer": "https://idp.example",
        "pseudonym_key": b"k" * 32,
        "groups_claim": "groups",
        "department_claim": "department",
    }
    user = user_from_claims(claims, departments=REGISTRY.department_map(), **common)
    assert user.department == "nursing"
    unknown = user_from_claims(
        {**claims, "department": "FIN"}, departments=REGISTRY.department_map(), **common
    )
    assert unknown.department is None


TZ = ZoneInfo("Europe/Amsterdam")
TODAY = dt.date(2025, 6, 30)  # dormant: not since 1 June; leaver: not since 2 May (60 days)


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """In March (the baseline): d1..d4, l1..l3, c1. d1..d4 were last seen on 10 May
    (dormant), l1..l3 in March only (leavers), c1 on 20 June (still active)."""
    eng = db.make_engine(database_url)
    march = dt.datetime(2025, 3, 12, 9, tzinfo=dt.UTC)
    people = [f"d{i}" for i in range(1, 5)] + [f"l{i}" for i in range(1, 4)] + ["c1"]
    launches = [Launch(march, "teams", p, "nursing", "portal") for p in people]
    signins = [SignIn(dt.datetime(2025, 5, 10, 9, tzinfo=dt.UTC), p, "nursing") for p in people[:4]]
    signins.append(SignIn(dt.datetime(2025, 6, 20, 9, tzinfo=dt.UTC), "c1", "nursing"))
    BatchWriter(eng, tmp_path / "spool", on_flush=rollups.apply).write("t", launches, signins, TZ)
    yield eng
    eng.dispose()


def test_leavers_are_left_out_of_dormant(engine: sa.Engine) -> None:
    found = queries.dormant(engine, REGISTRY, TODAY, MIN, exact=True)
    assert found["baseline"] == "2025-03" and found["leaver_days"] == 60
    assert (found["users"], found["leavers"]) == (4, 3)
    assert found["rows"] == [{"key": "nursing", "users": 4}]
    # with a year as the leaver threshold, l1..l3 are dormant too
    lenient = parse_registry(
        "portal: {go_live: 2025-03-01, leaver_days: 365}\n"
        "apps:\n  - {id: teams, name: Teams, url: 'https://teams.example/'}\n"
    )
    found = queries.dormant(engine, lenient, TODAY, MIN, exact=True)
    assert (found["users"], found["leavers"]) == (7, 0)


def test_share_of_headcount_uses_the_headcount_in_force(engine: sa.Engine) -> None:
    march = queries.departments(
        engine, REGISTRY, Period(dt.date(2025, 3, 1), dt.date(2025, 3, 31)), MIN, exact=True
    )
    june = queries.departments(
        engine, REGISTRY, Period(dt.date(2025, 5, 1), dt.date(2025, 5, 31)), MIN, exact=True
    )
    nursing_march = next(r for r in march if r["key"] == "nursing")
    nursing_may = next(r for r in june if r["key"] == "nursing")
    assert (nursing_march["users"], nursing_march["headcount"], nursing_march["share"]) == (
        8,
        8,
        1.0,
    )
    assert (nursing_may["users"], nursing_may["headcount"], nursing_may["share"]) == (4, 4, 1.0)

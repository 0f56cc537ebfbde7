"""Attacks on the front door's published figures (launcher/reports/gateway.py): can a reviewer
work out a figure about fewer than the minimum group by subtracting gateway figures the
reports show? On generated sign-in history (imported from an Entra export, a third of the
Teams sign-ins right after a launch from the portal), both databases.

As tests/test_reports_privacy.py does for the launch reports, each attack is judged as
tests/privacy_attacks.py says: it recovers every target from the exact rollups
(``exact=True``, what the gateway report published with complementary suppression only) and
hardly any from the published figures. The gateway report
has no app x department table: "a department minus its apps" is here the organisation's total
minus the departments shown, and minus the apps shown.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.auth.user import pseudonym
from launcher.events import Launch
from launcher.reports import cellkey, gateway
from launcher.reports.periods import Period
from launcher.reports.queries import Row
from launcher.signins import importer
from tests.privacy_attacks import (
    APRIL,
    BOARD,
    BOUND,
    DAYS,
    MARCH,
    MIN,
    SPRING,
    STAFF,
    START,
    TOOLS,
    Attack,
    Outcome,
    by_key,
    judge_attack,
    total_minus_board,
    write_launches,
)

KEY, ISSUER = b"k" * 32, "https://idp.example/"
MAPPING = {f"app-{a}": a for a in ("teams", "fax", *TOOLS)}


def _uid(oid: str) -> str:
    return pseudonym(KEY, ISSUER, oid)


def _history(seed: int = 13) -> tuple[list[dict[str, Any]], list[Launch]]:
    """Entra records and the portal's launches. Everyone signs in to Teams on most days, a
    third of the time right after launching it from the portal; each day one to three people
    sign in to the fax (a figure never shown); each tool has six or more people signing in to
    it in March and one to three in April; the board's two sign in to Teams most days;
    everyone signs in to Miro (no tile) now and then."""
    rnd = random.Random(seed)
    records: list[dict[str, Any]] = []
    launches: list[Launch] = []

    def signin(day: dt.date, oid: str, dept: str, app: str, name: str, portal: bool) -> None:
        at = dt.datetime.combine(day, dt.time(7), tzinfo=dt.UTC) + dt.timedelta(
            seconds=rnd.randrange(10 * 3600)
        )
        records.append(
            {
                "id": f"r{len(records)}",
                "createdDateTime": at.isoformat().replace("+00:00", "Z"),
                "userId": oid,
                "appId": f"app-{app}",
                "appDisplayName": name,
                "status": {"errorCode": 0},
                "isInteractive": True,
            }
        )
        if portal:
            launches.append(Launch(at - dt.timedelta(seconds=30), app, _uid(oid), dept, "portal"))

    for day in DAYS:
        for oid, dept in STAFF + BOARD:
            for _ in range(rnd.choice((0, 1, 1, 2))):
                signin(day, oid, dept, "teams", "Microsoft Teams", rnd.random() < 0.35)
            if rnd.random() < 0.1:
                signin(day, oid, dept, "miro", "Miro", False)
        for oid, dept in rnd.sample(STAFF, rnd.randint(1, 3)):
            for _ in range(rnd.randint(1, 2)):
                signin(day, oid, dept, "fax", "Fax", rnd.random() < 0.5)
    for tool in TOOLS:
        for oid, dept in rnd.sample(STAFF, rnd.randint(6, 9)):
            signin(rnd.choice(DAYS[:31]), oid, dept, tool, tool, rnd.random() < 0.5)
        for oid, dept in rnd.sample(STAFF, rnd.randint(1, 3)):
            for _ in range(rnd.randint(1, 3)):
                signin(rnd.choice(DAYS[31:]), oid, dept, tool, tool, rnd.random() < 0.5)
    # everyone is known to the portal (a department) from a launch before the period
    before = dt.datetime(2025, 2, 20, 9, tzinfo=dt.UTC)
    launches += [Launch(before, "teams", _uid(oid), dept, "portal") for oid, dept in STAFF + BOARD]
    return records, launches


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    eng = db.make_engine(database_url)
    records, launches = _history()
    launches.sort(key=lambda launch: launch.ts)
    write_launches(eng, launches, tmp_path / "spool")
    path = tmp_path / "signins.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    importer.import_files(eng, None, MAPPING, "entra", [path], pseudonym=(KEY, ISSUER))
    with eng.connect() as conn:  # the join did its work: the history is what it says
        via = conn.execute(sa.text("SELECT SUM(via_portal) FROM imported_signin")).scalar()
    assert via and via > 1000
    yield eng
    eng.dispose()


def _by(rows: list[Row], column: str = "signins") -> dict[str, Any]:
    return by_key(rows, column)


def _overlapping_ranges(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """The fax's sign-ins over 1 March to day N minus 1 March to day N - 1 = day N's."""
    out = []
    for day in DAYS[10:]:
        longer = gateway.gateway(engine, Period(START, day), "app", MIN, exact=exact)
        shorter_period = Period(START, day - dt.timedelta(days=1))
        shorter = gateway.gateway(engine, shorter_period, "app", MIN, exact=exact)
        one_day = Period(day, day)
        assert _by(gateway.gateway(engine, one_day, "app", MIN))["fax"] is None
        true = _by(gateway.gateway(engine, one_day, "app", 1, exact=True))["fax"]
        out.append((_by(longer)["fax"] - _by(shorter)["fax"], true, BOUND))
    return out


def _month_differencing(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """A tool's sign-ins (and its people) in March and April minus in March = in April
    (1 to 3 people; the people: those who signed in in April and not in March)."""
    both = gateway.gateway(engine, SPRING, "app", MIN, exact=exact)
    march = gateway.gateway(engine, MARCH, "app", MIN, exact=exact)
    april = _by(gateway.gateway(engine, APRIL, "app", MIN))
    true_both = gateway.gateway(engine, SPRING, "app", 1, exact=True)
    true_march = gateway.gateway(engine, MARCH, "app", 1, exact=True)
    true_april = _by(gateway.gateway(engine, APRIL, "app", 1, exact=True))
    out = []
    for tool in TOOLS:
        assert april[tool] is None  # hidden in the table itself
        out.append((_by(both)[tool] - _by(march)[tool], true_april[tool], BOUND))
        new_people = _by(true_both, "users")[tool] - _by(true_march, "users")[tool]
        if new_people:
            derived = _by(both, "users")[tool] - _by(march, "users")[tool]
            out.append((derived, new_people, BOUND))
    return out


def _total_minus_departments(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """The organisation's sign-ins minus every department shown = the board's two people."""
    return total_minus_board(
        exact,
        lambda period, e: gateway.front_door(engine, period, MIN, exact=e)["signins"],
        lambda period, m, e: gateway.gateway(engine, period, "department", m, exact=e),
        "signins",
    )


def _total_minus_apps(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """The organisation's sign-ins minus every app shown = the hidden apps' (the fax and the
    tools of the day, each about one to three people)."""
    out = []
    for day in DAYS:
        period = Period(day, day)
        total = gateway.front_door(engine, period, MIN, exact=exact)["signins"]
        apps = gateway.gateway(engine, period, "app", MIN, exact=exact)
        true = _by(gateway.gateway(engine, period, "app", 1, exact=True))
        hidden = [r["key"] for r in apps if r.get("suppressed")]
        visible = [r["signins"] for r in apps if not r.get("suppressed")]
        out.append((total - sum(visible), sum(true[k] for k in hidden), 2 * (len(visible) + 1)))
    return out


ATTACKS: dict[str, Attack] = {
    "overlapping day ranges": _overlapping_ranges,
    "month differencing": _month_differencing,
    "organisation total minus the departments shown": _total_minus_departments,
    "organisation total minus the apps shown": _total_minus_apps,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_subtraction_attacks_recover_exact_figures_but_not_published_ones(
    engine: sa.Engine, attack: str
) -> None:
    judge_attack(ATTACKS[attack], engine)


def test_the_same_sign_ins_always_show_the_same_figures(engine: sa.Engine) -> None:
    """Asking again, or for a range that holds the same sign-ins, tells nothing new."""
    first = gateway.gateway(engine, SPRING, "app", MIN)
    assert gateway.gateway(engine, SPRING, "app", MIN) == first
    longer = Period(SPRING.start, dt.date(2025, 5, 31))  # May has no sign-ins
    assert gateway.gateway(engine, longer, "app", MIN) == first
    assert gateway.front_door(engine, longer, MIN) == gateway.front_door(engine, SPRING, MIN)


def test_big_groups_stay_within_a_few_percent(engine: sa.Engine) -> None:
    """Counts of 100 or more within 1 %, of 40 or more within 5 %, and the share of a row
    about many sign-ins within a point of the true one."""
    checked = 0
    for period in (MARCH, APRIL, SPRING, Period(dt.date(2025, 3, 10), dt.date(2025, 4, 9))):
        for by in ("app", "department", "month", "unregistered", None):
            if by is None:
                published = [gateway.front_door(engine, period, MIN)]
                true_rows = [gateway.front_door(engine, period, MIN, exact=True)]
            else:
                published = gateway.gateway(engine, period, by, MIN)
                true_rows = gateway.gateway(engine, period, by, MIN, exact=True)
            for row, true in zip(published, true_rows, strict=True):
                if true.get("suppressed"):
                    continue
                for column in ("signins", "via_portal", "users"):
                    value, want = row.get(column), true.get(column)
                    if want is None or want < 40:
                        continue
                    assert abs(value - want) <= (0.01 if want >= 100 else 0.05) * want
                    checked += 1
                if true.get("share") is not None and true["signins"] >= 1000:
                    assert abs(row["share"] - true["share"]) <= 0.01
                    checked += 1
    assert checked >= 40
    # and the p-table itself: counts from 40 up move by at most 5 %
    for count in range(40, 3000):
        for key in (0, 1 << 31, cellkey.MOD - 1, 12345 * 7919):
            assert abs(cellkey.perturb(count, key) - count) <= 0.05 * count

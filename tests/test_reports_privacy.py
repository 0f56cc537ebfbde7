"""Attacks on the published figures: can a reviewer work out a figure about fewer than the
minimum group by subtracting figures the reports show? On generated history, both databases.

Each attack is judged as tests/privacy_attacks.py says: it recovers every target from the
exact rollups (``exact=True``, what the reports published before the cell-key method) and
hardly any from the published figures.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from launcher import db
from launcher.events import Launch
from launcher.registry import Registry, parse_registry
from launcher.reports import cellkey, queries
from launcher.reports.periods import Period
from tests.privacy_attacks import (
    BOARD,
    BOUND,
    DAYS,
    MARCH,
    MIN,
    SPRING,
    STAFF,
    START,
    TOOLS,
    WARDS,
    Attack,
    Outcome,
    by_key,
    judge_attack,
    total_minus_board,
    write_launches,
)

REGISTRY: Registry = parse_registry(
    "portal: {title: Test, go_live: 2025-03-01, timezone: Europe/Amsterdam}\n"
    "categories:\n"
    "  - {id: communication, name: Communication}\n"
    "  - {id: tools, name: Tools}\n"
    "apps:\n"
    '  - {id: teams, name: Teams, url: "https://teams.example/", category: communication}\n'
    '  - {id: fax, name: Fax, url: "https://fax.example/", category: communication}\n'
    + "".join(
        f'  - {{id: {t}, name: {t}, url: "https://{t}.example/", category: tools}}\n' for t in TOOLS
    )
)


def _history(seed: int = 11) -> list[Launch]:
    """Everyone launches Teams on most days; each day one to three people use the fax (a
    figure that is never shown); each tool has six or more users in March and one to three in
    April; the two board members launch Teams most days."""
    rnd = random.Random(seed)
    out: list[Launch] = []

    def at(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(7), tzinfo=dt.UTC) + dt.timedelta(
            seconds=rnd.randrange(10 * 3600)
        )

    for day in DAYS:
        for user, ward in STAFF + BOARD:
            for _ in range(rnd.choice((0, 1, 1, 2))):
                out.append(Launch(at(day), "teams", user, ward, "portal"))
        for user, ward in rnd.sample(STAFF, rnd.randint(1, 3)):
            out += [Launch(at(day), "fax", user, ward, "portal")] * rnd.randint(1, 2)
    for tool in TOOLS:
        for user, ward in rnd.sample(STAFF, rnd.randint(6, 9)):
            out.append(Launch(at(rnd.choice(DAYS[:31])), tool, user, ward, "portal"))
        for user, ward in rnd.sample(STAFF, rnd.randint(1, 3)):
            for _ in range(rnd.randint(1, 3)):
                out.append(Launch(at(rnd.choice(DAYS[31:])), tool, user, ward, "portal"))
    return out


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    eng = db.make_engine(database_url)
    write_launches(eng, _history(), tmp_path / "spool")
    yield eng
    eng.dispose()


def _by(rows: list[queries.Row], column: str = "launches") -> dict[str, Any]:
    return by_key(rows, column)


def _category_minus_apps(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """Communication's launches minus Teams' = the fax's, a figure about 1 to 3 people."""
    out = []
    for day in DAYS:
        period = Period(day, day)
        apps = queries.launches(engine, REGISTRY, period, "app", MIN, exact=exact)
        cats = queries.launches(engine, REGISTRY, period, "category", MIN, exact=exact)
        true = queries.launches(engine, REGISTRY, period, "app", 1, exact=True)
        assert _by(apps)["fax"] is None  # hidden in the table itself
        derived = _by(cats)["communication"] - _by(apps)["teams"]
        out.append((derived, _by(true)["fax"], BOUND))
    return out


def _overlapping_ranges(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """The fax's launches over 1 March to day N minus 1 March to day N - 1 = day N's."""
    out = []
    for day in DAYS[10:]:
        longer = queries.launches(engine, REGISTRY, Period(START, day), "app", MIN, exact=exact)
        shorter_period = Period(START, day - dt.timedelta(days=1))
        shorter = queries.launches(engine, REGISTRY, shorter_period, "app", MIN, exact=exact)
        one_day = queries.launches(engine, REGISTRY, Period(day, day), "app", 1, exact=True)
        derived = _by(longer)["fax"] - _by(shorter)["fax"]
        out.append((derived, _by(one_day)["fax"], BOUND))
    return out


def _month_differencing(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """A tool's launches in March and April minus in March = in April (1 to 3 people)."""
    both = _by(queries.launches(engine, REGISTRY, SPRING, "app", MIN, exact=exact))
    march = _by(queries.launches(engine, REGISTRY, MARCH, "app", MIN, exact=exact))
    april_period = Period(dt.date(2025, 4, 1), dt.date(2025, 4, 30))
    april = _by(queries.launches(engine, REGISTRY, april_period, "app", MIN, exact=exact))
    true = _by(queries.launches(engine, REGISTRY, april_period, "app", 1, exact=True))
    out = []
    for tool in TOOLS:
        assert april[tool] is None
        out.append((both[tool] - march[tool], true[tool], BOUND))
    return out


def _department_minus_apps(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """A ward's launches minus its apps shown in the app x department table = its hidden
    cells (the fax and tools in that ward), per ward and day."""
    out = []
    for day in DAYS[::2]:
        period = Period(day, day)
        wards = _by(queries.launches(engine, REGISTRY, period, "department", MIN, exact=exact))
        cells = queries.app_departments(engine, period, MIN, exact=exact)
        true_cells = queries.app_departments(engine, period, 1, exact=True)
        for ward in WARDS:
            shown = [c for c in cells if c["department"] == ward and not c.get("suppressed")]
            hidden = {c["key"] for c in cells if c["department"] == ward and c.get("suppressed")}
            if not hidden or wards[ward] is None:
                continue
            derived = wards[ward] - sum(c["launches"] for c in shown)
            true = sum(c["launches"] for c in true_cells if c["key"] in hidden)
            out.append((derived, true, 2 * (len(shown) + 1)))
    return out


def _total_minus_breakdown(engine: sa.Engine, exact: bool) -> list[Outcome]:
    """The organisation's launches minus every department shown = the board's two people."""

    def total(period: Period, e: bool) -> Any:
        rows = queries.comparison(engine, REGISTRY, period, MIN, exact=e)["rows"]
        return next(r["value"] for r in rows if r["metric"] == "launches")

    return total_minus_board(
        exact,
        total,
        lambda period, m, e: queries.launches(engine, REGISTRY, period, "department", m, exact=e),
        "launches",
    )


ATTACKS: dict[str, Attack] = {
    "category minus apps": _category_minus_apps,
    "overlapping day ranges": _overlapping_ranges,
    "month differencing": _month_differencing,
    "department minus its apps": _department_minus_apps,
    "organisation total minus a breakdown": _total_minus_breakdown,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_subtraction_attacks_recover_exact_figures_but_not_published_ones(
    engine: sa.Engine, attack: str
) -> None:
    judge_attack(ATTACKS[attack], engine)


def test_the_same_records_always_show_the_same_figures(engine: sa.Engine) -> None:
    """Asking again, or asking for a range that holds the same records, tells nothing new."""
    first = queries.launches(engine, REGISTRY, SPRING, "app", MIN)
    assert queries.launches(engine, REGISTRY, SPRING, "app", MIN) == first
    # May has no launches: March to May is the same set of records as March to April
    longer = Period(SPRING.start, dt.date(2025, 5, 31))
    assert queries.launches(engine, REGISTRY, longer, "app", MIN) == first


def test_big_groups_stay_within_one_percent(engine: sa.Engine) -> None:
    """Every published figure about 100 or more people is within 1 % of the true one."""
    checked = 0
    for period in (MARCH, SPRING, Period(dt.date(2025, 4, 1), dt.date(2025, 4, 30))):
        for by in ("app", "category", "month"):
            exact = {
                r["key"]: r for r in queries.launches(engine, REGISTRY, period, by, MIN, exact=True)
            }
            for row in queries.launches(engine, REGISTRY, period, by, MIN):
                true = exact[row["key"]]
                if true["users"] is None:
                    continue
                for column in ("launches", "users"):
                    if true["users"] >= 60 and true[column] >= 100:
                        assert abs(row[column] - true[column]) <= 0.01 * true[column]
                        checked += 1
    assert checked >= 10
    # and the p-table itself, for every count from 100 up
    for count in range(100, 5000):
        for key in (0, 1 << 31, cellkey.MOD - 1, 12345 * 7919):
            assert abs(cellkey.perturb(count, key) - count) <= 0.01 * count


def test_the_noise_is_bounded_symmetric_and_keeps_positive_counts_positive() -> None:
    rnd = random.Random(3)
    for count in (1, 2, 3, 5, 50, 150, 1000):
        noises = [cellkey.noise(count, rnd.randrange(cellkey.MOD)) for _ in range(20_000)]
        bound = cellkey.max_noise(count)
        assert set(noises) == set(range(-bound, bound + 1))
        assert abs(sum(noises) / len(noises)) < 0.05  # zero on average
        assert all(count + n >= 1 for n in noises)
    assert cellkey.perturb(0, 12345) == 0


@given(
    st.datetimes(min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=2))]),
)
def test_a_launch_time_is_keyed_as_strftime_writes_it(when: dt.datetime, tz: Any) -> None:
    """cellkey.ts_text's text is the one the rebuild's SQL and the stored keys were made from
    (strftime's), whatever the time and zone: a different text would key a launch anew."""
    ts = when.replace(tzinfo=tz)
    utc = ts.astimezone(dt.UTC) if tz is not None else ts
    assert cellkey.ts_text(ts) == utc.strftime("%Y-%m-%d %H:%M:%S.%f")

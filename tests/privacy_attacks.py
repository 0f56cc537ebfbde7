"""What the subtraction attacks on published figures share (tests/test_reports_privacy.py on
the launch reports, tests/test_reports_gateway_privacy.py on the front door): the generated
organisation's shape, and how an attack is judged.

Each attack runs over many small targets twice: against the exact rollups (``exact=True``),
where it must recover every target -- so the attack is real and the test can fail -- and
against the published figures, where the derived value must be wrong for most targets and the
attacker may pin the true value (the only one the figures and the noise's bound allow) for
hardly any.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher.events import BatchWriter, Launch
from launcher.reports import rollups
from launcher.reports.periods import Period

TZ = ZoneInfo("Europe/Amsterdam")
MIN = 5
START = dt.date(2025, 3, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(61)]  # March and April
MARCH = Period(dt.date(2025, 3, 1), dt.date(2025, 3, 31))
APRIL = Period(dt.date(2025, 4, 1), dt.date(2025, 4, 30))
SPRING = Period(MARCH.start, APRIL.end)
WARDS = ["ward-a", "ward-b", "ward-c", "ward-d", "ward-e"]
TOOLS = [f"tool-{i:02d}" for i in range(30)]
STAFF = [(f"s{i:03d}", WARDS[i % len(WARDS)]) for i in range(60)]
BOARD = [("b1", "board"), ("b2", "board")]  # a department of two: never shown alone

# (derived value, true value, the bound of the noise the derivation went through)
Outcome = tuple[Any, Any, int]
Attack = Callable[[sa.Engine, bool], list[Outcome]]
BOUND = 2 * 2  # two published figures, each moved by at most 2


def judge(outcomes: list[Outcome], exact: bool) -> None:
    assert len(outcomes) >= 25, "too few targets to judge"
    right = sum(derived == true for derived, true, _ in outcomes)
    if exact:
        assert right == len(outcomes), "the control run must recover every target"
        return
    # the attacker knows a hidden figure is at least 1: with bounded noise, a derived value
    # far enough below leaves one candidate. Count how often that happens.
    pinned = sum(derived + bound <= 1 for derived, _, bound in outcomes)
    assert right <= len(outcomes) // 2, f"{right} of {len(outcomes)} recovered"
    assert pinned <= len(outcomes) // 10, f"{pinned} of {len(outcomes)} pinned"
    assert all(abs(derived - true) <= bound for derived, true, bound in outcomes)


def judge_attack(attack: Attack, engine: sa.Engine) -> None:
    """The attack recovers the exact figures and fails on the published ones."""
    judge(attack(engine, True), exact=True)
    judge(attack(engine, False), exact=False)


def by_key(rows: Sequence[Any], column: str) -> dict[str, Any]:
    """A report's rows as ``{key: the column's figure}``."""
    return {r["key"]: r[column] for r in rows}


def write_launches(engine: sa.Engine, launches: Sequence[Launch], spool: Path) -> None:
    """Write ``launches`` as the portal does (the rollups kept per flush), 2,000 a batch."""
    writer = BatchWriter(engine, spool, on_flush=rollups.apply)
    for i in range(0, len(launches), 2000):
        writer.write(f"history-{i}", list(launches[i : i + 2000]), [], TZ)


def total_minus_board(
    exact: bool,
    total: Callable[[Period, bool], Any],
    departments: Callable[[Period, int, bool], Sequence[Any]],
    column: str,
) -> list[Outcome]:
    """Each day, the organisation's ``total`` minus every department shown = the board's two
    people. ``departments(period, min_group, exact)`` is the report by department."""
    out = []
    for day in DAYS:
        period = Period(day, day)
        shown = departments(period, MIN, exact)
        true = by_key(departments(period, 1, True), column)
        if true.get("board") is None:
            continue
        assert by_key(shown, column)["board"] is None
        visible = [r[column] for r in shown if not r.get("suppressed")]
        derived = total(period, exact) - sum(visible)
        out.append((derived, true["board"], 2 * (len(visible) + 1)))
    return out

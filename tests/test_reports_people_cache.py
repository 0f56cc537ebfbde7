"""The bitmaps a report process keeps decoded (launcher/reports/distinct.py): after a late
batch to a past month of a cached year, a purge and a rebuild, the figures are those of the
raw events and of a process that starts cold -- never the cache's old ones; and the launch
counts read from usage_month agree with the raw events too."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.dates import utc
from launcher.events import BatchWriter, Launch, SignIn
from launcher.registry import load_registry
from launcher.reports import distinct, queries, rebuild, rollups
from launcher.reports.periods import Period
from tests.helpers import EXAMPLE_APPS

TZ = ZoneInfo("Europe/Amsterdam")
# a whole year (2024, read as one union), whole months and ragged days at both edges
PERIOD = Period(dt.date(2023, 12, 20), dt.date(2025, 3, 17))
REGISTRY = load_registry(EXAMPLE_APPS)


@pytest.fixture(autouse=True)
def _cold() -> Iterator[None]:
    distinct.CACHE.clear()
    yield
    distinct.CACHE.clear()


def _history(seed: int) -> list[Any]:
    rnd = random.Random(seed)
    start = dt.datetime(2023, 12, 1, 8, tzinfo=dt.UTC)
    out: list[Any] = []
    for _ in range(900):
        ts = start + dt.timedelta(hours=rnd.randrange(24 * 480))
        user = f"u{rnd.randrange(60)}"
        dept = rnd.choice(["nursing", "medical", None])
        if rnd.random() < 0.2:
            out.append(SignIn(ts, user, dept))
        else:
            out.append(Launch(ts, rnd.choice(["teams", "ehr", "rooster"]), user, dept, "portal"))
    return out


def _write(engine: sa.Engine, spool: Path, events: list[Any], size: int = 150) -> None:
    writer = BatchWriter(engine, spool, on_flush=rollups.apply)
    for i in range(0, len(events), size):
        batch = events[i : i + size]
        writer.write(
            f"{spool.name}-{i}",
            [e for e in batch if isinstance(e, Launch)],
            [e for e in batch if isinstance(e, SignIn)],
            TZ,
        )


def _naive(engine: sa.Engine, period: Period) -> dict[str, dict[str, tuple[int, int]]]:
    """Launches and distinct launchers per app, department and app/department, from the raw
    launches (UTC days, as the rollups)."""
    lo, hi = period.bounds
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                rollups.T_LAUNCH.c.ts,
                rollups.T_LAUNCH.c.app_id,
                rollups.T_LAUNCH.c.user_id,
                rollups.T_LAUNCH.c.department,
            )
        ).all()
    launches: dict[str, dict[str, int]] = {"app": {}, "department": {}, "cell": {}}
    users: dict[str, dict[str, set[str]]] = {"app": {}, "department": {}, "cell": {}}
    # a person's department on a day is the greatest of the day's (user_day): as the bitmaps
    day_dept: dict[tuple[dt.date, str], str] = {}
    kept = [r for r in rows if lo <= utc(r.ts) < hi]
    for r in kept:
        person_day = (utc(r.ts).date(), r.user_id)
        day_dept[person_day] = max(day_dept.get(person_day, ""), r.department or "")
    for r in kept:
        dept = day_dept[(utc(r.ts).date(), r.user_id)] or "unknown"
        for by, key in (
            ("app", r.app_id),
            ("department", r.department or "unknown"),
            ("cell", f"{r.app_id}/{r.department or 'unknown'}"),
        ):
            launches[by][key] = launches[by].get(key, 0) + 1
        for by, key in (("app", r.app_id), ("department", dept), ("cell", f"{r.app_id}/{dept}")):
            users[by].setdefault(key, set()).add(r.user_id)
    return {
        by: {k: (launches[by].get(k, 0), len(users[by].get(k, ()))) for k in users[by]}
        for by in launches
    }


def _reports(engine: sa.Engine, period: Period) -> dict[str, dict[str, tuple[int, int]]]:
    def pairs(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
        return {r["key"]: (r["launches"], r["users"]) for r in rows}

    return {
        "app": pairs(queries.launches(engine, REGISTRY, period, "app", 1, exact=True)),
        "department": pairs(
            queries.launches(engine, REGISTRY, period, "department", 1, exact=True)
        ),
        "cell": pairs(queries.app_departments(engine, period, 1, exact=True)),
    }


def _launch_totals(found: dict[str, dict[str, tuple[int, int]]]) -> dict[str, dict[str, int]]:
    return {by: {k: n for k, (n, _) in rows.items()} for by, rows in found.items()}


def _check(engine: sa.Engine, period: Period = PERIOD) -> dict[str, dict[str, tuple[int, int]]]:
    """The reports over ``period`` from whatever the cache holds, equal to a cold process's
    and to the raw events'. Distinct launchers by department follow the bitmaps' rule (the
    day's greatest department), launch counts the launches' own."""
    warm = _reports(engine, period)
    distinct.CACHE.clear()
    cold = _reports(engine, period)
    assert warm == cold
    naive = _naive(engine, period)
    assert {k: u for k, (_, u) in warm["app"].items()} == {
        k: u for k, (_, u) in naive["app"].items()
    }
    assert _launch_totals(warm)["app"] == _launch_totals(naive)["app"]
    assert sum(_launch_totals(warm)["department"].values()) == sum(
        _launch_totals(naive)["department"].values()
    )
    return warm


def test_a_late_batch_to_a_past_month_of_a_cached_year_is_counted(
    database_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(database_url)
    _write(engine, tmp_path / "a", _history(1))
    before = _check(engine)
    _reports(engine, PERIOD)  # the cache holds 2024's union and the edges now
    hits = distinct.CACHE.hits
    _reports(engine, PERIOD)
    assert distinct.CACHE.hits > hits and len(distinct.CACHE) > 0
    # someone new in June 2024, and a known person in a new app and department that day
    late = [
        Launch(dt.datetime(2024, 6, 10, 9, tzinfo=dt.UTC), "teams", "zed", "nursing", "portal"),
        Launch(dt.datetime(2024, 6, 10, 10, tzinfo=dt.UTC), "ehr", "u1", "it", "portal"),
    ]
    _write(engine, tmp_path / "b", late)
    after = _check(engine)
    assert after["app"]["teams"][1] == before["app"]["teams"][1] + 1
    assert after["cell"]["ehr/it"][1] == 1
    engine.dispose()


def test_a_purge_and_a_rebuild_leave_no_stale_bitmap(database_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(database_url)
    _write(engine, tmp_path / "a", _history(2))
    _check(engine)
    _reports(engine, PERIOD)
    # a rebuild from raw events that changed behind the rollups' back: one person's 2024
    # launches are gone, another's are there twice
    with engine.begin() as conn:
        t = rollups.T_LAUNCH
        conn.execute(sa.delete(t).where(t.c.user_id == "u7"))
        rows = conn.execute(sa.select(t).where(t.c.user_id == "u8")).mappings().all()
        conn.execute(sa.insert(t), [{k: v for k, v in r.items() if k != "id"} for r in rows])
    rebuild.rebuild(engine, TZ)
    after = _check(engine)
    assert not any("u7" in str(k) for k in after["app"])  # (users are counted, not named)
    # the purge takes the bitmaps of days and months before 2024-07 with it
    with engine.begin() as conn:
        rebuild.purge_people(conn, dt.date(2024, 7, 1))
    warm = _reports(engine, PERIOD)
    distinct.CACHE.clear()
    assert warm == _reports(engine, PERIOD)
    later = _reports(engine, Period(dt.date(2024, 7, 1), PERIOD.end))
    assert {k: u for k, (_, u) in warm["app"].items()} == {
        k: u for k, (_, u) in later["app"].items()
    }
    engine.dispose()


def test_the_cache_keeps_to_its_budget_and_is_shared_by_threads(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    _write(engine, tmp_path / "a", _history(3))
    expected = _reports(engine, PERIOD)
    budget = distinct.CACHE.budget
    distinct.CACHE.clear()
    distinct.CACHE.budget = 6_000  # a few entries: the rest are read again
    try:
        found: list[Any] = []

        def run() -> None:
            for _ in range(3):
                found.append(_reports(engine, PERIOD))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert found == [expected] * 12
        assert 0 < distinct.CACHE.size <= 6_000
    finally:
        distinct.CACHE.budget = budget
    engine.dispose()

"""Rollups kept incrementally agree with a recount from raw events, on both databases."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import db
from launcher.dates import utc
from launcher.events import BatchWriter, Event, Launch, SignIn
from launcher.reports import cellkey, people, rebuild, rollups

TZ = ZoneInfo("Europe/Amsterdam")
APPS = ["teams", "ehr", "rooster", "outlook"]
DEPTS = ["nursing", "medical", None]


def _events(n: int, seed: int = 7) -> tuple[list[Launch], list[SignIn]]:
    rnd = random.Random(seed)
    start = dt.datetime(2025, 2, 20, tzinfo=dt.UTC)
    launches, signins = [], []
    for _ in range(n):
        ts = start + dt.timedelta(seconds=rnd.randrange(0, 70 * 86400))
        user = f"u{rnd.randrange(40):02d}"
        dept = DEPTS[int(user[1:]) % 3]
        if rnd.random() < 0.2:
            signins.append(SignIn(ts, user, dept))
        else:
            launches.append(Launch(ts, rnd.choice(APPS), user, dept, "portal"))
    return launches, signins


def _snapshot(engine: sa.Engine) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    with engine.connect() as conn:
        for table in rollups.ROLLUP_TABLES:
            if table is rollups.T_CELL_SEEN:
                continue
            cols = sorted(table.c, key=lambda c: c.name)
            out[table.name] = sorted(tuple(r) for r in conn.execute(sa.select(*cols)))
    return out


class _Store(BatchWriter):
    """The event writer with the rollups, as the portal runs it; one call, one batch."""

    def __init__(self, engine: sa.Engine, tmp_path: Path) -> None:
        super().__init__(engine, tmp_path / "spool", on_flush=rollups.apply)
        self.batches = 0

    def write_events(self, events: list[Event]) -> None:
        self.batches += 1
        launches = [e for e in events if isinstance(e, Launch)]
        signins = [e for e in events if isinstance(e, SignIn)]
        self.write(f"test-{self.batches}", launches, signins, TZ)


def _store(engine: sa.Engine, tmp_path: Path) -> _Store:
    return _Store(engine, tmp_path)


def test_incremental_equals_recount_and_rebuild(database_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(database_url)
    launches, signins = _events(3000)
    store = _store(engine, tmp_path)
    events: list[Event] = [*launches, *signins]
    random.Random(1).shuffle(events)  # batches arrive out of order, as spool replays do
    for i in range(0, len(events), 137):
        store.write_events(events[i : i + 137])
    incremental = _snapshot(engine)

    # an independent recount in Python
    months: dict[dt.date, set[str]] = {}
    launchers: dict[dt.date, set[str]] = {}
    for e in events:
        m = e.ts.date().replace(day=1)
        months.setdefault(m, set()).add(e.user_id)
        if isinstance(e, Launch):
            launchers.setdefault(m, set()).add(e.user_id)

    def named(table: sa.Table) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(table))]

    M = cellkey.MOD
    stats = {r["month"]: r for r in named(rollups.T_MONTH_STATS)}
    assert set(stats) == set(months)
    for m, r in stats.items():
        month_launches = [e for e in launches if e.ts.date().replace(day=1) == m]
        month_signins = [e for e in signins if e.ts.date().replace(day=1) == m]
        assert (r["active_users"], r["launchers"], r["launches"], r["signins"]) == (
            len(months[m]),
            len(launchers.get(m, ())),
            len(month_launches),
            len(month_signins),
        )
        # the cell keys: sums of the records' and the people's keys, modulo 2**32
        assert (
            r["launches_key"]
            == sum(cellkey.launch_key(e.ts, e.app_id, e.user_id) for e in month_launches) % M
        )
        assert (
            r["signins_key"] == sum(cellkey.signin_key(e.ts, e.user_id) for e in month_signins) % M
        )
        assert r["active_key"] == sum(cellkey.person_key(u) for u in months[m]) % M
        assert r["launchers_key"] == sum(cellkey.person_key(u) for u in launchers.get(m, ())) % M

    cells: dict[tuple[dt.date, int, int], set[str]] = {}
    cell_keys: dict[tuple[dt.date, int, int], int] = {}
    for e in launches:
        local = e.ts.astimezone(TZ)
        cell = (local.date().replace(day=1), local.weekday(), local.hour)
        cells.setdefault(cell, set()).add(e.user_id)
        cell_keys[cell] = (
            cell_keys.get(cell, 0) + cellkey.launch_key(e.ts, e.app_id, e.user_id)
        ) % M
    month_cell = {(r["month"], r["weekday"], r["hour"]): r for r in named(rollups.T_MONTH_CELL)}
    assert {k: len(v) for k, v in cells.items()} == {k: r["users"] for k, r in month_cell.items()}
    assert cell_keys == {k: r["launches_key"] for k, r in month_cell.items()}

    month_app: dict[tuple[dt.date, str], list[Any]] = {}
    for e in launches:
        entry = month_app.setdefault((e.ts.date().replace(day=1), e.app_id), [0, set(), 0])
        entry[0] += 1
        entry[1].add(e.user_id)
        entry[2] = (entry[2] + cellkey.launch_key(e.ts, e.app_id, e.user_id)) % M
    assert {
        (r["month"], r["app_id"]): (r["launches"], r["users"], r["launches_key"], r["users_key"])
        for r in named(rollups.T_MONTH_APP)
    } == {
        k: (n, len(u), key, sum(cellkey.person_key(x) for x in u) % M)
        for k, (n, u, key) in month_app.items()
    }

    first: dict[str, dt.date] = {}
    active: dict[str, set[dt.date]] = {}
    for e in events:
        first[e.user_id] = min(first.get(e.user_id, dt.date.max), e.ts.date().replace(day=1))
        active.setdefault(e.user_id, set()).add(e.ts.date().replace(day=1))
    cohorts: dict[tuple[dt.date, dt.date], tuple[int, int]] = {}
    for user, months_active in active.items():
        for m in months_active:
            n, k = cohorts.get((first[user], m), (0, 0))
            cohorts[(first[user], m)] = (n + 1, (k + cellkey.person_key(user)) % M)
    assert {
        (r["cohort"], r["month"]): (r["users"], r["users_key"])
        for r in named(rollups.T_COHORT_MONTH)
    } == cohorts

    rebuild.rebuild(engine, TZ)
    rebuilt = _snapshot(engine)
    for name in incremental:
        assert rebuilt[name] == incremental[name], name
    engine.dispose()


def test_purge_keeps_rollups_and_a_rebuild_after_it_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(database_url)
    launches, signins = _events(800)
    # people seen only before the retention: after the purge no table may name them
    launches += [
        Launch(
            dt.datetime(2025, 2, 21, 9, i, tzinfo=dt.UTC), "teams", f"gone{i}", "medical", "tile"
        )
        for i in range(3)
    ]
    signins.append(SignIn(dt.datetime(2025, 2, 22, 9, tzinfo=dt.UTC), "gone-signin", None))
    _store(engine, tmp_path).write_events([*launches, *signins])
    before = _snapshot(engine)
    now = dt.datetime(2025, 4, 20, tzinfo=dt.UTC)
    cutoff = rebuild.purge_cutoff(now, 35, TZ)
    # 35 days before 04-20 is 03-16: whole months only, cut where March begins anywhere
    # that matters (Amsterdam is ahead of UTC: local midnight)
    assert cutoff == dt.datetime(2025, 2, 28, 23, 0, tzinfo=dt.UTC)
    deleted = rebuild.purge_raw(engine, retention_days=35, tz=TZ, now=now)
    with engine.connect() as conn:
        left = conn.execute(sa.select(rollups.T_LAUNCH.c.ts)).scalars().all()
    everything: list[Event] = [*launches, *signins]
    assert deleted == sum(1 for e in everything if e.ts < cutoff) > 0
    assert min(utc(ts) for ts in left) >= cutoff
    after_purge = _snapshot(engine)
    for name in COUNT_TABLES:  # the counts stay
        assert after_purge[name] == before[name], name
    _assert_no_person_before(engine, dt.date(2025, 3, 1), [*launches, *signins])
    rebuild.rebuild(engine, TZ)  # from the partial raw history: older months are kept as is
    after = _snapshot(engine)
    for name in before:
        assert after[name] == after_purge[name], name
    engine.dispose()


COUNT_TABLES = (
    "usage_day",
    "usage_month",
    "day_stats",
    "month_stats",
    "month_app",
    "month_cell",
    "cohort_month",
)


def _assert_no_person_before(engine: sa.Engine, month: dt.date, events: list[Event]) -> None:
    """No table holds a user id whose events are all before ``month`` (the retention), and
    no per-person row is about a day or month before it."""
    last_seen: dict[str, dt.datetime] = {}
    for e in events:
        last_seen[e.user_id] = max(last_seen.get(e.user_id, e.ts), e.ts)
    gone = {u for u, ts in last_seen.items() if ts.date() < month - dt.timedelta(days=1)}
    assert_no_person_before(engine, month, gone)


SPAN_MASKS = ("active", "launched", "months", "via_months")  # bit 0: January of ``year``


def assert_no_person_before(
    engine: sa.Engine, month: dt.date, gone: set[str], launches: bool = True
) -> None:
    """No table holds one of the user ids ``gone`` (people seen only before ``month``, the
    retention), no per-person row is about a day or month before it, and no span row (the
    launch side's and the imported sign-ins') has a bit of a month before it. Every table of
    the schema, by reflection: a new per-person table is checked without being named here."""
    assert gone, "the test needs people who were only active before the retention"
    md = sa.MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        for table in md.sorted_tables:
            if "user_id" not in table.c:
                continue
            ids = set(conn.execute(sa.select(table.c.user_id).distinct()).scalars())
            assert not ids & gone, table.name
            for col in ("day", "month"):
                if col in table.c:
                    oldest = conn.execute(sa.select(sa.func.min(table.c[col]))).scalar()
                    if isinstance(oldest, str):
                        oldest = dt.date.fromisoformat(oldest)
                    assert oldest is None or oldest >= month, table.name
            masks = [c for c in SPAN_MASKS if c in table.c]
            if "year" in table.c and masks:
                for row in conn.execute(sa.select(table.c.year, *(table.c[c] for c in masks))):
                    before = (month.year - row[0]) * 12 + month.month - 1
                    for value in row[1:]:
                        assert before <= 0 or value & ((1 << before) - 1) == 0, (table.name, row)
        # the bitmaps of who was active: none of a day or month before the retention, and
        # every person in one still has a number (so none is a person whose number went)
        # (a history of imported sign-ins only has none: launches make them)
        numbered = set(conn.execute(sa.select(people.T_PERSON_NUMBER.c.number)).scalars())
        for table, col in ((people.T_PEOPLE_DAY, "day"), (people.T_PEOPLE_MONTH, "month")):
            rows = conn.execute(sa.select(table)).all()
            assert rows or not launches, f"{table.name}: no launches after the retention"
            assert all(r._mapping[col] >= month for r in rows), table.name
            for r in rows:
                members = people.from_bytes(r.active) | people.from_bytes(r.launched)
                assert set(members) <= numbered, (table.name, r._mapping[col])
        firsts = conn.execute(sa.select(rollups.T_USER_FIRST.c.first_day)).scalars().all()
        assert all(d >= month or d == rollups.BEFORE_RETENTION for d in firsts)


def test_a_department_change_reads_the_same_after_a_rebuild(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    ts = dt.datetime(2025, 3, 3, 9, tzinfo=dt.UTC)
    store = _store(engine, tmp_path)
    store.write_events([Launch(ts, "teams", "u1", "nursing", "portal")])
    store.write_events([Launch(ts + dt.timedelta(hours=1), "teams", "u1", "medical", "portal")])
    incremental = _snapshot(engine)
    rebuild.rebuild(engine, TZ)
    assert _snapshot(engine) == incremental
    engine.dispose()


def test_existing_rollup_rows_are_found_by_key_not_by_a_scan(sqlite_url: str) -> None:
    """Every flush looks up the batch's keys in user_day, user_month, ...: on SQLite that must
    be one primary-key probe per key, never a scan of a table that grows by a row per user
    and day (a scan cost 87 ms per 300 keys at 300,000 rows)."""
    engine = db.make_engine(sqlite_url)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    keys = [(dt.date(2025, 3, day), f"u{day}") for day in range(1, 20)]
    with engine.connect() as conn:
        rollups._existing(conn, rollups.T_USER_DAY, ("day", "user_id"), keys, ("launches",))
        [(statement, parameters)] = [s for s in statements if "user_day" in s[0]]
        plan = [
            row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    assert any(step.startswith("SEARCH") and "user_day" in step for step in plan), plan
    assert not any(step.startswith(("SCAN user_day", "SCAN t")) for step in plan), plan
    engine.dispose()

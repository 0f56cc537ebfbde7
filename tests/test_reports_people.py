"""The bitmaps of who was active (launcher/reports/people.py) and the distinct counts read from
them (launcher/reports/distinct.py): exact on hand-built cases, the same whatever order the
batches arrive in, the same after a rebuild, numbers never given twice."""

from __future__ import annotations

import datetime as dt
import random
import threading
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pyroaring import BitMap, FrozenBitMap
from sqlmodel import SQLModel

from launcher import db
from launcher.events import BatchWriter, Launch, SignIn
from launcher.registry import load_registry
from launcher.reports import cellkey, distinct, people, personkeys, queries, rebuild, rollups
from launcher.reports.periods import Period
from tests.helpers import EXAMPLE_APPS

TZ = ZoneInfo("Europe/Amsterdam")


def _ts(day: str, hour: int = 9) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def _write(engine: sa.Engine, tmp_path: Path, batches: list[list[Any]]) -> None:
    writer = BatchWriter(engine, tmp_path / "spool", on_flush=rollups.apply)
    for i, batch in enumerate(batches):
        launches = [e for e in batch if isinstance(e, Launch)]
        signins = [e for e in batch if isinstance(e, SignIn)]
        writer.write(f"batch-{i}", launches, signins, TZ)


# Who did what (UTC days): a whole March between a ragged end of February and of April.
EVENTS: list[Any] = [
    Launch(_ts("2025-02-27"), "teams", "ann", "nursing", "portal"),
    Launch(_ts("2025-02-28"), "ehr", "bob", "medical", "portal"),
    SignIn(_ts("2025-02-28"), "cid", "nursing"),
    Launch(_ts("2025-03-03"), "teams", "ann", "nursing", "portal"),
    Launch(_ts("2025-03-03", 10), "teams", "ann", "nursing", "portal"),
    Launch(_ts("2025-03-10"), "ehr", "dan", None, "portal"),
    Launch(_ts("2025-03-31", 23), "teams", "eve", "medical", "portal"),
    SignIn(_ts("2025-03-15"), "fay", "medical"),
    Launch(_ts("2025-04-01"), "ehr", "bob", "medical", "portal"),
    Launch(_ts("2025-04-02"), "teams", "gus", "nursing", "portal"),
    Launch(_ts("2025-04-03"), "teams", "hal", "nursing", "portal"),  # after the period
]
PERIOD = Period(dt.date(2025, 2, 28), dt.date(2025, 4, 2))


def _key(*users: str) -> int:
    return sum(cellkey.person_key(u) for u in users) % cellkey.MOD


def test_hand_built_counts_over_ragged_and_whole_months(database_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(database_url)
    _write(engine, tmp_path, [EVENTS[:5], EVENTS[5:]])
    registry = load_registry(EXAMPLE_APPS)
    with engine.connect() as conn:
        count = distinct.Counter(conn)
        active = distinct.people(conn, PERIOD, "active")[(people.ANY, people.ANY)]
        assert count(active) == (7, _key("bob", "cid", "ann", "dan", "eve", "fay", "gus"))
    raw = queries.summary(engine, PERIOD)
    # ann (27 Feb is outside, 3 Mar inside), bob, cid, dan, eve, fay, gus; hal is after it
    assert raw["active_users"] == (7, _key("ann", "bob", "cid", "dan", "eve", "fay", "gus"))
    assert raw["launchers"] == (5, _key("ann", "bob", "dan", "eve", "gus"))
    by_app = {
        r["key"]: r["users"]
        for r in queries.launches(engine, registry, PERIOD, "app", 1, exact=True)
    }
    assert by_app == {"teams": 3, "ehr": 2}  # teams: ann, eve, gus; ehr: bob, dan
    by_dept = {
        r["key"]: r["users"]
        for r in queries.launches(engine, registry, PERIOD, "department", 1, exact=True)
    }
    assert by_dept == {"nursing": 2, "medical": 2, "unknown": 1}
    departments = {
        r["key"]: r["users"]
        for r in queries.departments(engine, registry, PERIOD, 1, exact=True)
        if r["users"]
    }
    assert departments == {"nursing": 3, "medical": 3, "unknown": 1}  # with cid and fay
    cells = {r["key"]: r["users"] for r in queries.app_departments(engine, PERIOD, 1, exact=True)}
    assert cells == {
        "ehr/medical": 1,
        "ehr/unknown": 1,
        "teams/medical": 1,
        "teams/nursing": 2,
    }
    march = Period(dt.date(2025, 3, 1), dt.date(2025, 3, 31))
    assert queries.summary(engine, Period(march.start, dt.date(2025, 4, 1)))["active_users"] == (
        5,
        _key("ann", "dan", "eve", "fay", "bob"),
    )
    engine.dispose()


def test_a_count_has_the_cell_key_of_its_people(database_url: str, tmp_path: Path) -> None:
    """The key planes give the sum of the person keys, as the per-person rows did."""
    engine = db.make_engine(database_url)
    rnd = random.Random(3)
    users = [f"user-{i}" for i in range(300)]
    events = [
        Launch(_ts(f"2025-03-{rnd.randrange(1, 29):02d}"), "teams", u, "nursing", "portal")
        for u in users
        for _ in range(rnd.randrange(1, 3))
    ]
    _write(engine, tmp_path, [events[:200], events[200:]])
    with engine.connect() as conn:
        count = distinct.Counter(conn)
        found = distinct.people(conn, Period(dt.date(2025, 3, 1), dt.date(2025, 3, 31)), "launched")
        assert count(found[(people.ANY, people.ANY)]) == (300, _key(*users))
        half = distinct.people(conn, Period(dt.date(2025, 3, 1), dt.date(2025, 3, 14)), "launched")
        early = {e.user_id for e in events if e.ts.day <= 14}
        assert count(half[(people.ANY, people.ANY)]) == (len(early), _key(*early))
    engine.dispose()


def test_small_and_large_sets_get_the_same_cell_keys(database_url: str, tmp_path: Path) -> None:
    """A set of up to personkeys.SMALL people is keyed person by person, a larger one by the
    key planes: either way the sum of its people's person keys."""
    engine = db.make_engine(database_url)
    users = [f"user-{i}" for i in range(personkeys.DIRECT + 40)]
    _write(
        engine,
        tmp_path,
        [[Launch(_ts("2025-03-03"), "teams", u, "nursing", "portal")] for u in users],
    )
    with engine.connect() as conn:
        query = sa.select(people.T_PERSON_NUMBER.c.number, people.T_PERSON_NUMBER.c.user_id)
        numbered = {int(n): str(u) for n, u in conn.execute(query)}
        everyone = distinct.people(conn, Period(dt.date(2025, 3, 3), dt.date(2025, 3, 3)), "active")
        found = everyone[(people.ANY, people.ANY)]
        count = distinct.Counter(conn)
        sizes = (1, personkeys.SMALL, personkeys.SMALL + 1, personkeys.DIRECT + 1, len(users) - 1)
        for size in (*sizes, len(users)):
            subset = BitMap(list(found)[:size])
            assert count(subset) == (size, _key(*(numbered[n] for n in subset)))
    engine.dispose()


def test_every_way_of_keying_a_set_gives_the_sum_of_its_person_keys() -> None:
    """personkeys.Keys sums a set person by person, by the key planes or by its complement,
    depending on its size and containers: each gives the sum of the person keys."""
    rnd = random.Random(5)
    keys = [rnd.getrandbits(32) for _ in range(70_000)]  # two blocks of 65,536 numbers
    keys[17] = 0  # a number nobody has (purged, or reserved and never given)
    half = personkeys.grown(
        personkeys.Keys(), 40_000, [(n, keys[n]) for n in range(40_000) if n != 17]
    )
    grown = personkeys.grown(half, 70_000, [(n, keys[n]) for n in range(40_000, 70_000)])
    assert half.known == 40_000 and len(half.by_number) == 40_000  # a reader's keys unchanged
    shapes = {
        "small": (rnd.sample(range(70_000), 10), "n_array_containers"),
        "direct": (rnd.sample(range(70_000), 200), "n_array_containers"),
        "sparse": (rnd.sample(range(70_000), 3_000), "n_array_containers"),
        "bitsets": (rnd.sample(range(65_536), 30_000), "n_bitset_containers"),
        "runs": ([n for n in range(60_000) if n % 500], "n_run_containers"),
        "everyone": (list(range(70_000)), "n_run_containers"),
        "with the purged number": ([17, *range(100, 400)], "n_run_containers"),
    }
    for name, (numbers, container) in shapes.items():
        bitmap = BitMap(numbers)
        bitmap.run_optimize()
        stats = cast(dict[str, int], bitmap.get_statistics())
        assert stats[container] > 0, name  # the shape meant
        want = sum(keys[n] for n in numbers) % cellkey.MOD
        assert grown(FrozenBitMap(bitmap)) == want, name
        assert grown(bitmap) == want, name


def test_a_sum_is_kept_per_set_and_numbering() -> None:
    """personkeys.SUMS: the same people in another set object are a hit; another database
    numbering (epoch) is not, and gets its own sum; the kept sets stay within the budget."""
    rows = [(n, n * 7_919) for n in range(3_000)]
    mine = personkeys.grown(personkeys.Keys(("db", "one")), 3_000, rows)
    theirs = personkeys.grown(personkeys.Keys(("db", "two")), 3_000, [(n, k * 3) for n, k in rows])
    budget = personkeys.SUMS.budget
    personkeys.SUMS.clear()
    try:
        first, again = FrozenBitMap(range(0, 3_000, 3)), FrozenBitMap(range(0, 3_000, 3))
        assert personkeys.key_sum(mine, first) == mine(first)
        hits = personkeys.SUMS.hits
        assert personkeys.key_sum(mine, again) == mine(first)
        assert personkeys.SUMS.hits == hits + 1
        assert personkeys.key_sum(theirs, again) == theirs(again) != mine(again)
        assert personkeys.SUMS.hits == hits + 1
        personkeys.SUMS.budget = 10_000  # a few sets of 1,500 people
        for start in range(40):
            found = FrozenBitMap(range(start, 3_000, 2))
            assert personkeys.key_sum(mine, found) == mine(found)
        assert 0 < len(personkeys.SUMS) < 40 and personkeys.SUMS.size <= 10_000
    finally:
        personkeys.SUMS.budget = budget
        personkeys.SUMS.clear()


def test_a_person_numbered_after_the_first_count_is_keyed(
    database_url: str, tmp_path: Path
) -> None:
    """The key planes a Counter holds grow when a set has a number given after they were
    read (a writer committing between two counts of one report)."""
    engine = db.make_engine(database_url)
    day = Period(dt.date(2025, 3, 3), dt.date(2025, 3, 3))
    early = [f"early-{i}" for i in range(3)]
    _write(
        engine,
        tmp_path,
        [[Launch(_ts("2025-03-03"), "teams", u, "nursing", "portal")] for u in early],
    )
    with engine.connect() as conn:
        count = distinct.Counter(conn)
        assert count(distinct.people(conn, day, "active")[(people.ANY, people.ANY)]) == (
            3,
            _key(*early),
        )
        conn.rollback()  # no read lock in the way of the writer below (SQLite)
        late = [f"late-{i}" for i in range(200)]  # more than SMALL, and a few
        writer = BatchWriter(engine, tmp_path / "spool", on_flush=rollups.apply)
        for i, batch in enumerate((late[:5], late[5:])):  # batch ids of their own
            launches = [Launch(_ts("2025-03-03", 11), "ehr", u, "medical", "portal") for u in batch]
            writer.write(f"late-{i}", launches, [], TZ)
        found = distinct.people(conn, day, "active", department=distinct.EACH)
        assert count(found[(people.ANY, "medical")]) == (200, _key(*late))
        assert count(BitMap(list(found[(people.ANY, "medical")])[:5])) == (5, _key(*late[:5]))
    engine.dispose()


def _decoded(engine: sa.Engine) -> dict[str, set[tuple[Any, ...]]]:
    """Every bitmap as (table, when, app, department, column, user ids): what the bitmaps say
    whatever numbers people got."""
    with engine.connect() as conn:
        names = dict(
            conn.execute(
                sa.select(people.T_PERSON_NUMBER.c.number, people.T_PERSON_NUMBER.c.user_id)
            ).all()
        )
        out: dict[str, set[tuple[Any, ...]]] = {}
        for table in people.PEOPLE_TABLES:
            when = table.c.day if "day" in table.c else table.c.month
            rows = conn.execute(
                sa.select(
                    when, table.c.app_id, table.c.department, table.c.active, table.c.launched
                )
            ).all()
            out[table.name] = {
                (str(w)[:10], a, d, col, frozenset(names[n] for n in people.from_bytes(data)))
                for w, a, d, active, launched in rows
                for col, data in (("active", active), ("launched", launched))
            }
    return out


def _events(n: int, seed: int) -> list[Any]:
    rnd = random.Random(seed)
    depts = ["nursing", "medical", None, "it"]
    out: list[Any] = []
    for _ in range(n):
        ts = dt.datetime(2025, 3, 25, tzinfo=dt.UTC) + dt.timedelta(minutes=rnd.randrange(20000))
        user = f"u{rnd.randrange(30)}"
        dept = rnd.choice(depts)  # people change department, even within a day
        if rnd.random() < 0.25:
            out.append(SignIn(ts, user, dept))
        else:
            out.append(Launch(ts, rnd.choice(["teams", "ehr", "rooster"]), user, dept, "portal"))
    return out


def _empty(engine: sa.Engine) -> None:
    """Everything but the migrations' bookkeeping and the number counter (so that the second
    history numbers its people differently)."""
    with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table.name != "person_counter":
                conn.execute(sa.delete(table))


def test_the_bitmaps_do_not_depend_on_the_order_of_batches(
    database_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(database_url)
    events = _events(1500, seed=5)
    batches = [events[i : i + 97] for i in range(0, len(events), 97)]
    _write(engine, tmp_path / "a", batches)
    first = _decoded(engine)
    registry = load_registry(EXAMPLE_APPS)
    period = Period(dt.date(2025, 3, 27), dt.date(2025, 4, 8))
    figures = [
        queries.launches(engine, registry, period, by, 5) for by in ("app", "department")
    ] + [queries.departments(engine, registry, period, 5)]
    _empty(engine)
    rnd = random.Random(2)
    late = [list(b) for b in reversed(batches)]  # a spool replayed late, in another order
    for batch in late:
        rnd.shuffle(batch)
    _write(engine, tmp_path / "b", late)
    assert _decoded(engine) == first
    assert [queries.launches(engine, registry, period, by, 5) for by in ("app", "department")] + [
        queries.departments(engine, registry, period, 5)
    ] == figures  # noise included
    rebuild.rebuild(engine, TZ)
    assert _decoded(engine) == first
    engine.dispose()


def test_a_person_who_moves_department_within_a_day_leaves_the_old_one(
    database_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(database_url)
    day = _ts("2025-03-03")
    _write(
        engine,
        tmp_path,
        [
            [
                Launch(day, "teams", "u1", "it", "portal"),
                Launch(day, "teams", "u2", "it", "portal"),
            ],
            [Launch(day + dt.timedelta(hours=2), "teams", "u1", "nursing", "portal")],
        ],
    )
    state = _decoded(engine)
    for table in ("people_day", "people_month"):
        by = {(a, d, c): users for _, a, d, c, users in state[table]}
        assert by[("*", "it", "launched")] == {"u2"}  # user_day keeps the greatest: nursing
        assert by[("*", "nursing", "active")] == {"u1"}
        assert by[("teams", "it", "launched")] == {"u2"}
        assert by[("teams", "nursing", "launched")] == {"u1"}
        assert by[("teams", "*", "launched")] == {"u1", "u2"}
    engine.dispose()


@pytest.mark.parametrize(  # SQLite has one writer at a time: nothing runs beside it
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_numbers_are_given_once_under_concurrent_writers(database_url: str) -> None:
    """Two transactions numbering overlapping people at the same time, outside the flush lock:
    each person gets one number, no number goes to two people."""
    engine = db.make_engine(database_url)
    assert not db.is_sqlite(engine)
    got: dict[str, dict[str, int]] = {}
    started = threading.Event()

    def second() -> None:
        with engine.begin() as conn:
            started.set()
            got["b"] = people.numbers(conn, ["y", "z", "w"])  # waits for the first on "y"

    with engine.begin() as conn:
        got["a"] = people.numbers(conn, ["x", "y"])
        thread = threading.Thread(target=second)
        thread.start()
        started.wait(5)
        thread.join(0.5)  # it is now blocked on the unique key of "y" (or the counter)
    thread.join(10)
    assert got["a"]["y"] == got["b"]["y"]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(people.T_PERSON_NUMBER.c.user_id, people.T_PERSON_NUMBER.c.number)
        ).all()
    assert sorted(u for u, _ in rows) == ["w", "x", "y", "z"]
    assert len({n for _, n in rows}) == 4
    engine.dispose()


def test_purged_numbers_are_never_given_again(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    with engine.begin() as conn:
        before = people.numbers(conn, ["a", "b"])
    with engine.begin() as conn:  # nobody is in user_day: the purge takes both numbers
        people.purge(conn, dt.date(2025, 1, 1))
    with engine.begin() as conn:
        assert not conn.execute(sa.select(people.T_PERSON_NUMBER)).all()
        after = people.numbers(conn, ["c", "a"])
    assert not set(after.values()) & set(before.values())
    engine.dispose()


def test_serialized_bitmaps_are_canonical() -> None:
    """Equal sets serialize alike whatever made them, so a rebuild writes the same bytes."""
    runs = BitMap(range(0, 40, 2))
    runs.run_optimize()
    made = BitMap()
    for n in range(0, 40, 2):
        made.add(n)
    assert people.to_bytes(runs) == people.to_bytes(made)

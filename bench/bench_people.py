"""Reports at regional scale: 100,000 employees and 100 M launches over five years (PostgreSQL),
40,000 employees (SQLite), every report over ranges up to five years.

Generating 100 M raw launches and folding them through the event writer would take hours here.
So this benchmark writes what the reports read directly, set-based: the bitmaps of who was
active (people_day, people_month, person_number, person_counter: launcher/reports/people.py,
serialized by its own ``to_bytes``, with their people_stamp versions) and the count rollups
(usage_day, usage_month, day_stats, month_stats, month_app, month_cell, cohort_month) derived
from the same sets -- distinct counts are the bitmaps' cardinalities, people's cell keys the
sums of their person keys, as the flushes would write them. Launch and sign-in record keys, and
the split of a month's launches over the hours of the week (month_cell), are made up: there are
no raw records behind them. The history:

- person n is ``bench-<n>``, numbered in order of first sight; the first six months bring the
  organisation in, a sixth at a time (cohorts);
- a working day's active people are one of 32 fixed random draws of 78 % of those brought in
  (weekends: 8 %); each signs in once;
- each app has a user base (a share of everyone, by popularity), and on a day a person of its
  base who is active launches it with probability 1/2 (one of 32 fixed random halves per day and
  app), 1 to 1.6 times;
- departments are the registry's, plus people without one.

To check that this is what production holds, the last full month and the first days of this
month are also written as raw launch_event and signin_event rows, the same people on the same
days; the naive GROUP BY over them must agree (within the cell-key noise) with the reports over
that sample, and its time is printed beside the reports'.

    python bench/bench_people.py [--db sqlite|postgres|both] [--months 60] [--launches 100e6]

Target: every report <= 300 ms (median) over every range. Exit 1 when one is slower or a
sample disagrees; 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
from bench_reports import PG_URL, _registry, serve
from pyroaring import BitMap

from launcher import db, partitions
from launcher.dates import month_end, month_of
from launcher.reports import cellkey, people
from launcher.reports.periods import Period

TARGET_MS = 300.0
POOLS = 32


def _h(*parts: object) -> int:
    text = "|".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.md5(text, usedforsecurity=False).digest()[:4], "big")


class History:
    """The synthetic organisation: every set as a bitmap of person numbers."""

    def __init__(
        self, employees: int, months: int, launches: float, today: dt.date, seed: int = 1
    ) -> None:
        rnd = random.Random(seed)
        self.registry = _registry(months, today)
        self.employees, self.today = employees, today
        self.first = self.registry.portal.go_live or today
        self.apps = [a.id for a in self.registry.apps]
        self.depts = [d.id for d in self.registry.departments] + [""]
        self.dept_of = [self.depts[_h("d", n) % len(self.depts)] for n in range(employees)]
        self.dept_sets = {d: BitMap() for d in self.depts}
        for n, d in enumerate(self.dept_of):
            self.dept_sets[d].add(n)
        everyone = range(employees)
        work = employees * 78 // 100
        self.work_pools = [BitMap(rnd.sample(everyone, work)) for _ in range(POOLS)]
        self.weekend_pools = [BitMap(rnd.sample(everyone, employees * 8 // 100)) for _ in range(4)]
        self.halves = [BitMap(rnd.sample(everyone, employees // 2)) for _ in range(POOLS)]
        # popularity: a few apps everyone uses, a long tail; scaled so that the history holds
        # about ``launches`` launches (1.3 per person, app and day on average)
        weights = [1 / (i + 1) ** 0.9 for i in range(len(self.apps))]
        days = (today - self.first).days + 1
        pairs = launches / 1.3 / (days * (5 / 7 * 0.78 + 2 / 7 * 0.08) * employees * 0.5)
        scale = pairs / sum(weights)
        self.bases = {
            a: BitMap(rnd.sample(everyone, int(employees * min(0.95, w * scale))))
            for a, w in zip(self.apps, weights, strict=True)
        }
        keys = [cellkey.person_key(self.user(n)) for n in range(employees)]
        self.keys = keys
        self.planes = [BitMap(n for n in everyone if keys[n] >> j & 1) for j in range(32)]

    def user(self, n: int) -> str:
        return f"bench-{n:06d}"

    def key(self, people_set: BitMap) -> int:
        return sum(people_set.intersection_cardinality(p) << j for j, p in enumerate(self.planes))

    def onboarded(self, day: dt.date) -> int:
        months_in = (day.year - self.first.year) * 12 + day.month - self.first.month
        return self.employees * min(6, months_in + 1) // 6

    def cohort(self, n: int) -> dt.date:
        month = self.first
        for _ in range(n * 6 // self.employees):
            month = month_of(month_end(month) + dt.timedelta(days=1))
        return month

    def day(self, day: dt.date) -> tuple[BitMap, dict[str, BitMap]]:
        """Who was active on ``day``, and who launched each app."""
        i = day.toordinal()
        pools = self.work_pools if day.weekday() < 5 else self.weekend_pools
        active = BitMap(pools[_h("p", i) % len(pools)])
        active.intersection_update(BitMap(range(self.onboarded(day))))
        apps = {}
        for a in self.apps:
            launched = active & self.bases[a] & self.halves[_h("h", i, a) % POOLS]
            if launched:
                apps[a] = launched
        return active, apps

    def launches(self, day: dt.date, app: str, dept: str, users: int) -> int:
        return users * (100 + _h("n", day, app, dept) % 61) // 100


def _rows_of(
    tbl: str, when: dt.date, bitmaps: dict[tuple[str, str], list[BitMap]]
) -> list[tuple[Any, ...]]:
    return [
        (when, a, d, people.to_bytes(act), people.to_bytes(lau))
        for (a, d), (act, lau) in bitmaps.items()
    ]


def write(engine: sa.Engine, h: History) -> int:
    """Every table the reports read. Returns the number of launches it stands for."""
    sqlite = db.is_sqlite(engine)

    def v(x: Any) -> Any:
        return x.isoformat() if sqlite and isinstance(x, dt.date) else x

    total = 0
    started = time.perf_counter()
    with engine.begin() as conn:
        db.insert_rows(
            conn,
            "INSERT INTO person_number (user_id, number, person_key)",
            [(h.user(n), n, h.keys[n]) for n in range(h.employees)],
        )
        conn.execute(  # migration 0017 made the row
            sa.text("UPDATE person_counter SET next_number = :n, epoch = 'bench' WHERE id = 1"),
            {"n": h.employees},
        )
    month = month_of(h.first)
    cohort_members = {}
    for c in range(6):
        lo, hi = h.employees * c // 6, h.employees * (c + 1) // 6
        cohort_members[h.cohort(lo)] = BitMap(range(lo, hi))
    while month <= h.today:
        m_bitmaps: dict[tuple[str, str], list[BitMap]] = {}
        m_launches: dict[str, int] = {}
        m_signins = m_total = 0
        cells: dict[tuple[int, int], int] = {}
        day_rows, usage, stats = [], [], []
        day = month
        while day <= min(month_end(month), h.today):
            active, apps = h.day(day)
            launched = BitMap.union(BitMap(), *apps.values())
            bitmaps: dict[tuple[str, str], list[BitMap]] = {
                (people.ANY, people.ANY): [active, launched]
            }
            for d, members in h.dept_sets.items():
                if active & members:
                    bitmaps[(people.ANY, d)] = [active & members, launched & members]
            n_launches = 0
            for a, users in apps.items():
                bitmaps[(a, people.ANY)] = [BitMap(), users]
                for d, members in h.dept_sets.items():
                    mine = users & members
                    if mine:
                        bitmaps[(a, d)] = [BitMap(), mine]
                        n = h.launches(day, a, d, len(mine))
                        usage.append((v(day), a, d, n, _h("k", day, a, d)))
                        n_launches += n
                        m_launches[a] = m_launches.get(a, 0) + n
                        hour = 8 + _h("c", day, a, d) % 10
                        cells[(day.weekday(), hour)] = cells.get((day.weekday(), hour), 0) + n
            for key, (act, lau) in bitmaps.items():
                into = m_bitmaps.setdefault(key, [BitMap(), BitMap()])
                into[0] |= act
                into[1] |= lau
            day_rows += _rows_of("people_day", v(day), bitmaps)
            stats.append(
                (
                    v(day),
                    len(active),
                    len(launched),
                    n_launches,
                    len(active),
                    h.key(active) % cellkey.MOD,
                    h.key(launched) % cellkey.MOD,
                    _h("l", day),
                    _h("s", day),
                )
            )
            m_signins += len(active)
            m_total += n_launches
            day += dt.timedelta(days=1)
        total += m_total
        act, lau = m_bitmaps[(people.ANY, people.ANY)]
        with engine.begin() as conn:
            for start in range(0, len(day_rows), 40):
                db.insert_rows(
                    conn,
                    "INSERT INTO people_day (day, app_id, department, active, launched)",
                    day_rows[start : start + 40],
                )
            db.insert_rows(
                conn,
                "INSERT INTO people_month (month, app_id, department, active, launched)",
                _rows_of("people_month", v(month), m_bitmaps),
            )
            # the versions the reports' cache reads (as people._upsert writes them)
            written = [month + dt.timedelta(days=i) for i in range((day - month).days)]
            people.stamp(conn, people.T_PEOPLE_DAY, written)
            people.stamp(conn, people.T_PEOPLE_MONTH, [month])
            db.insert_rows(
                conn,
                "INSERT INTO usage_day (day, app_id, department, launches, launches_key)",
                usage,
            )
            by_month: dict[tuple[str, str], list[int]] = {}
            for _, a, d, n, k in usage:
                into = by_month.setdefault((a, d), [0, 0])
                into[0] += n
                into[1] += k
            db.insert_rows(
                conn,
                "INSERT INTO usage_month (month, app_id, department, launches, launches_key)",
                [(v(month), a, d, n, k % cellkey.MOD) for (a, d), (n, k) in by_month.items()],
            )
            db.insert_rows(
                conn,
                "INSERT INTO day_stats (day, active_users, launchers, launches, signins, "
                "active_key, launchers_key, launches_key, signins_key)",
                stats,
            )
            db.insert_rows(
                conn,
                "INSERT INTO month_stats (month, active_users, launchers, launches, signins, "
                "active_key, launchers_key, launches_key, signins_key)",
                [
                    (
                        v(month),
                        len(act),
                        len(lau),
                        m_total,
                        m_signins,
                        h.key(act) % cellkey.MOD,
                        h.key(lau) % cellkey.MOD,
                        _h("l", month),
                        _h("s", month),
                    )
                ],
            )
            db.insert_rows(
                conn,
                "INSERT INTO month_app (month, app_id, launches, users, launches_key, users_key)",
                [
                    (
                        v(month),
                        a,
                        n,
                        len(m_bitmaps[(a, people.ANY)][1]),
                        _h("ma", month, a),
                        h.key(m_bitmaps[(a, people.ANY)][1]) % cellkey.MOD,
                    )
                    for a, n in m_launches.items()
                ],
            )
            db.insert_rows(
                conn,
                "INSERT INTO month_cell (month, weekday, hour, launches, users, launches_key)",
                [
                    (v(month), w, hr, n, max(1, n // 3), _h("mc", month, w, hr))
                    for (w, hr), n in cells.items()
                ],
            )
            db.insert_rows(
                conn,
                "INSERT INTO cohort_month (cohort, month, users, users_key)",
                [
                    (v(c), v(month), len(act & members), h.key(act & members) % cellkey.MOD)
                    for c, members in cohort_members.items()
                    if c <= month and act & members
                ],
            )
        print(
            f"\r  {month.isoformat()[:7]}: {total / 1e6:.1f} M launches so far, "
            f"{time.perf_counter() - started:.0f} s",
            end="",
            flush=True,
        )
        month = month_of(month_end(month) + dt.timedelta(days=1))
    print()
    return total


def write_sample(engine: sa.Engine, h: History, sample: Period) -> int:
    """Raw launch_event and signin_event rows for the days of ``sample``: the same people
    and launch counts as the bitmaps and usage_day. Returns the launches written."""
    sqlite = db.is_sqlite(engine)
    written = 0
    day = sample.start
    while day <= sample.end:
        active, apps = h.day(day)
        launch_rows, signin_rows = [], []
        for a, users in apps.items():
            for d, members in h.dept_sets.items():
                mine = list(users & members)
                n = h.launches(day, a, d, len(mine)) if mine else 0
                for i in range(n):
                    n_user = mine[i % len(mine)]
                    ts = dt.datetime.combine(day, dt.time(8 + i % 10, i % 60), tzinfo=dt.UTC)
                    launch_rows.append((_ts(ts, sqlite), a, h.user(n_user), d or None, "portal"))
        for n_user in active:
            ts = dt.datetime.combine(day, dt.time(7, n_user % 60), tzinfo=dt.UTC)
            signin_rows.append((_ts(ts, sqlite), h.user(n_user), h.dept_of[n_user] or None))
        with engine.begin() as conn:
            db.insert_rows(
                conn,
                "INSERT INTO launch_event (ts, app_id, user_id, department, source)",
                launch_rows,
            )
            db.insert_rows(conn, "INSERT INTO signin_event (ts, user_id, department)", signin_rows)
        written += len(launch_rows)
        day += dt.timedelta(days=1)
    return written


def _ts(ts: dt.datetime, sqlite: bool) -> Any:
    return cellkey.ts_text(ts) if sqlite else ts


# --- timing ------------------------------------------------------------------------------------
def ranges(today: dt.date, first: dt.date) -> dict[str, Period]:
    last_full = month_of(month_of(today) - dt.timedelta(days=1))
    return {
        "30 days": Period(today - dt.timedelta(days=29), today),
        "last month": Period(last_full, month_end(last_full)),
        "365 days": Period(today - dt.timedelta(days=364), today),
        "five years": Period(max(first, today - dt.timedelta(days=5 * 365)), today),
        "five years, ragged": Period(
            max(first, today - dt.timedelta(days=5 * 365)) + dt.timedelta(days=13),
            today - dt.timedelta(days=9),
        ),
    }


ENDPOINTS: list[tuple[str, str, dict[str, str]]] = [
    *[
        (f"launches by {b}", "/api/v1/reports/launches", {"by": b})
        for b in ("app", "category", "department", "day", "month")
    ],
    ("active-users by day", "/api/v1/reports/active-users", {"by": "day"}),
    ("active-users by month", "/api/v1/reports/active-users", {"by": "month"}),
    ("comparison", "/api/v1/reports/comparison", {}),
    ("departments", "/api/v1/reports/departments", {}),
    ("cohorts", "/api/v1/reports/cohorts", {}),
    ("heatmap", "/api/v1/reports/heatmap", {}),
    ("decline by app", "/api/v1/reports/decline", {"by": "app"}),
    ("decline by department", "/api/v1/reports/decline", {"by": "department"}),
    ("page /reports", "/reports", {}),
    ("CSV apps", "/reports/export.csv", {"table": "apps"}),
]


def time_reports(client: httpx.Client, h: History, runs: int) -> list[tuple[str, float, float]]:
    out = []
    for label, period in ranges(h.today, h.first).items():
        span = {"from": period.start.isoformat(), "to": period.end.isoformat()}
        for name, path, params in ENDPOINTS:
            client.get(path, params={**span, **params}).raise_for_status()  # warm-up
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                client.get(path, params={**span, **params}).raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
            out.append((f"{name}, {label}", statistics.median(times), max(times)))
    return out


def check_sample(
    engine: sa.Engine, client: httpx.Client, sample: Period
) -> tuple[list[str], float, float]:
    """Reports over the sample against the naive GROUP BY over its raw rows: the problems,
    the naive queries' time and the reports' time for the same figures (ms)."""
    problems: list[str] = []
    naive_ms = report_ms = 0.0
    span = {"from": sample.start.isoformat(), "to": sample.end.isoformat()}
    sqlite = db.is_sqlite(engine)
    lo = dt.datetime.combine(sample.start, dt.time(), tzinfo=dt.UTC)
    hi = dt.datetime.combine(sample.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    bounds = {"lo": _ts(lo, sqlite), "hi": _ts(hi, sqlite)}
    events = (
        "(SELECT user_id, department, 1 AS l FROM launch_event WHERE ts >= :lo AND ts < :hi "
        "UNION ALL SELECT user_id, department, 0 FROM signin_event WHERE ts >= :lo AND ts < :hi)"
    )
    naive = {
        "app": "SELECT app_id, count(*), count(DISTINCT user_id) FROM launch_event "
        "WHERE ts >= :lo AND ts < :hi GROUP BY app_id",
        "department": "SELECT COALESCE(department, 'unknown'), count(*), "
        "count(DISTINCT user_id) FROM launch_event WHERE ts >= :lo AND ts < :hi "
        "GROUP BY COALESCE(department, 'unknown')",
        "departments": "SELECT COALESCE(department, 'unknown'), count(DISTINCT user_id) "
        f"FROM {events} AS e GROUP BY COALESCE(department, 'unknown')",
        "summary": f"SELECT 'all', count(DISTINCT user_id), count(DISTINCT CASE WHEN l = 1 "
        f"THEN user_id END) FROM {events} AS e",
    }
    want: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, query in naive.items():
        with engine.connect() as conn:
            started = time.perf_counter()
            rows = conn.execute(sa.text(query), bounds).all()
            naive_ms += (time.perf_counter() - started) * 1000
        want[name] = {str(r[0]): tuple(int(x) for x in r[1:]) for r in rows}
    got: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, path, params, fields in (
        ("app", "/api/v1/reports/launches", {"by": "app"}, ("launches", "users")),
        ("department", "/api/v1/reports/launches", {"by": "department"}, ("launches", "users")),
        ("departments", "/api/v1/reports/departments", {}, ("users",)),
    ):
        started = time.perf_counter()
        body = client.get(path, params={**span, **params}).json()
        report_ms += (time.perf_counter() - started) * 1000
        got[name] = {
            r["key"]: tuple(int(r[f]) for f in fields)
            for r in body["rows"]
            if not r.get("suppressed") and r.get(fields[0])
        }
    started = time.perf_counter()
    body = client.get("/api/v1/reports/comparison", params=span).json()
    report_ms += (time.perf_counter() - started) * 1000
    values = {r["metric"]: r["value"] for r in body["rows"]}
    share = values["launcher_share"]
    got["summary"] = {"all": (values["active_users"], round(share * values["active_users"]))}
    for name in want:
        w, g = want[name], got[name]
        for key in w.keys() | g.keys():
            a, b = w.get(key), g.get(key)
            if a is None or b is None:
                problems.append(f"{name} {key}: raw {a}, report {b}")
                continue
            slack = [cellkey.max_noise(x) + (x // 100 if name == "summary" else 0) for x in a]
            if any(abs(x - y) > s for x, y, s in zip(a, b, slack, strict=True)):
                problems.append(f"{name} {key}: raw {a}, report {b}")
    return problems, naive_ms, report_ms


# --- the databases -----------------------------------------------------------------------------
def run(url: str, employees: int, args: argparse.Namespace, title: str) -> bool:
    today = dt.datetime.now(dt.UTC).date()
    engine = db.make_engine(url)
    db.upgrade(engine)
    started = time.perf_counter()
    h = History(employees, args.months, args.launches * employees / 100_000, today)
    print(f"{title}: {employees:,} employees, {args.months} months")
    total = write(engine, h)
    last_full = month_of(month_of(today) - dt.timedelta(days=1))
    sample = Period(last_full, min(today, month_of(today) + dt.timedelta(days=2)))
    raw = write_sample(engine, h, sample)
    if not db.is_sqlite(engine):
        # the sample's months get their partitions now: the portal would make them (moving the
        # rows out of the default partition) at start-up, while the naive queries below run
        partitions.ensure(engine, ZoneInfo(h.registry.portal.timezone))
        with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    with engine.connect() as conn:
        sizes = {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("people_day", "people_month", "person_number")
        }
        if not db.is_sqlite(engine):
            bitmap_bytes = conn.execute(
                sa.text(
                    "SELECT pg_total_relation_size('people_day') "
                    "+ pg_total_relation_size('people_month')"
                )
            ).scalar_one()
        else:
            bitmap_bytes = conn.execute(
                sa.text(
                    "SELECT sum(length(active) + length(launched)) FROM "
                    "(SELECT active, launched FROM people_day UNION ALL "
                    "SELECT active, launched FROM people_month)"
                )
            ).scalar_one()
    engine.dispose()
    print(
        f"  wrote {total / 1e6:.1f} M launches' rollups and bitmaps and {raw:,} raw sample "
        f"launches in {time.perf_counter() - started:.0f} s; rows {sizes}, "
        f"bitmaps {bitmap_bytes / 1e6:.0f} MB"
    )
    tmp = Path(tempfile.mkdtemp(prefix="launcher-bench-people-"))
    try:
        with serve(url, tmp) as client:
            engine = db.make_engine(url)
            problems, naive_ms, sample_ms = check_sample(engine, client, sample)
            engine.dispose()
            results = time_reports(client, h, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in results)
    print(f"\n{title}: median and slowest of {args.runs} requests over HTTP")
    for label, median, worst in results:
        verdict = "PASS" if median <= TARGET_MS else "FAIL"
        print(f"{label:<{width}}  {median:8.1f} ms  {worst:8.1f} ms  {verdict}")
    slowest = max(results, key=lambda r: r[1])
    print(f"slowest: {slowest[0]} at {slowest[1]:.1f} ms (target <= {TARGET_MS:g} ms)")
    print(
        f"sample {sample.start}..{sample.end} ({raw:,} raw launches): naive GROUP BY "
        f"{naive_ms:.0f} ms, the same figures from the reports {sample_ms:.0f} ms "
        f"(ratio {sample_ms / naive_ms:.3f}); "
        + ("agree within the noise" if not problems else f"DISAGREE: {problems[:5]}")
    )
    return not problems and all(r[1] <= TARGET_MS for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--months", type=int, default=60)
    parser.add_argument(
        "--launches", type=float, default=100e6, help="launches at 100,000 employees"
    )
    parser.add_argument("--pg-employees", type=int, default=100_000)
    parser.add_argument("--sqlite-employees", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args()
    ok = True
    try:
        if args.db in ("sqlite", "both"):
            tmp = Path(tempfile.mkdtemp(prefix="launcher-bench-people-db-"))
            try:
                ok &= run(f"sqlite:///{tmp / 'people.db'}", args.sqlite_employees, args, "SQLite")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if args.db in ("postgres", "both"):
            name = f"launcher_bench_roaring_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            url = sa.make_url(args.pg_url).set(database=name).render_as_string(False)
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            try:
                ok &= run(url, args.pg_employees, args, "PostgreSQL")
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    except (RuntimeError, sa.exc.OperationalError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

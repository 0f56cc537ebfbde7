"""The front-door report at scale: ``launcher.reports.gateway`` over millions of imported sign-ins.

Generates ``--rows`` launches and as many imported sign-ins (default 10 million each) straight
into the tables with set-based SQL (a recursive CTE on SQLite, ``generate_series`` on
PostgreSQL): two years of a 10,000-employee organisation in ten departments, 20 apps with a
tile and 10 without, each person using six of them. A sign-in to an app with a tile came
through the portal, with a launch 30 s before it, at a share that falls month by month for
some apps (bookmarks); every other launch lies an hour away from any sign-in. ``via_portal``
is written as generated (the join's own speed is bench_import.py's and bench_upkeep.py's
business), then the gateway rollups are built from the raw rows by
``launcher.signins.join.fold`` in slices and ``join.spans``, as an import does.

Then it times ``gateway.gateway(by=app|department|month|unregistered)`` and
``gateway.front_door`` over the last 30 days, the last whole quarter, the last calendar year and
the last 365 days: the median of ``--runs`` runs each, with the minimum group 5. Target: every
median <= 300 ms. Exit 1 when one is slower.

    python bench/bench_gateway.py [--rows 10000000] [--db sqlite|postgres|both] [--keep DIR]

``--keep DIR`` keeps the SQLite database there (and reuses it when its size matches).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from launcher import db
from launcher.reports import gateway
from launcher.reports.periods import Period, quarter_period
from launcher.signins import join

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_MS = 300.0
USERS, DEPARTMENTS, APPS, UNREGISTERED = 10_000, 10, 20, 10
DAYS = 730
END = dt.date(2026, 11, 20)  # the last generated day: 30 and 365 days cover months in part
START = END - dt.timedelta(days=DAYS - 1)
FOLD_SLICE = 500_000


def _sql(sqlite: bool) -> dict[str, str]:
    """The dialect's pieces of the generating statements; ``n`` is the row number."""
    epoch = int(dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC).timestamp())
    # times spread evenly over the days, in the working hours of the day
    second = f"(({epoch} + (n * {DAYS} / :rows) * 86400 + 25200 + (n * 7919) % 43200))"
    if sqlite:
        return {
            "series": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
            "WHERE n < :rows) ",
            "from": "FROM s",
            "ts": f"strftime('%Y-%m-%d %H:%M:%S', {second}, 'unixepoch') || '.000000'",
            "ts_before": f"strftime('%Y-%m-%d %H:%M:%S', {second} - 30, 'unixepoch') || '.000000'",
            "ts_after": f"strftime('%Y-%m-%d %H:%M:%S', {second} + 3600, 'unixepoch') || '.000000'",
            "text": "",
            "month": f"CAST(((n * {DAYS} / :rows) / 30) AS INTEGER)",
        }
    return {
        "series": "",
        "from": "FROM generate_series(1::bigint, :rows) AS s(n)",
        "ts": f"to_timestamp({second})",
        "ts_before": f"to_timestamp({second} - 30)",
        "ts_after": f"to_timestamp({second} + 3600)",
        "text": "::text",
        "month": f"((n * {DAYS} / :rows) / 30)",
    }


def generate(engine: sa.Engine, rows: int, say: Callable[[str], None]) -> None:
    sqlite = db.is_sqlite(engine)
    q = _sql(sqlite)
    t = q["text"]
    # each person uses six of the 30 apps, two of them without a tile on average
    app_no = f"((((n * 40503) % {USERS}) * 7 + (n % 6) * 5) % {APPS + UNREGISTERED})"
    user = f"'u' || ((n * 40503) % {USERS}){t}"
    dept = f"'dept-' || (((n * 40503) % {USERS}) % {DEPARTMENTS}){t}"
    # through the portal: apps 0-4 stay at 80 %, the others drift from 80 % to 20 % over two
    # years (people bookmark them); unregistered apps never are
    via = (
        f"CASE WHEN {app_no} >= {APPS} THEN 0 WHEN (n * 131) % 100 < "
        f"CASE WHEN {app_no} < 5 THEN 80 ELSE 80 - {q['month']} * 60 / 24 END THEN 1 ELSE 0 END"
    )
    app = f"CASE WHEN {app_no} < {APPS} THEN 'app' || {app_no}{t} ELSE '' END"
    provider_app = f"'App ' || {app_no}{t}"
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"""{q["series"]}INSERT INTO imported_signin (provider, record_id, ts,
                user_id, app_id, provider_app_id, provider_app, department, via_portal)
                SELECT 'entra', 'r' || n{t}, {q["ts"]}, {user}, {app}, 'pa' || {app_no}{t},
                CASE WHEN {app_no} < {APPS} THEN '' ELSE {provider_app} END, {dept}, {via}
                {q["from"]}"""),
            {"rows": rows},
        )
        say(f"{rows:,} imported sign-ins: {time.perf_counter() - started:.0f} s")
        conn.execute(
            sa.text(f"""{q["series"]}INSERT INTO launch_event (ts, app_id, user_id,
                department, source)
                SELECT CASE WHEN {via} = 1 THEN {q["ts_before"]} ELSE {q["ts_after"]} END,
                'app' || ({app_no} % {APPS}){t}, {user}, {dept}, 'portal' {q["from"]}"""),
            {"rows": rows},
        )
        say(f"{rows:,} launches: {time.perf_counter() - started:.0f} s")
        for lo in range(0, rows, FOLD_SLICE):
            join.fold(conn, "id > :lo AND id <= :hi", {"lo": lo, "hi": lo + FOLD_SLICE})
        join.spans(conn, START)
        say(f"gateway rollups: {time.perf_counter() - started:.0f} s")
    if not sqlite:
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()


def periods() -> dict[str, Period]:
    year = END.year - 1
    last_quarter = quarter_period(dt.date(END.year, ((END.month - 1) // 3) * 3 + 1, 1))
    quarter = quarter_period(last_quarter.start - dt.timedelta(days=1))
    return {
        "30 days": Period(END - dt.timedelta(days=29), END),
        "quarter": quarter,
        "year": Period(dt.date(year, 1, 1), dt.date(year, 12, 31)),
        "365 days": Period(END - dt.timedelta(days=364), END),
    }


def measure(engine: sa.Engine, runs: int) -> list[tuple[str, str, float, int]]:
    out = []
    for label, period in periods().items():
        calls: dict[str, Callable[[], Any]] = {
            f"by={by}": functools.partial(gateway.gateway, engine, period, by, 5)
            for by in gateway.BY_VALUES
        }
        calls["front_door"] = functools.partial(gateway.front_door, engine, period, 5)
        for name, call in calls.items():
            result = call()  # warm
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            rows = len(result) if isinstance(result, list) else 1
            out.append((label, name, statistics.median(times), rows))
    return out


def run(label: str, url: str, args: argparse.Namespace, fresh: bool) -> bool:
    engine = db.make_engine(url)
    if fresh:
        db.upgrade(engine)
        generate(engine, args.rows, lambda s: print(f"  {label}: {s}", flush=True))
    ok = True
    print(f"{label}: median of {args.runs} runs (ms), target <= {TARGET_MS:.0f}")
    for period, name, ms, rows in measure(engine, args.runs):
        verdict = "PASS" if ms <= TARGET_MS else "FAIL"
        ok &= ms <= TARGET_MS
        print(f"  {period:<9} {name:<17} {ms:8.1f}  {verdict}  ({rows} rows)", flush=True)
    sample = gateway.front_door(engine, periods()["30 days"], 5)
    print(f"  front door, last 30 days: {sample}")
    engine.dispose()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    ok = True
    if args.db in ("sqlite", "both"):
        where = args.keep or Path(tempfile.mkdtemp())
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"gateway-{args.rows}.db"
        fresh = not path.exists()
        try:
            ok &= run("SQLite", f"sqlite:///{path}", args, fresh)
        finally:
            if args.keep is None:
                path.unlink(missing_ok=True)
    if args.db in ("postgres", "both"):
        name = f"launcher_gw_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            url = sa.make_url(PG_URL).set(database=name).render_as_string()
            ok &= run("PostgreSQL", url, args, True)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

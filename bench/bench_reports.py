"""Report speed at scale: every report endpoint against a naive GROUP BY over the raw events.

Generates about ``--events`` launch events (default 10 million: five years of a 10,000-employee
organisation; sign-ins come on top) with ``launcher.demo.data.generate``, serves the portal with
``create_app`` in a uvicorn thread, and times the report page, the CSV export and each JSON
endpoint over real HTTP as a reviewer. For each it also times, in the same run and on the same
database, a naive equivalent that groups the raw ``launch_event`` / ``signin_event`` rows, and
checks that both give the same figures where they are comparable.

    python bench/bench_reports.py [--events 10000000] [--db sqlite|postgres|both] [--keep DIR]
        [--pg-keep PREFIX]

Target: every report answers in <= 300 ms (median). Exit 1 when one does not, or when a report
disagrees with the raw events; 2 when the benchmark could not run.

The privacy method's cost: each report is also timed, in the same run and alternating with the
timed requests above, on a second portal with noise and suppression off (the minimum group 1,
cell-key noise 0, no cell keys summed over the bitmaps: a switch that exists in this benchmark
only, never in the portal). Target: at most 20 % more.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import math
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from launcher import db
from launcher.app import create_app
from launcher.auth.session import Revocations, SessionCodec
from launcher.auth.user import User
from launcher.dates import month_of
from launcher.demo import data as demodata
from launcher.registry import Registry, load_registry
from launcher.reports import cellkey, distinct, sql
from launcher.reports.periods import (
    BY_VALUES,
    Period,
    go_live_baseline,
    month_period,
    quarter_period,
)
from launcher.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
APPS_FILE = ROOT / "config" / "apps.yaml"
SECRET = "bench-secret-key-" + "x" * 32
ISSUER = "http://127.0.0.1:9/unreachable-issuer"  # reports never talk to the provider
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_MS = 300.0
PRIVACY_TARGET = 1.20  # with noise and suppression / without
EMPLOYEES, MONTHS = 10_000, 60
SAMPLE_EMPLOYEES = 500  # calibration: this many employees, scaled up
DATA_VERSION = 1  # part of the --keep file name; bump when the generated history changes


# --- generating the history ---------------------------------------------------------------
def _registry(months: int, today: dt.date) -> Registry:
    """The demo registry with go-live at the start of the history, so that all of it is
    generated (config/apps.yaml's go-live is recent; the portal is still served with it)."""
    registry = load_registry(APPS_FILE)
    first = month_of(today)
    for _ in range(months - 1):
        first = month_of(first - dt.timedelta(days=1))
    portal = registry.portal.model_copy(update={"go_live": first})
    return dataclasses.replace(registry, portal=portal)


def _launch_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM launch_event")).scalar_one())


@functools.cache  # once for both databases
def calibrate(target: int, employees: int, months: int, today: dt.date) -> float:
    """The ``intensity`` that gives about ``target`` launch events, from small samples."""
    sample = min(employees, SAMPLE_EMPLOYEES)
    scale = employees / sample
    registry = _registry(months, today)
    tried: list[tuple[float, float]] = []
    intensity = 3.0
    for _ in range(4):
        engine = db.make_engine("sqlite://")
        db.upgrade(engine)
        demodata.generate(
            engine,
            registry,
            months=months,
            employees=sample,
            pseudonym_key=b"bench",
            today=today,
            intensity=intensity,
        )
        tried.append((intensity, _launch_rows(engine) * scale))
        engine.dispose()
        if abs(tried[-1][1] / target - 1) < 0.02:
            break
        if len(tried) == 1:  # launches grow slower than the intensity: active days are capped
            intensity *= (target / tried[0][1]) ** 1.6
        else:  # secant through the last two samples
            (i0, e0), (i1, e1) = tried[-2:]
            intensity = i1 + (target - e1) * (i1 - i0) / (e1 - e0) if e1 != e0 else i1
        intensity = max(0.05, intensity)
    print(
        f"  calibration ({sample} employees, x{scale:g}): "
        + ", ".join(f"intensity {i:.2f} -> {e / 1e6:.2f}M" for i, e in tried)
    )
    return min(tried, key=lambda t: abs(t[1] - target))[0]


def generate(engine: sa.Engine, args: argparse.Namespace, today: dt.date) -> None:
    intensity = calibrate(args.events, args.employees, args.months, today)
    started = time.perf_counter()
    raw_done = started

    def progress(done: int, total: int, events: int) -> None:
        nonlocal raw_done
        raw_done = time.perf_counter()  # the last month's raw events are in: rollups next
        demodata.progress_bar(done, total, events)

    written = demodata.generate(
        engine,
        _registry(args.months, today),
        months=args.months,
        employees=args.employees,
        pseudonym_key=b"bench",
        today=today,
        intensity=intensity,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    launches = _launch_rows(engine)
    print(
        f"  generated {launches:,} launch + {written - launches:,} sign-in events "
        f"({args.employees:,} employees, {args.months} months, intensity {intensity:.2f}) "
        f"in {seconds:.0f} s ({raw_done - started:.0f} s raw events, "
        f"{started + seconds - raw_done:.0f} s rollup rebuild): {written / seconds:,.0f} events/s"
    )


# --- the naive baseline --------------------------------------------------------------------
class Naive:
    """Equivalent GROUP BYs over the raw events, each timed once per (query, parameters)."""

    def __init__(self, engine: sa.Engine, registry: Registry, runs: int) -> None:
        self.engine = engine
        self.registry = registry
        self.runs = runs
        self.sqlite = engine.dialect.name == "sqlite"
        self.times: dict[tuple[str, str], float] = {}
        self.results: dict[tuple[str, str], list[tuple[Any, ...]]] = {}

    def _bound(self, day: dt.date) -> Any:
        at = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return at.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else at

    def _day(self, col: str = "ts") -> str:
        return (
            f"substr({col}, 1, 10)"
            if self.sqlite
            else f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        )

    def _month(self, col: str = "ts") -> str:
        return (
            f"substr({col}, 1, 7)"
            if self.sqlite
            else f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM')"
        )

    def _category(self) -> str:
        whens = " ".join(
            f"WHEN '{app.id}' THEN '{app.category or 'other'}'" for app in self.registry.apps
        )
        return f"CASE app_id {whens} ELSE 'other' END"

    EVENTS = (
        "(SELECT ts, user_id, department, 1 AS l FROM launch_event UNION ALL "
        "SELECT ts, user_id, department, 0 AS l FROM signin_event)"
    )

    def run(self, name: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run ``sql`` (timed, cached by name and parameters); dates become ts bounds."""
        bound = {k: self._bound(v) if isinstance(v, dt.date) else v for k, v in params.items()}
        key = (name, repr(sorted(params.items())))
        if key not in self.results:
            times = []
            for _ in range(self.runs):
                with self.engine.connect() as conn:
                    if not self.sqlite:
                        # The cohort query's filter on min(month) is estimated at one person,
                        # which planned a nested loop of index scans per person and partition
                        # (over 20 minutes at 10 M launches); a naive GROUP BY is a scan
                        conn.execute(sa.text("SET enable_nestloop = off"))
                    started = time.perf_counter()
                    rows = [tuple(r) for r in conn.execute(sa.text(sql), bound)]
                    times.append((time.perf_counter() - started) * 1000)
            self.times[key] = statistics.median(times)
            self.results[key] = rows
        return self.results[key]

    def ms(self, *names: tuple[str, str]) -> float:
        return sum(self.times[n] for n in names)

    def key(self, name: str, **params: Any) -> tuple[str, str]:
        return (name, repr(sorted(params.items())))

    # Each method below runs its query and returns its cache key(s) for ms().
    def launches(self, period: Period, by: str) -> tuple[str, str]:
        key = {
            "app": "app_id",
            "category": self._category(),
            "department": "COALESCE(department, '')",
            "day": self._day(),
            "month": self._month(),
        }[by]
        sql = (
            f"SELECT {key}, count(*), count(DISTINCT user_id) FROM launch_event "
            f"WHERE ts >= :lo AND ts < :hi GROUP BY {key}"
        )
        return self._go(f"launches by {by}", sql, lo=period.start, hi=_after(period.end))

    def active_users(self, period: Period, by: str) -> tuple[str, str]:
        key = self._day() if by == "day" else self._month()
        sql = (
            f"SELECT {key}, count(DISTINCT user_id), "
            f"count(DISTINCT CASE WHEN l = 1 THEN user_id END) FROM {self.EVENTS} AS e "
            f"WHERE ts >= :lo AND ts < :hi GROUP BY {key}"
        )
        return self._go(f"active users by {by}", sql, lo=period.start, hi=_after(period.end))

    def summary(self, period: Period) -> tuple[str, str]:
        sql = (
            "SELECT count(DISTINCT user_id), count(DISTINCT CASE WHEN l = 1 THEN user_id END), "
            f"sum(l), sum(1 - l) FROM {self.EVENTS} AS e WHERE ts >= :lo AND ts < :hi"
        )
        return self._go("summary", sql, lo=period.start, hi=_after(period.end))

    def comparison(self, period: Period) -> list[tuple[str, str]]:
        keys = [self.summary(period), self.summary(period.previous())]
        baseline = go_live_baseline(self.registry.portal.go_live, period)
        return keys + ([self.summary(baseline)] if baseline else [])

    def departments(self, period: Period) -> tuple[str, str]:
        sql = (
            f"SELECT COALESCE(department, ''), count(DISTINCT user_id) FROM {self.EVENTS} AS e "
            "WHERE ts >= :lo AND ts < :hi GROUP BY COALESCE(department, '')"
        )
        return self._go("departments", sql, lo=period.start, hi=_after(period.end))

    def cohorts(self, first: dt.date, last: dt.date) -> tuple[str, str]:
        """Cohorts need every raw event: a user's cohort is the month first seen, ever."""
        m = self._month()
        sql = f"""SELECT f.cohort, e.month, count(DISTINCT e.user_id)
            FROM (SELECT {m} AS month, user_id FROM {self.EVENTS} AS a) AS e
            JOIN (SELECT user_id, min({m}) AS cohort FROM {self.EVENTS} AS b GROUP BY user_id) AS f
              ON f.user_id = e.user_id
            WHERE f.cohort >= :first AND f.cohort <= :last AND e.month <= :last
            GROUP BY f.cohort, e.month"""
        return self._go("cohorts", sql, first=first.isoformat()[:7], last=last.isoformat()[:7])

    def heatmap(self, period: Period) -> tuple[str, str]:
        # PostgreSQL converts to the portal's time zone; SQLite cannot, so it groups UTC hours
        # (the same amount of work)
        if self.sqlite:
            cols = "substr(ts, 1, 7), strftime('%w', ts), strftime('%H', ts)"
        else:
            tz = self.registry.portal.timezone
            local = f"(ts AT TIME ZONE '{tz}')"
            cols = (
                f"date_trunc('month', {local}), EXTRACT(ISODOW FROM {local}), "
                f"EXTRACT(HOUR FROM {local})"
            )
        sql = (
            f"SELECT {cols}, count(*), count(DISTINCT user_id) FROM launch_event "
            f"WHERE ts >= :lo AND ts < :hi GROUP BY {cols}"
        )
        last = month_of(period.end)
        return self._go("heatmap", sql, lo=month_of(period.start), hi=_next_month(last))

    def adoption(self, first: dt.date) -> tuple[str, str]:
        m = self._month()
        sql = (
            f"SELECT {m}, count(DISTINCT user_id), sum(l), sum(1 - l) FROM {self.EVENTS} AS e "
            f"WHERE ts >= :lo GROUP BY {m}"
        )
        return self._go("adoption", sql, lo=first)

    def app_trends(self, first: dt.date) -> tuple[str, str]:
        m = self._month()
        sql = (
            f"SELECT app_id, {m}, count(*), count(DISTINCT user_id) FROM launch_event "
            f"WHERE ts >= :lo GROUP BY app_id, {m}"
        )
        return self._go("app trends", sql, lo=first)

    def dormant(self, today: dt.date) -> tuple[str, str]:
        baseline = go_live_baseline(self.registry.portal.go_live, month_period(today))
        assert baseline is not None
        sql = f"""SELECT b.dept, count(*) FROM (
                SELECT DISTINCT user_id, COALESCE(department, '') AS dept FROM {self.EVENTS} AS a
                WHERE ts >= :b_lo AND ts < :b_hi) AS b
            LEFT JOIN (SELECT DISTINCT user_id FROM {self.EVENTS} AS r WHERE ts >= :r_lo) AS r
              ON r.user_id = b.user_id
            WHERE r.user_id IS NULL GROUP BY b.dept"""
        return self._go(
            "dormant",
            sql,
            b_lo=baseline.start,
            b_hi=_after(baseline.end),
            r_lo=today - dt.timedelta(days=29),
        )

    def page(self, period: Period, today: dt.date) -> list[tuple[str, str]]:
        """What tables.build shows, the naive way."""
        go_live = self.registry.portal.go_live
        with self.engine.connect() as conn:
            oldest = conn.execute(sa.text("SELECT min(ts) FROM launch_event")).scalar_one()
        oldest_day = dt.date.fromisoformat(str(oldest)[:10])
        first = min(month_of(go_live) if go_live else month_of(oldest_day), month_of(oldest_day))
        last = month_of(period.end)
        trend_first = last
        for _ in range(11):
            trend_first = month_of(trend_first - dt.timedelta(days=1))
        return [
            *self.comparison(period),
            self.adoption(first),
            self.app_trends(max(first, trend_first)),
            self.heatmap(period),
            self.cohorts(first, last),
            self.dormant(today),
            self.launches(period, "app"),
            self.launches(period, "category"),
            self.departments(period),
        ]

    def _go(self, name: str, sql: str, **params: Any) -> tuple[str, str]:
        self.run(name, sql, **params)
        return self.key(name, **params)


def _after(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=1)


def _next_month(month: dt.date) -> dt.date:
    return month_of(month + dt.timedelta(days=32))


# --- what is measured ----------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    label: str
    path: str
    params: dict[str, str]
    naive: Callable[[], list[tuple[str, str]]]
    # compares the JSON body with the naive rows; returns a problem or None
    check: Callable[[dict[str, Any]], str | None] | None = None


def _within_noise(got: dict[str, tuple[int, ...]], want: dict[str, tuple[int, ...]]) -> bool:
    """The same keys, each figure within the cell-key noise of the raw count."""
    return got.keys() == want.keys() and all(
        abs(g - w) <= cellkey.max_noise(w) or (g, w) == (0, 0)
        for k in want
        for g, w in zip(got[k], want[k], strict=True)
    )


def _rows_check(
    naive: Naive, key: tuple[str, str], fields: tuple[str, str], fix_key: Callable[[Any], str]
) -> Callable[[dict[str, Any]], str | None]:
    def check(body: dict[str, Any]) -> str | None:
        # rows or figures hidden for privacy cannot be compared
        hidden = {str(r["key"]) for r in body["rows"] if any(r[f] is None for f in fields)}
        want = {fix_key(r[0]): tuple(int(v) for v in r[1:]) for r in naive.results[key]}
        want = {k: v for k, v in want.items() if k not in hidden}
        got = {
            str(r["key"]): tuple(int(r[f]) for f in fields)
            for r in body["rows"]
            if str(r["key"]) not in hidden and any(r[f] for f in fields)
        }
        if not _within_noise(got, want):
            diff = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
            pairs = [(k, want.get(k), got.get(k)) for k in diff[:3]]
            return f"differs from the raw events (key, raw, report): {pairs}"
        return None

    return check


def cases(naive: Naive, today: dt.date) -> list[Case]:
    last_full_month = month_of(month_of(today) - dt.timedelta(days=1))
    quarter = quarter_period(quarter_period(today).start - dt.timedelta(days=1))
    ranges = {
        "30 days": Period(today - dt.timedelta(days=29), today),
        "year": Period(dt.date(today.year - 1, 1, 1), dt.date(today.year - 1, 12, 31)),
        "365 days": Period(today - dt.timedelta(days=364), today),
    }

    def dept(value: Any) -> str:
        return value or sql.UNKNOWN

    def same(value: Any) -> str:
        return str(value)

    out = [
        Case(
            f"page, month {last_full_month.isoformat()[:7]}",
            "/reports",
            {},
            lambda: naive.page(month_period(last_full_month), today),
        ),
        Case(
            f"page, quarter {quarter.start.isoformat()[:7]}",
            "/reports",
            {"period": "quarter"},
            lambda: naive.page(quarter, today),
        ),
        Case(
            f"CSV apps, month {last_full_month.isoformat()[:7]}",
            "/reports/export.csv",
            {"table": "apps"},
            lambda: naive.page(month_period(last_full_month), today),
        ),
    ]
    for label, period in ranges.items():
        span = {"from": period.start.isoformat(), "to": period.end.isoformat()}
        for by in BY_VALUES:
            key = naive.key("launches by " + by, lo=period.start, hi=_after(period.end))
            fix = dept if by == "department" else same
            out.append(
                Case(
                    f"launches by {by}, {label}",
                    "/api/v1/reports/launches",
                    {**span, "by": by},
                    lambda p=period, b=by: [naive.launches(p, b)],
                    _rows_check(naive, key, ("launches", "users"), fix),
                )
            )
        for by in ("day", "month"):
            key = naive.key("active users by " + by, lo=period.start, hi=_after(period.end))
            out.append(
                Case(
                    f"active-users by {by}, {label}",
                    "/api/v1/reports/active-users",
                    {**span, "by": by},
                    lambda p=period, b=by: [naive.active_users(p, b)],
                    _rows_check(naive, key, ("users", "launchers"), same),
                )
            )
        summary_key = naive.key("summary", lo=period.start, hi=_after(period.end))

        def check_comparison(body: dict[str, Any], k: tuple[str, str] = summary_key) -> str | None:
            users, _, n_launches, signins = (int(v) for v in naive.results[k][0])
            got = {r["metric"]: r["value"] for r in body["rows"]}
            want = {"active_users": users, "launches": n_launches, "signins": signins}
            bad = {
                m: (v, got[m]) for m, v in want.items() if abs(got[m] - v) > cellkey.max_noise(v)
            }
            return f"differs from the raw events: {bad}" if bad else None

        first, last = month_of(period.start), month_of(period.end)
        out += [
            Case(
                f"comparison, {label}",
                "/api/v1/reports/comparison",
                span,
                lambda p=period: naive.comparison(p),
                check_comparison,
            ),
            Case(
                f"cohorts, {label}",
                "/api/v1/reports/cohorts",
                span,
                lambda f=first, la=last: [naive.cohorts(f, la)],
            ),
            Case(
                f"heatmap, {label}",
                "/api/v1/reports/heatmap",
                span,
                lambda p=period: [naive.heatmap(p)],
            ),
            Case(
                f"departments, {label}",
                "/api/v1/reports/departments",
                span,
                lambda p=period: [naive.departments(p)],
                _rows_check(
                    naive,
                    naive.key("departments", lo=period.start, hi=_after(period.end)),
                    ("users",),
                    dept,
                ),
            ),
        ]
    return out


# --- serving and timing ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(url: str, port: int, tmp: Path, min_group: int = 5) -> Settings:
    return load_settings(
        report_min_group=min_group,
        secret_key=SECRET,
        base_url=f"http://127.0.0.1:{port}",
        oidc_issuer=ISSUER,
        oidc_client_id="bench",
        oidc_client_secret="bench-client-secret",
        database_url=url,
        apps_file=APPS_FILE,
        spool_dir=tmp / "spool",
        raw_retention_days=100 * 366,  # the daily purge must leave the naive baseline alone
    )


def _cookie(settings: Settings) -> dict[str, str]:
    codec = SessionCodec(settings, Revocations(sa.create_engine("sqlite://")))
    user = User(
        user_id="bench-reviewer",
        sub="bench-reviewer",
        name="Bench Reviewer",
        email="reviewer@example.org",
        department="it",
        groups=("staff", "launcher-reviewers"),
    )
    return {settings.session_cookie: codec.dumps(codec.new(user, op_sid=None))}


@contextlib.contextmanager
def privacy_off() -> Iterator[None]:
    """No noise and no cell keys summed (with a portal whose minimum group is 1: nothing
    suppressed). The SQL sums of launch keys stay: they ride along with the launch counts."""
    saved = cellkey.perturb, distinct.Counter.__init__, distinct.Counter.__call__

    def no_planes(self: distinct.Counter, conn: sa.Connection) -> None:
        pass

    def count_only(self: distinct.Counter, people: Any) -> tuple[int, int]:
        return (len(people), 0) if people else (0, 0)

    cellkey.perturb = lambda count, key: count  # type: ignore[assignment]
    distinct.Counter.__init__ = no_planes  # type: ignore[method-assign]
    distinct.Counter.__call__ = count_only  # type: ignore[method-assign]
    try:
        yield
    finally:
        cellkey.perturb, distinct.Counter.__init__, distinct.Counter.__call__ = saved  # type: ignore[method-assign]


@contextlib.contextmanager
def serve(url: str, tmp: Path, min_group: int = 5) -> Iterator[httpx.Client]:
    port = _free_port()
    settings = _settings(url, port, tmp / f"g{min_group}", min_group)
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the portal did not start")
        time.sleep(0.05)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", cookies=_cookie(settings), timeout=600
        ) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclasses.dataclass
class Result:
    case: Case
    median: float
    p95: float
    naive: float
    problem: str | None
    open_median: float | None = None  # without noise and suppression (privacy_off)
    pairs: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # (with, without)

    @property
    def privacy(self) -> float | None:
        return self.median / self.open_median if self.open_median else None

    @property
    def paired(self) -> float | None:
        """The median of with / without over the requests timed back to back: on a loaded
        machine a request either runs through or waits for a core, and when about half of
        them wait the median of either list jumps between the two; a pair mostly shares its
        fate."""
        return statistics.median(a / b for a, b in self.pairs) if self.pairs else None

    @property
    def ok(self) -> bool:
        return self.median <= TARGET_MS and self.problem is None


def _timed(client: httpx.Client, case: Case) -> float:
    started = time.perf_counter()
    resp = client.get(case.path, params=case.params)
    resp.read()
    resp.raise_for_status()
    return (time.perf_counter() - started) * 1000


def measure(
    client: httpx.Client,
    case: Case,
    naive: Naive,
    runs: int,
    open_client: httpx.Client | None = None,
    with_naive: bool = True,
    open_off: Callable[[], contextlib.AbstractContextManager[None]] = privacy_off,
) -> Result:
    first = client.get(case.path, params=case.params)  # warm-up, and the body to check
    if first.status_code != 200:
        raise RuntimeError(
            f"{case.path} {case.params}: HTTP {first.status_code} {first.text[:300]}"
        )
    times, open_times = [], []
    if open_client is not None:
        with open_off():
            open_client.get(case.path, params=case.params).raise_for_status()  # warm-up
    for i in range(runs):  # alternating, so that the machine's load falls on both alike
        if open_client is not None and i % 2:  # and each goes first half of the time
            with open_off():
                open_times.append(_timed(open_client, case))
        times.append(_timed(client, case))
        if open_client is not None and not i % 2:
            with open_off():
                open_times.append(_timed(open_client, case))
    keys = case.naive() if with_naive else []
    problem = case.check(first.json()) if case.check and with_naive else None
    return Result(
        case,
        statistics.median(times),
        _p95(times),
        naive.ms(*keys) if with_naive else math.nan,
        problem,
        statistics.median(open_times) if open_times else None,
        list(zip(times, open_times, strict=True)) if open_times else [],
    )


def bench(url: str, tmp: Path, args: argparse.Namespace, title: str) -> list[Result]:
    today = dt.datetime.now(dt.UTC).date()
    engine = db.make_engine(url)
    naive = Naive(engine, load_registry(APPS_FILE), args.naive_runs)
    results = []
    print(f"  timing {args.runs} runs per report (after one warm-up) and the naive queries …")
    try:
        # --same: the second portal with the privacy method too, so that the "privacy" ratios
        # show what the machine's noise alone makes of two equal portals
        open_min, open_off = (5, contextlib.nullcontext) if args.same else (1, privacy_off)
        with serve(url, tmp) as client, serve(url, tmp, min_group=open_min) as open_client:
            wanted = args.only.split(",") if args.only else None
            for case in cases(naive, today):
                if wanted and not any(w in case.label for w in wanted):
                    continue
                result = measure(
                    client, case, naive, args.runs, open_client, not args.no_naive, open_off
                )
                results.append(result)
                if args.verbose:
                    print(f"    {case.label}: {result.median:.1f} ms", file=sys.stderr)
    finally:
        engine.dispose()
    print_table(title, results)
    return results


def print_table(title: str, results: list[Result]) -> None:
    width = max(len(r.case.label) for r in results)
    print()
    print(f"{title}: median and p95 over HTTP; naive = the same figures grouped from raw events")
    print("  privacy = median with noise and suppression / median without (the same run)")
    print("  paired = median of with / without over the requests timed back to back")
    print(
        f"{'report':<{width}}  {'median ms':>9}  {'p95 ms':>8}  {'naive ms':>9}  {'ratio':>7}"
        f"  {'privacy':>7}  {'paired':>6}"
    )
    for r in results:
        verdict = "PASS" if r.ok else "FAIL"
        note = f"  {r.problem}" if r.problem else ""
        privacy = f"{r.privacy:7.2f}" if r.privacy else f"{'-':>7}"
        privacy += f"  {r.paired:6.2f}" if r.paired else f"  {'-':>6}"
        print(
            f"{r.case.label:<{width}}  {r.median:9.1f}  {r.p95:8.1f}  {r.naive:9.0f}  "
            f"{r.median / r.naive:7.4f}  {privacy}  {verdict}{note}"
        )
    slowest = max(results, key=lambda r: r.median)
    print(f"slowest: {slowest.case.label} at {slowest.median:.1f} ms (target <= {TARGET_MS:g} ms)")
    ratios = sorted(r.privacy for r in results if r.privacy)
    paired = sorted(r.paired for r in results if r.paired)
    if ratios:
        print(
            f"privacy method: median ratio {statistics.median(ratios):.2f}, largest "
            f"{ratios[-1]:.2f} (target <= {PRIVACY_TARGET:.2f}); paired: median "
            f"{statistics.median(paired):.2f}, largest {paired[-1]:.2f}"
        )


# --- the databases ------------------------------------------------------------------------------
def run_sqlite(args: argparse.Namespace, tmp: Path) -> list[Result]:
    today = dt.datetime.now(dt.UTC).date()
    if args.keep:
        keep = Path(args.keep)
        keep.mkdir(parents=True, exist_ok=True)
        path = keep / (
            f"reports-v{DATA_VERSION}-{args.events}-{args.employees}x{args.months}-"
            f"{today.isoformat()[:7]}.db"
        )
    else:
        path = tmp / "launcher.db"
    print(f"SQLite: {path}")
    if path.exists():
        print("  reusing the history generated earlier (--keep)")
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)  # a migration added since then
    else:
        partial = path.with_suffix(".partial")
        for stale in path.parent.glob(partial.name + "*"):
            stale.unlink()
        engine = db.make_engine(f"sqlite:///{partial}")
        db.upgrade(engine)
        generate(engine, args, today)
        engine.dispose()
        partial.rename(path)  # only a complete history is reused
        engine = db.make_engine(f"sqlite:///{path}")
    engine.dispose()
    return bench(f"sqlite:///{path}", tmp, args, "SQLite")


def run_postgres(args: argparse.Namespace, tmp: Path) -> list[Result]:
    admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")

    def url_of(name: str) -> str:
        return sa.make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)

    def exists(name: str) -> bool:
        with admin.connect() as conn:
            found = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
        return found is not None

    today = dt.datetime.now(dt.UTC).date()
    if args.pg_keep:  # named like --keep's file; only a complete history gets the name
        name = (
            f"{args.pg_keep}_v{DATA_VERSION}_{args.events}_{args.employees}x{args.months}_"
            f"{today.strftime('%Y%m')}"
        )
        building = f"{name}_partial"
    else:
        name = building = f"launcher_bench_{uuid.uuid4().hex[:8]}"
    reuse = bool(args.pg_keep) and exists(name)
    print(f"PostgreSQL: database {name}" + ("" if args.pg_keep else " (dropped at the end)"))
    try:
        if reuse:
            print("  reusing the history generated earlier (--pg-keep)")
            engine = db.make_engine(url_of(name))
            db.upgrade(engine)  # a migration added since then
            engine.dispose()
        else:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{building}"'))
            engine = db.make_engine(url_of(building))
            db.upgrade(engine)
            generate(engine, args, today)
            engine.dispose()
            vacuum = sa.create_engine(url_of(building), isolation_level="AUTOCOMMIT")
            with vacuum.connect() as conn:  # what autovacuum would have done by now
                conn.execute(sa.text("VACUUM ANALYZE"))
            vacuum.dispose()
            if building != name:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))
        return bench(url_of(name), tmp, args, "PostgreSQL")
    finally:
        if not args.pg_keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="launch events to generate")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--keep", metavar="DIR", help="keep and reuse the SQLite history in DIR")
    parser.add_argument("--runs", type=int, default=9, help="timed requests per report")
    parser.add_argument("--naive-runs", type=int, default=1, help="runs per naive query")
    parser.add_argument("--employees", type=int, default=EMPLOYEES)
    parser.add_argument("--months", type=int, default=MONTHS)
    parser.add_argument("--pg-url", default=os.environ.get("LAUNCHER_BENCH_POSTGRES", PG_URL))
    parser.add_argument(
        "--pg-keep",
        metavar="PREFIX",
        help="keep and reuse the PostgreSQL history in a database named PREFIX_v1_...",
    )
    parser.add_argument(
        "--only", metavar="LABELS", help="only the reports whose label contains one of these (a,b)"
    )
    parser.add_argument(
        "--no-naive",
        action="store_true",
        help="skip the naive baseline and its agreement check (the privacy ratio only)",
    )
    parser.add_argument(
        "--same",
        action="store_true",
        help="both portals with the privacy method: the ratios' noise floor on this machine",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="launcher-bench-reports-"))
    results: list[Result] = []
    try:
        if args.db in ("sqlite", "both"):
            results += run_sqlite(args, tmp)
        if args.db in ("postgres", "both"):
            results += run_postgres(args, tmp)
    except (RuntimeError, sa.exc.OperationalError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = [r for r in results if not r.ok]
    print()
    if failed:
        print(f"FAIL: {len(failed)} of {len(results)} reports over {TARGET_MS:g} ms or wrong")
        return 1
    print(f"PASS: all {len(results)} reports within {TARGET_MS:g} ms (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

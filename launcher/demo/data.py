"""Realistic launch history for the demo and the report benchmark.

The story the charts should tell: a go-live spike, a dip after about two months as the
novelty wears off, a partial recovery; departments that arrive at different speeds (IT at
once, youth care slowly, the support office drifting away); Teams and the EHR growing while
older apps fade. Events are written through the same rollup code as live launches, month by
month, so the database looks exactly as if the portal had been used. With ``signins``, the
identity provider's log of the same months is written and imported too (launcher/demo/signins.py).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher.auth.user import pseudonym
from launcher.demo import signins as demo_signins
from launcher.events import Launch, SignIn, insert_events
from launcher.registry import Registry
from launcher.reports import rebuild
from launcher.signins import importer

DEMO_ISSUER = "urn:launcher:demo-data"
# (department, share of staff, groups, curve shape: (arrival months, long-run level, drift/yr))
DEPARTMENTS = (
    ("nursing", 0.42, ("staff", "clinicians"), (0.3, 0.72, 0.02)),
    ("medical", 0.08, ("staff", "clinicians"), (0.5, 0.70, 0.04)),
    ("mental-health", 0.16, ("staff", "clinicians"), (0.8, 0.66, 0.02)),
    ("youth-care", 0.10, ("staff",), (5.0, 0.60, 0.05)),
    ("support-office", 0.20, ("staff",), (0.2, 0.70, -0.12)),
    ("it", 0.04, ("staff", "launcher-admins"), (0.1, 0.95, 0.00)),
)
# app id -> (base weight, growth per year); apps missing from the registry are skipped
APP_TRENDS = {
    "teams": (10.0, 0.35),
    "ehr": (9.0, 0.25),
    "outlook": (8.0, -0.10),
    "rooster": (5.0, 0.05),
    "medication": (4.0, 0.10),
    "hr-selfservice": (2.5, -0.05),
    "sharepoint": (3.0, -0.30),
    "google-workspace": (2.0, -0.35),
    "intranet-news": (2.0, -0.40),
    "protocols": (1.5, 0.00),
    "incident-report": (0.8, 0.00),
    "e-learning": (1.2, 0.10),
    "servicedesk": (1.0, -0.05),
    "time-tracking": (1.5, 0.00),
    "review-dashboard": (0.3, 0.00),
    "admin-console": (0.3, 0.00),
}
# hour weights, local time: day shifts, evening handovers, a few night launches
HOURS = [0.3, 0.2, 0.1, 0.1, 0.2, 0.5, 2.0, 6.0, 9.0, 8.0, 6.5, 5.5,
         4.5, 6.0, 6.5, 6.0, 4.0, 2.5, 1.5, 1.2, 1.0, 0.8, 1.5, 0.8]  # fmt: skip
WEEKDAYS = [1.0, 1.0, 0.95, 0.95, 0.85, 0.3, 0.25]


@dataclass(frozen=True)
class Employee:
    user_id: str
    subject: str  # the raw id the identity provider knows (an Entra object id), pseudonymised
    department: str
    groups: tuple[str, ...]
    arrival: float  # months after go-live when this person starts using the portal
    level: float  # long-run probability of being active in a month
    drift: float  # change in level per year
    intensity: float  # how many days a month, relative to the average


def _curve(months_since: float, emp: Employee) -> float:
    """Probability that ``emp`` is active in a month: spike, dip, partial recovery, drift."""
    if months_since < emp.arrival - 1:
        return 0.02
    t = max(months_since - emp.arrival, 0.0)
    spike = 0.30 * math.exp(-months_since / 1.2)  # go-live enthusiasm, for all who are there
    dip = -0.25 * math.exp(-((months_since - 3.0) ** 2) / 3.0)  # the novelty wears off
    level = emp.level + emp.drift * t / 12 + spike + dip
    return min(max(level, 0.02), 0.98)


def _employees(n: int, rnd: random.Random, key: bytes) -> list[Employee]:
    weights = [share for _, share, _, _ in DEPARTMENTS]
    people = []
    for i in range(n):
        dept, _, groups, (arrival, level, drift) = rnd.choices(DEPARTMENTS, weights)[0]
        subject = str(uuid.UUID(int=i + 1, version=4))
        people.append(
            Employee(
                user_id=pseudonym(key, DEMO_ISSUER, subject),
                subject=subject,
                department=dept,
                groups=groups,
                arrival=max(0.0, rnd.gauss(arrival, arrival / 2 + 0.2)),
                level=min(0.99, max(0.05, rnd.gauss(level, 0.12))),
                drift=drift,
                intensity=rnd.lognormvariate(0, 0.45),
            )
        )
    return people


def _app_table(
    registry: Registry, groups: Sequence[str], months_since: float
) -> tuple[list[str], list[float]]:
    apps, cumulative, total = [], [], 0.0
    for app in registry.visible_apps(groups):
        base, growth = APP_TRENDS.get(app.id, (1.0, 0.0))
        total += base * math.exp(growth * months_since / 12)
        apps.append(app.id)
        cumulative.append(total)
    return apps, cumulative


def _source(rnd: random.Random, month_no: int, weekday: int) -> str:
    """Where a launch starts (launcher/reports/sources.py): mostly a tile; the search, the
    recently used row and bookmarks from the start; favourites grow as people star apps; the
    weekly digest starts in the fifth month after go-live, its clicks mostly on Mondays."""
    digest = 0.0 if month_no < 4 else 0.10 if weekday == 0 else 0.015
    shares = (
        ("search", 0.10),
        ("favourite", min(0.18, 0.02 * month_no)),
        ("recent", 0.07),
        ("digest", digest),
        ("direct", 0.06),
    )
    r = rnd.random()
    for source, share in shares:
        if r < share:
            return source
        r -= share
    return "portal"


def _month_start(month: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime(month.year, month.month, 1, tzinfo=tz)


def _months(first: dt.date, last: dt.date) -> list[dt.date]:
    out, m = [], first
    while m <= last:
        out.append(m)
        m = (m.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return out


def generate(
    engine: sa.Engine,
    registry: Registry,
    *,
    months: int = 14,
    employees: int = 2000,
    pseudonym_key: bytes,
    today: dt.date | None = None,
    seed: int = 2025,
    intensity: float = 1.0,
    progress: Callable[[int, int, int], None] | None = None,
    signins: Path | None = None,
) -> int:
    """Write ``months`` months of history ending today for ``employees`` people, then rebuild
    the rollups from the raw events. With ``signins``, also the identity provider's sign-in
    log of those months as an Entra export at that path, imported as a real one would be.
    Returns the number of events written (launches, sign-ins and imported sign-ins).

    Go-live is the registry's ``portal.go_live`` when it falls in that window, else the first
    month. ``intensity`` scales how many days a month people use the portal. Returns the
    number of events written.
    """
    rnd = random.Random(seed)
    # sources from a stream of their own: the rest of the history is as it was without them
    source_rnd = random.Random(seed + 1)
    tz = ZoneInfo(registry.portal.timezone)
    today = today or dt.datetime.now(dt.UTC).date()
    last = today.replace(day=1)
    index = last.year * 12 + last.month - 1 - (months - 1)
    all_months = _months(dt.date(index // 12, index % 12 + 1, 1), last)
    go_live = registry.portal.go_live
    if go_live is None or not all_months[0] <= go_live <= today:
        go_live = all_months[0]
    people = _employees(employees, rnd, pseudonym_key)
    tables: dict[tuple[tuple[str, ...], int], tuple[list[str], list[float]]] = {}
    day_weights = list(itertools.accumulate(WEEKDAYS))
    hour_weights = list(itertools.accumulate(HOURS))
    written = 0
    log = None if signins is None else demo_signins.Log(signins, registry, seed)
    subjects = {p.user_id: p.subject for p in people}
    now = dt.datetime.now(dt.UTC)
    for index, month in enumerate(all_months):
        start = _month_start(month, tz)
        days_in_month = ((start + dt.timedelta(days=32)).replace(day=1) - start).days
        month_no = (month.year - go_live.year) * 12 + month.month - go_live.month
        if month_no < 0:
            continue
        # per weekday, the days of this month (that are not in the future)
        by_weekday: list[list[int]] = [[] for _ in range(7)]
        for d in range(days_in_month):
            day = month + dt.timedelta(days=d)
            if day <= today:
                by_weekday[day.weekday()].append(d)
        launches: list[Launch] = []
        visits: list[SignIn] = []
        days_at_work: list[tuple[dt.datetime, str]] = []
        for emp in people:
            if rnd.random() > _curve(month_no, emp):
                continue
            key = (emp.groups, month_no)
            if key not in tables:
                tables[key] = _app_table(registry, emp.groups, month_no)
            apps, cumulative = tables[key]
            if not apps:
                continue
            active_days = max(
                1, min(days_in_month, int(rnd.expovariate(1 / (6 * emp.intensity * intensity))))
            )
            for _ in range(active_days):
                weekday = bisect.bisect(day_weights, rnd.random() * day_weights[-1])
                if not by_weekday[weekday]:
                    continue
                d = rnd.choice(by_weekday[weekday])
                hour = bisect.bisect(hour_weights, rnd.random() * hour_weights[-1])
                base = start + dt.timedelta(days=d, hours=hour, seconds=rnd.randrange(3600))
                ts = base.astimezone(dt.UTC)
                if ts.date() > today:
                    continue
                days_at_work.append((ts, emp.user_id))
                if rnd.random() < 0.55:
                    visits.append(SignIn(ts, emp.user_id, emp.department))
                elif rnd.random() < 0.08:  # signed in, looked, launched nothing
                    visits.append(SignIn(ts, emp.user_id, emp.department))
                    continue
                for n in range(1 + int(rnd.expovariate(0.9))):
                    app = apps[bisect.bisect(cumulative, rnd.random() * cumulative[-1])]
                    at = ts + dt.timedelta(seconds=40 * n + rnd.randrange(30))
                    source = _source(source_rnd, month_no, weekday)
                    launches.append(Launch(at, app, emp.user_id, emp.department, source))
        written += _write(engine, launches, visits)
        if log is not None:
            log.month(launches, days_at_work, subjects, month_no, now)
        if progress:
            progress(index + 1, len(all_months), written)
    rebuild.rebuild(engine, tz)  # set-based: far faster than folding in batch by batch
    if log is not None and signins is not None:
        log.close()
        written += importer.import_files(
            engine,
            None,
            registry.signin_map(),
            "entra",
            [signins],
            pseudonym=(pseudonym_key, DEMO_ISSUER),  # as the people above were made
        ).new
    return written


def _write(engine: sa.Engine, launches: list[Launch], signins: list[SignIn]) -> int:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            _copy(conn, launches, signins)
        else:
            insert_events(conn, launches, signins)
    return len(launches) + len(signins)


def _copy(conn: sa.Connection, launches: list[Launch], signins: list[SignIn]) -> None:
    """PostgreSQL's COPY: for millions of events several times faster than INSERT."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        columns = "launch_event (ts, app_id, user_id, department, source)"
        with cursor.copy(f"COPY {columns} FROM STDIN") as copy:
            for e in launches:
                copy.write_row((e.ts, e.app_id, e.user_id, e.department, e.source))
        with cursor.copy("COPY signin_event (ts, user_id, department) FROM STDIN") as copy:
            for s in signins:
                copy.write_row((s.ts, s.user_id, s.department))


def progress_bar(done: int, total: int, events: int) -> None:
    """A one-line progress bar on stderr."""
    width = 30
    filled = int(width * done / total)
    sys.stderr.write(
        f"\r  [{'#' * filled}{'.' * (width - filled)}] month {done}/{total}, {events:,} events"
    )
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()

"""Distinct people over a period, from the bitmaps of launcher/reports/people.py.

A period is read as the month bitmaps of the months it covers whole and the day bitmaps of
the days at its edges (at most two ranges of fewer than a month each), unioned per key in
memory: about sixty month bitmaps and a few dozen day bitmaps per key for five years, at any
head count.

Each count goes with its cell key, the sum of its people's person keys modulo 2**32
(launcher/reports/cellkey.py), without visiting the people: a person key is 32 bits, so the
sum over a set S is the sum over the bits j of 2**j times the number of people in S whose key
has bit j set, |S & P_j|. The 32 *key planes* P_j (bitmaps of person numbers) are built in
each process from person_number and grown as numbers are given; an intersection count of
Roaring bitmaps costs per container of 65,536 numbers, not per person. The keys are the same
person keys as before the bitmaps (a hash of the pseudonymous user id), so every figure gets
the noise it got before, whichever way its people were counted.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import sqlalchemy as sa
from pyroaring import BitMap

from launcher.dates import month_end
from launcher.reports.cellkey import MOD, Count
from launcher.reports.people import ANY, T_PEOPLE_DAY, T_PEOPLE_MONTH, from_bytes
from launcher.reports.periods import Period
from launcher.reports.sql import UNKNOWN

EACH = None  # "one bitmap per app (or department)", as opposed to ANY: all of them at once
Sets = dict[tuple[str, str], BitMap]  # (app_id, department) -> people
_SHARED: ContextVar[dict[tuple[object, ...], Sets] | None] = ContextVar("shared", default=None)


@contextmanager
def shared() -> Iterator[None]:
    """Within this block (one report page: its tables ask for the apps of the same period
    three times, for apps, categories and the decline view), each set of bitmaps is read
    once. Callers must not change the bitmaps they get."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


@dataclass(frozen=True)
class Parts:
    """A period as whole months (``first`` … ``last``, or none) and day ranges."""

    first: dt.date | None
    last: dt.date | None
    days: tuple[Period, ...]


def parts(period: Period) -> Parts:
    months = [m for m in period.months() if m >= period.start and month_end(m) <= period.end]
    if not months:
        return Parts(None, None, (period,))
    first, last = months[0], months[-1]
    days = []
    if period.start < first:
        days.append(Period(period.start, first - dt.timedelta(days=1)))
    if month_end(last) < period.end:
        days.append(Period(month_end(last) + dt.timedelta(days=1), period.end))
    return Parts(first, last, tuple(days))


def people(
    conn: sa.Connection,
    period: Period,
    column: str,
    app: str | None = ANY,
    department: str | None = ANY,
) -> Sets:
    """The people of ``column`` ("active" or "launched") in the period per (app,
    department): ``ANY`` for the rows about all apps (all departments), ``EACH`` for one per
    app (department); the unknown department's key is "unknown", as in the reports."""
    p = parts(period)
    selects = []
    for tbl, when, ranges in (
        (T_PEOPLE_MONTH, T_PEOPLE_MONTH.c.month, [(p.first, p.last)] if p.first else []),
        (T_PEOPLE_DAY, T_PEOPLE_DAY.c.day, [(d.start, d.end) for d in p.days]),
    ):
        if not ranges:
            continue
        apps = tbl.c.app_id != ANY if app is EACH else tbl.c.app_id == app
        depts = tbl.c.department != ANY if department is EACH else tbl.c.department == department
        selects.append(
            sa.select(tbl.c.app_id, tbl.c.department, tbl.c[column]).where(
                sa.or_(*(sa.and_(when >= lo, when <= hi) for lo, hi in ranges)), apps, depts
            )
        )
    if not selects:
        return {}
    query = sa.union_all(*selects) if len(selects) > 1 else selects[0]
    found: dict[tuple[str, str], list[BitMap]] = defaultdict(list)
    for a, d, data in conn.execute(query):
        if data:
            found[(a, d if d == ANY else d or UNKNOWN)].append(from_bytes(data))
    return {key: BitMap.union(*maps) if len(maps) > 1 else maps[0] for key, maps in found.items()}


def union(sets: Iterable[BitMap]) -> BitMap:
    maps = list(sets)
    return BitMap.union(BitMap(), *maps) if maps else BitMap()


# --- cell keys --------------------------------------------------------------------------------
@dataclass
class _Planes:
    epoch: str = ""
    known: int = 0  # numbers below this are in the planes
    planes: list[BitMap] = field(default_factory=lambda: [BitMap() for _ in range(32)])
    lock: threading.Lock = field(default_factory=threading.Lock)


_PLANES: dict[str, _Planes] = {}
_PLANES_LOCK = threading.Lock()


def _planes(conn: sa.Connection) -> list[BitMap]:
    """This database's key planes, grown by the numbers given since the last call. Numbers
    are never given twice and a person's key never changes, so the planes only grow; a new
    ``epoch`` (a database numbered afresh) starts them again."""
    url = conn.engine.url.render_as_string(hide_password=True)
    with _PLANES_LOCK:
        cache = _PLANES.setdefault(url, _Planes())
    row = conn.execute(sa.text("SELECT next_number, epoch FROM person_counter")).first()
    if row is None:
        return [BitMap() for _ in range(32)]
    limit, epoch = int(row[0]), str(row[1])
    with cache.lock:
        if epoch != cache.epoch:
            cache.epoch, cache.known = epoch, 0
            cache.planes = [BitMap() for _ in range(32)]
        if limit > cache.known:
            rows = conn.execute(
                sa.text(
                    "SELECT number, person_key FROM person_number "
                    "WHERE number >= :lo AND number < :hi"
                ),
                {"lo": cache.known, "hi": limit},
            ).all()
            planes = [BitMap(cache.planes[j]) for j in range(32)]  # readers keep the old ones
            for j in range(32):
                planes[j].update(int(n) for n, k in rows if (int(k) >> j) & 1)
            cache.planes, cache.known = planes, limit
        return cache.planes


class Counter:
    """Counts of bitmaps with their cell keys, for one report's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._planes = _planes(conn)

    def __call__(self, people: BitMap | None) -> Count:
        if not people:
            return 0, 0
        key = sum(people.intersection_cardinality(p) << j for j, p in enumerate(self._planes))
        return len(people), key % MOD

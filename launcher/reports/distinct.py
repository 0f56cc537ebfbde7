"""Distinct people over a period, from the bitmaps of launcher/reports/people.py.

A period is read as the whole calendar years it covers, the other months it covers whole and
the days at its edges (at most two ranges of fewer than a month each), unioned per key in
memory: for five years about five year unions, a dozen months and a few dozen days per key,
at any head count.

Each process keeps what it decoded (:data:`CACHE`, an LRU of :data:`CACHE_BYTES`), keyed by
the stamps of people_stamp: every writer of the bitmaps gives the days and months it writes a
new random stamp in its transaction (launcher/reports/people.py), so a query reads the stamps
of its range (one small query) and fetches rows only for days and months whose stamp it has
not seen -- in practice today's. A year's union is kept under its twelve month stamps. An
entry whose stamps changed is never read again, so none is ever stale.

Each count goes with its cell key, the sum of its people's person keys modulo 2**32
(launcher/reports/cellkey.py), taken from the bitmap without a query per person
(launcher/reports/personkeys.py): the same person keys as before the bitmaps (a hash of the
pseudonymous user id), so every figure gets the noise it got before, whichever way its people
were counted.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from pyroaring import AbstractBitMap, FrozenBitMap

from launcher.dates import month_end
from launcher.reports import personkeys
from launcher.reports.cellkey import Count
from launcher.reports.lru import SizedLRU
from launcher.reports.people import (
    ANY,
    T_PEOPLE_DAY,
    T_PEOPLE_MONTH,
    T_PEOPLE_STAMP,
    T_PERSON_COUNTER,
)
from launcher.reports.periods import Period
from launcher.reports.sql import UNKNOWN

EACH = None  # "one bitmap per app (or department)", as opposed to ANY: all of them at once
Spec = str | None  # ANY, EACH or one app (department) id
Sets = dict[tuple[str, str], AbstractBitMap]  # (app_id, department) -> people
_SHARED: ContextVar[dict[tuple[object, ...], Any] | None] = ContextVar("shared", default=None)
# person_counter as the last stamps query on a connection read it: (connection, next number,
# epoch) -- the key planes' check rides on that query instead of a round trip of its own
_COUNTER: ContextVar[tuple[sa.Connection, int, str] | None] = ContextVar("counter", default=None)

# The decoded bitmaps a process keeps (see CACHE). A five-year page at 100,000 employees
# holds about 45 MB (docs/SCALING.md); past the budget the least recently used go first.
CACHE_BYTES = 192 * 2**20


@contextmanager
def shared() -> Iterator[None]:
    """Within this block (one report page: its tables ask for the apps of the same period
    three times, for apps, categories and the decline view), the people of each (period,
    column, apps, departments) are put together once."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


T = TypeVar("T")


def memoized(key: tuple[object, ...], compute: Callable[[], T]) -> T:
    """``compute()``, once per ``key`` within the current distinct.shared() block (a page's
    reports); outside one, every time."""
    memo = _SHARED.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    found: T = memo[key]
    return found


@dataclass(frozen=True)
class Parts:
    """A period as whole months (``first`` … ``last``, or none) and day ranges."""

    first: dt.date | None
    last: dt.date | None
    days: tuple[Period, ...]

    def years(self) -> list[int]:
        """The calendar years the whole months cover from January to December."""
        if self.first is None or self.last is None:
            return []
        lo = self.first.year + (self.first.month != 1)
        hi = self.last.year - (self.last.month != 12)
        return list(range(lo, hi + 1))


@functools.lru_cache(maxsize=256)
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


# --- the cache ----------------------------------------------------------------------------------
def _sets_size(_key: object, sets: Sets) -> int:
    return 200 + sum(100 + b.__sizeof__() for b in sets.values())


# Decoded bitmaps by key. A key holds the stamps (people_stamp) of the days and months it was
# read from: a change to any of them makes a new key, so an entry is never stale, only unused
# until it ages out.
CACHE: SizedLRU[tuple[object, ...], Sets] = SizedLRU(CACHE_BYTES, _sets_size)
Unit = tuple[str, dt.date]  # ("day", a day) or ("month", a month's first day)


def people(
    conn: sa.Connection,
    period: Period,
    column: str,
    app: Spec = ANY,
    department: Spec = ANY,
) -> Sets:
    """The people of ``column`` ("active" or "launched") in the period per (app,
    department): ``ANY`` for the rows about all apps (all departments), ``EACH`` for one per
    app (department); the unknown department's key is "unknown", as in the reports. The sets
    are shared (the cache's and other callers'): frozen, never to be changed."""
    return memoized(
        (period, column, app, department),
        lambda: _people(conn, period, column, (column, app, department)),
    )


def _people(conn: sa.Connection, period: Period, column: str, what: tuple[str, Spec, Spec]) -> Sets:
    """Whole years from their union (kept per process), other whole months from their month
    bitmaps, the edges from their days' -- each decoded once per process and stamp."""
    p = parts(period)
    stamps = memoized(("stamps", period), lambda: _stamps(conn, p))
    db_key = conn.engine.url.render_as_string(hide_password=True)
    pieces: list[Sets] = []
    years: dict[int, tuple[tuple[object, ...], list[Unit]]] = {}
    units: list[Unit] = []
    in_years = set()
    for year in p.years():
        months = [("month", dt.date(year, m, 1)) for m in range(1, 13)]
        in_years.update(months)
        versions = tuple(stamps.get(u) for u in months)
        if not any(versions):
            continue
        year_key: tuple[object, ...] = (db_key, "year", year, versions, what)
        cached = CACHE.get(year_key)
        if cached is not None:
            pieces.append(cached)
        else:
            years[year] = (year_key, [u for u in months if u in stamps])
            units += years[year][1]
    units += [u for u in stamps if u not in in_years]
    loaded: dict[Unit, Sets] = {}
    missing = []
    for unit in units:
        cached = CACHE.get((db_key, *unit, stamps[unit], what))
        if cached is None:
            missing.append(unit)
        else:
            loaded[unit] = cached
    moved = set()  # units a writer changed since their stamps were read
    for unit, (version, sets) in _fetch(conn, missing, stamps, what).items():
        loaded[unit] = sets
        if version != stamps[unit]:
            moved.add(unit)
        if unit not in in_years:  # a year's months are kept as the year's union
            CACHE.put((db_key, *unit, version, what), sets)
    for year_key, months in years.values():
        union = _union([loaded[u] for u in months])
        if not moved.intersection(months):
            CACHE.put(year_key, union)
        pieces.append(union)
    pieces += [loaded[u] for u in units if u not in in_years]
    return _union(pieces)


def _union(pieces: list[Sets]) -> Sets:
    found: dict[tuple[str, str], list[AbstractBitMap]] = defaultdict(list)
    for sets in pieces:
        for key, bitmap in sets.items():
            found[key].append(bitmap)
    return {
        key: FrozenBitMap.union(*maps) if len(maps) > 1 else maps[0] for key, maps in found.items()
    }


def _stamps(conn: sa.Connection, p: Parts) -> dict[Unit, int]:
    """The stamps of the months and days ``p`` reads; a day (month) without one has no rows.
    Each row also carries person_counter's one row, for :class:`Counter` (on PostgreSQL a
    statement of its own was a round trip per report, up to half of the cell keys' cost)."""
    s, c = T_PEOPLE_STAMP, T_PERSON_COUNTER
    ranges = [sa.and_(s.c.kind == "day", s.c.at >= d.start, s.c.at <= d.end) for d in p.days]
    if p.first is not None:
        ranges.append(sa.and_(s.c.kind == "month", s.c.at >= p.first, s.c.at <= p.last))
    query = (
        sa.select(s.c.kind, s.c.at, s.c.version, c.c.next_number, c.c.epoch)
        .select_from(s.outerjoin(c, sa.true()))
        .where(sa.or_(*ranges))
    )
    out = {}
    counter = None
    for kind, at, version, limit, epoch in conn.execute(query):
        out[(kind, at)] = int(version)
        counter = (limit, epoch)  # the same on every row
    if counter is not None and counter[0] is not None:
        _COUNTER.set((conn, int(counter[0]), str(counter[1])))
    return out


def _fetch(
    conn: sa.Connection, units: list[Unit], stamps: dict[Unit, int], what: tuple[str, Spec, Spec]
) -> dict[Unit, tuple[int, Sets]]:
    """The bitmaps of ``units``, each with the stamp read in the same statement (a writer
    committing between the stamps' query and this one makes a newer stamp, not a stale
    entry). A stamped unit without rows here is empty."""
    column, app, department = what
    out: dict[Unit, tuple[int, Sets]] = {u: (stamps[u], {}) for u in units}
    s = T_PEOPLE_STAMP
    for kind, tbl in (("month", T_PEOPLE_MONTH), ("day", T_PEOPLE_DAY)):
        whens = sorted(at for k, at in units if k == kind)
        if not whens:
            continue
        when = tbl.c[kind]
        apps = tbl.c.app_id != ANY if app is EACH else tbl.c.app_id == app
        depts = tbl.c.department != ANY if department is EACH else tbl.c.department == department
        query = (
            sa.select(when, s.c.version, tbl.c.app_id, tbl.c.department, tbl.c[column])
            .join(s, sa.and_(s.c.kind == kind, s.c.at == when))
            .where(when.in_(whens), apps, depts)
        )
        for at, version, a, d, data in conn.execute(query):
            if not data:
                continue
            entry = out[(kind, at)]
            if entry[0] != version:
                entry = out[(kind, at)] = (int(version), {})
            entry[1][(a, d if d == ANY else d or UNKNOWN)] = FrozenBitMap.deserialize(bytes(data))
    return out


def union(sets: Iterable[AbstractBitMap]) -> AbstractBitMap:
    maps = list(sets)
    return FrozenBitMap.union(FrozenBitMap(), *maps) if maps else FrozenBitMap()


# --- cell keys --------------------------------------------------------------------------------
class Counter:
    """Counts of bitmaps with their cell keys, for one report's connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._keys: personkeys.Keys | None = None  # read on the first count
        memo = _SHARED.get()
        # within a page, the counts of the (shared, frozen) sets already counted, by identity;
        # the set is kept beside its count so that its id cannot be reused
        self._counted: dict[int, tuple[AbstractBitMap, Count]] = (
            memo.setdefault(("counted",), {}) if memo is not None else {}
        )

    def __call__(self, people: AbstractBitMap | None) -> Count:
        if not people:
            return 0, 0
        done = self._counted.get(id(people))
        if done is not None and done[0] is people:
            return done[1]
        keys = self._keys
        if keys is None:
            seen = _COUNTER.get()
            counter = seen[1:] if seen is not None and seen[0] is self._conn else None
            keys = self._keys = memoized(("planes",), lambda: personkeys.load(self._conn, counter))
        if people.max() >= keys.known:  # a number given since the counter was read
            keys = self._keys = personkeys.load(self._conn)
        count = len(people), personkeys.key_sum(keys, people)
        if isinstance(people, FrozenBitMap):
            self._counted[id(people)] = (people, count)
        return count

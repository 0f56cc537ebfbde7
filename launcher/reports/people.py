"""Who was active, as Roaring bitmaps: distinct users over any range at a cost that does not
grow with head count.

Every person gets a small *person number* on first sight (person_number; numbers are handed
out from person_counter, which only grows, so two writers never give the same number and a
purged number is never given again). Per day, app and department, people_day holds the
numbers of the people active then as a Roaring bitmap (pyroaring); people_month holds the
union of a month's days. A range of five years is then the union of about sixty month
bitmaps (kept per process as five year unions) and a few day bitmaps at its edges
(launcher/reports/distinct.py), whatever the number of people in them. Every write stamps the
days and months it touches (people_stamp, :func:`stamp`): the reports' cache trusts a stamp
that has not changed.

Rows: ``app_id`` "*" is any activity (``active``: signed in or launched, ``launched``), an
app id that app's launchers (``launched``; ``active`` stays empty); ``department`` "*" is
every department ("" is the unknown one), otherwise the department user_day (user_day_app
for an app) gives the person that day -- the greatest seen that day, so a later batch may
move a person from one department's bitmap of a day to another's; the month's bitmap of the
old department is then
recomputed from its days. Bitmaps are sets, so adding a person twice changes nothing and
the result does not depend on the order in which batches arrive.

:func:`apply` runs inside the event writer's flush transaction (launcher/reports/rollups.py),
:func:`rebuild` inside ``launcher db rebuild-rollups`` and :func:`purge` with the raw-event
purge (launcher/reports/rebuild.py).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from pyroaring import BitMap

from launcher import db
from launcher.dates import month_of
from launcher.models import (
    PeopleDay,
    PeopleMonth,
    PeopleStamp,
    PersonCounter,
    PersonNumber,
    table,
)
from launcher.reports import cellkey

T_PERSON_NUMBER = table(PersonNumber)
T_PERSON_COUNTER = table(PersonCounter)
T_PEOPLE_DAY = table(PeopleDay)
T_PEOPLE_MONTH = table(PeopleMonth)
T_PEOPLE_STAMP = table(PeopleStamp)
PEOPLE_TABLES = (T_PEOPLE_DAY, T_PEOPLE_MONTH)
# app_id of the rows about any activity, department of the rows about everyone ("" is the
# unknown department; app and department ids never hold "*": launcher/registry/schema.py)
ANY = "*"

# (table, day or month, app_id, department)
Key = tuple[sa.Table, dt.date, str, str]


def to_bytes(bitmap: BitMap) -> bytes:
    """One serialization per set, whatever the operations that made it (a container of runs
    and one of single values may take the same room: which one a bitmap has then depends on
    its history), so that a rebuild writes the very bytes the flushes wrote."""
    canonical = BitMap(bitmap.to_array())
    canonical.run_optimize()
    return bytes(canonical.serialize())


def from_bytes(data: bytes | None) -> BitMap:
    return BitMap.deserialize(bytes(data)) if data else BitMap()


# --- numbers --------------------------------------------------------------------------------
def _reserve(conn: sa.Connection, count: int) -> int:
    """Reserve ``count`` numbers; returns the first. One UPDATE of the counter row, which a
    concurrent writer waits for (PostgreSQL's row lock, SQLite's one writer): two writers
    never get the same numbers, even outside the flush lock."""
    ph = db.placeholder(conn)
    conn.exec_driver_sql(
        f"INSERT INTO person_counter (id, next_number, epoch) VALUES (1, 0, {ph}) "
        "ON CONFLICT (id) DO NOTHING",
        (secrets.token_hex(8),),
    )
    after = conn.exec_driver_sql(
        f"UPDATE person_counter SET next_number = next_number + {ph} WHERE id = 1 "
        "RETURNING next_number",
        (count,),
    ).scalar_one()
    return int(after) - count


def numbers(conn: sa.Connection, users: Iterable[str]) -> dict[str, int]:
    """The person number of each user, giving one to those seen for the first time. A user
    that a concurrent writer numbered first keeps that writer's number (ON CONFLICT DO
    NOTHING, then read back); the number reserved here stays unused."""
    wanted = sorted(set(users))
    found = _lookup(conn, wanted)
    new = [u for u in wanted if u not in found]
    if new:
        first = _reserve(conn, len(new))
        db.insert_rows(
            conn,
            "INSERT INTO person_number (user_id, number, person_key)",
            [(u, first + i, cellkey.person_key(u)) for i, u in enumerate(new)],
            "ON CONFLICT (user_id) DO NOTHING",
        )
        found.update(_lookup(conn, new))
    return found


def _lookup(conn: sa.Connection, users: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    ph = db.placeholder(conn)
    for start in range(0, len(users), 500):
        chunk = users[start : start + 500]
        rows = db.execute(
            conn,
            "SELECT user_id, number FROM person_number "
            f"WHERE user_id IN ({', '.join([ph] * len(chunk))})",
            chunk,
        )
        found.update({u: int(n) for u, n in rows})
    return found


# --- upkeep per flush -----------------------------------------------------------------------
class Changes:
    """What a batch adds to (and, for a department move, takes from) the bitmaps."""

    def __init__(self) -> None:
        self.add: dict[Key, tuple[set[int], set[int]]] = defaultdict(lambda: (set(), set()))
        self.remove: dict[Key, set[int]] = defaultdict(set)  # day rows only
        self.recheck: set[Key] = set()  # month rows to recompute from their days

    def person(
        self, day: dt.date, app: str, number: int, dept: str, launched: bool, old: str | None
    ) -> None:
        """``number`` is active on ``day`` (in ``app``, or any), in ``dept`` from now on;
        ``old``: the department it had that day before this batch, if any."""
        month = month_of(day)
        for tbl, when in ((T_PEOPLE_DAY, day), (T_PEOPLE_MONTH, month)):
            for d in (ANY, dept):
                active, launchers = self.add[(tbl, when, app, d)]
                if app == ANY:
                    active.add(number)
                if launched:
                    launchers.add(number)
        if old is not None and old != dept:
            self.remove[(T_PEOPLE_DAY, day, app, old)].add(number)
            self.recheck.add((T_PEOPLE_MONTH, month, app, old))


def write(conn: sa.Connection, changes: Changes) -> None:
    """Apply ``changes``: read the bitmaps they touch, change them, write them back; then
    recompute the month bitmaps of departments someone left."""
    keys = set(changes.add) | set(changes.remove)
    for tbl in PEOPLE_TABLES:
        mine = [k for k in keys if k[0] is tbl]
        current = _read(conn, tbl, mine)
        rows, gone = [], []
        for key in mine:
            active, launched = current.get(key, (BitMap(), BitMap()))
            add_active, add_launched = changes.add.get(key, ((), ()))
            active.update(add_active)
            launched.update(add_launched)
            dropped = changes.remove.get(key)
            if dropped:
                active.difference_update(BitMap(dropped))
                launched.difference_update(BitMap(dropped))
            if active or launched:
                rows.append((key, active, launched))
            elif key in current:
                gone.append(key)
        _upsert(conn, tbl, rows)
        _delete(conn, tbl, gone)
    for key in changes.recheck:
        _recompute_month(conn, key)


def _when(tbl: sa.Table) -> str:
    return "day" if tbl is T_PEOPLE_DAY else "month"


def _read(
    conn: sa.Connection, tbl: sa.Table, keys: Sequence[Key]
) -> dict[Key, tuple[BitMap, BitMap]]:
    """The bitmaps of ``keys`` that exist (a join with the keys, one primary-key probe each,
    as rollups._existing)."""
    found: dict[Key, tuple[BitMap, BitMap]] = {}
    when = _when(tbl)
    ph = db.placeholder(conn)
    row = f"({ph}, {ph}, {ph})"
    by_db = {(k[1].isoformat(), k[2], k[3]): k for k in keys}
    wanted = list(keys)
    for start in range(0, len(wanted), 300):
        chunk = wanted[start : start + 300]
        sql = (
            f"WITH k (w, a, d) AS (VALUES {', '.join([row] * len(chunk))}) "
            f"SELECT t.{when}, t.app_id, t.department, t.active, t.launched FROM k "
            f"JOIN {tbl.name} t ON t.{when} = k.w AND t.app_id = k.a AND t.department = k.d"
        )
        params = tuple(v for k in chunk for v in (_param(conn, k[1]), k[2], k[3]))
        for w, a, d, active, launched in db.execute(conn, sql, params):
            key = by_db[(str(w)[:10], a, d)]
            found[key] = (from_bytes(active), from_bytes(launched))
    return found


def _upsert(conn: sa.Connection, tbl: sa.Table, rows: list[tuple[Key, BitMap, BitMap]]) -> None:
    when = _when(tbl)
    stamp(conn, tbl, {k[1] for k, _, _ in rows})
    values = [
        (_param(conn, k[1]), k[2], k[3], to_bytes(active), to_bytes(launched))
        for k, active, launched in rows
    ]
    # a few hundred kilobytes per statement at most: the bitmaps of a large month are big
    for start in range(0, len(values), 50):
        db.insert_rows(
            conn,
            f"INSERT INTO {tbl.name} ({when}, app_id, department, active, launched)",
            values[start : start + 50],
            f"ON CONFLICT ({when}, app_id, department) DO UPDATE SET "
            "active = excluded.active, launched = excluded.launched",
        )


def stamp(conn: sa.Connection, tbl: sa.Table, whens: Iterable[dt.date]) -> None:
    """A new version for the days (months) of ``tbl`` whose rows this transaction writes or
    deletes: every writer of people_day and people_month calls it (the bitmaps' cache in
    launcher/reports/distinct.py trusts a stamp that has not changed, and reads no rows of
    a day without one)."""
    kind, version = _when(tbl), secrets.randbits(62)
    db.insert_rows(
        conn,
        "INSERT INTO people_stamp (kind, at, version)",
        [(kind, _param(conn, w), version) for w in sorted(set(whens))],
        "ON CONFLICT (kind, at) DO UPDATE SET version = excluded.version",
    )


def _unstamp(
    conn: sa.Connection, tbl: sa.Table, before: dt.date | None, after: dt.date | None
) -> None:
    """Stamps of days (months) whose rows are all deleted (``< before`` or ``>= after``)."""
    s = T_PEOPLE_STAMP
    where = [s.c.kind == _when(tbl)]
    if before is not None:
        where.append(s.c.at < before)
    if after is not None:
        where.append(s.c.at >= after)
    conn.execute(sa.delete(s).where(*where))


def _param(conn: sa.Connection, day: dt.date) -> Any:
    return day.isoformat() if conn.dialect.name == "sqlite" else day


def _delete(conn: sa.Connection, tbl: sa.Table, keys: list[Key]) -> None:
    when = tbl.c[_when(tbl)]
    if keys:
        stamp(conn, tbl, {k[1] for k in keys})
    for key in keys:
        conn.execute(
            sa.delete(tbl).where(when == key[1], tbl.c.app_id == key[2], tbl.c.department == key[3])
        )


def _recompute_month(conn: sa.Connection, key: Key) -> None:
    """A month's bitmap of (app, department) as the union of its days' (rare: a department
    that someone left within a day)."""
    _, month, app, dept = key
    d = T_PEOPLE_DAY
    rows = conn.execute(
        sa.select(d.c.active, d.c.launched).where(
            d.c.day >= month,
            d.c.day < month_of(month + dt.timedelta(days=32)),
            d.c.app_id == app,
            d.c.department == dept,
        )
    ).all()
    active = BitMap.union(BitMap(), *(from_bytes(r.active) for r in rows))
    launched = BitMap.union(BitMap(), *(from_bytes(r.launched) for r in rows))
    if active or launched:
        _upsert(conn, T_PEOPLE_MONTH, [(key, active, launched)])
    else:
        _delete(conn, T_PEOPLE_MONTH, [key])


# --- rebuild and purge ----------------------------------------------------------------------
def rebuild(conn: sa.Connection, start: dt.date) -> None:
    """The bitmaps of days from ``start`` on (a month's first day), from user_day and
    user_day_app as ``launcher db rebuild-rollups`` just rebuilt them. People keep their
    numbers; people without one get one, in order of their first day. Per (day, app,
    department) the database lists the numbers; bitmaps are built here and the months are
    unions of their days."""
    sqlite = conn.dialect.name == "sqlite"
    when = _param(conn, start)
    start = month_of(start)
    for tbl in PEOPLE_TABLES:
        col = tbl.c[_when(tbl)]
        conn.execute(sa.delete(tbl).where(col >= start))
        _unstamp(conn, tbl, None, start)  # the rows written below stamp their days again
    new = conn.exec_driver_sql(
        f"""SELECT user_id FROM user_day d WHERE day >= {db.placeholder(conn)}
            AND NOT EXISTS (SELECT 1 FROM person_number p WHERE p.user_id = d.user_id)
            GROUP BY user_id ORDER BY MIN(day), user_id""",
        (when,),
    ).scalars()
    numbers(conn, list(new))
    agg = "group_concat(p.number)" if sqlite else "string_agg(CAST(p.number AS text), ',')"
    ph = db.placeholder(conn)
    queries = (
        # (app, department): any activity, and launchers
        f"""SELECT u.day, '{ANY}', u.department, {agg},
                {agg.replace("p.number", "CASE WHEN u.launches > 0 THEN p.number END")}
            FROM user_day u JOIN person_number p ON p.user_id = u.user_id
            WHERE u.day >= {ph} AND u.day < {ph} GROUP BY u.day, u.department""",
        f"""SELECT u.day, u.app_id, u.department, '', {agg}
            FROM user_day_app u JOIN person_number p ON p.user_id = u.user_id
            WHERE u.day >= {ph} AND u.day < {ph} GROUP BY u.day, u.app_id, u.department""",
    )
    user_day = sa.table("user_day", sa.column("day"))  # rollups.py imports this module
    newest = conn.execute(sa.select(sa.func.max(user_day.c.day))).scalar()
    if newest is None:
        return
    newest = dt.date.fromisoformat(newest) if isinstance(newest, str) else newest
    month = start
    while month <= newest:  # a month at a time: memory for one month's bitmaps only
        after = month_of(month + dt.timedelta(days=32))
        by_day: dict[dt.date, dict[tuple[str, str], list[BitMap]]] = defaultdict(dict)
        for sql in queries:
            span = (_param(conn, month), _param(conn, after))
            for day, app, dept, active, launched in conn.exec_driver_sql(sql, span):
                rows = by_day[dt.date.fromisoformat(day) if isinstance(day, str) else day]
                bitmaps = [_parse(active), _parse(launched)]
                for d in (ANY, dept):
                    if (app, d) in rows:
                        rows[(app, d)][0] |= bitmaps[0]
                        rows[(app, d)][1] |= bitmaps[1]
                    else:
                        rows[(app, d)] = [bitmaps[0].copy(), bitmaps[1].copy()]
        whole: dict[tuple[str, str], list[BitMap]] = {}
        for day, rows in sorted(by_day.items()):
            for key, (active, launched) in rows.items():
                into = whole.setdefault(key, [BitMap(), BitMap()])
                into[0] |= active
                into[1] |= launched
            _upsert(
                conn,
                T_PEOPLE_DAY,
                [((T_PEOPLE_DAY, day, a, d), *_pair(b)) for (a, d), b in rows.items()],
            )
        _upsert(
            conn,
            T_PEOPLE_MONTH,
            [((T_PEOPLE_MONTH, month, a, d), *_pair(b)) for (a, d), b in whole.items()],
        )
        month = after


def _pair(bitmaps: list[BitMap]) -> tuple[BitMap, BitMap]:
    return bitmaps[0], bitmaps[1]


def _parse(numbers_text: str | None) -> BitMap:
    if not numbers_text:
        return BitMap()
    return BitMap(map(int, numbers_text.split(",")))


def purge(conn: sa.Connection, month: dt.date) -> None:
    """Per-person data goes with the raw events (docs/PRIVACY.md): the bitmaps of days and
    months before ``month``, and the numbers of people no longer in any bitmap kept (every
    member of one has a user_day row, which rebuild.purge_people has purged to the same
    month). The counter is not reset: a purged number is never given to someone else."""
    conn.execute(sa.delete(T_PEOPLE_DAY).where(T_PEOPLE_DAY.c.day < month))
    conn.execute(sa.delete(T_PEOPLE_MONTH).where(T_PEOPLE_MONTH.c.month < month))
    for tbl in PEOPLE_TABLES:
        _unstamp(conn, tbl, month, None)
    p = T_PERSON_NUMBER
    ud = sa.table("user_day", sa.column("user_id"))
    conn.execute(sa.delete(p).where(~sa.exists().where(ud.c.user_id == p.c.user_id)))

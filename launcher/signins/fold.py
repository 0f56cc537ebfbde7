"""SQLite: an import's new rows folded into the gateway rollups in Python, while they are moved.

What :func:`launcher.signins.rollups.fold` does set-based, summed here instead: SQLite sorts a
GROUP BY in memory, so it could fold only slices, each upserting every person's month again
(bench/README.md). :class:`Sums` takes the rows as each chunk's move returns them (the
stored values: department, via_portal) and holds the signin_day rows, user months and person
months they add up to; whenever they hold ``keys`` rows (a few hundred bytes each) they are
written out, sorted, one ``executemany`` per table. Upserts add counts and keys and OR masks,
so a key written out twice sums up the same.

:class:`Behind` sums in a thread of its own, a chunk behind the moves: the move of the next
chunk runs in SQLite's C code without the interpreter lock, so the sums cost the import little
wall time, and only their last write-out is left for after the last chunk. That is exact only
because nothing else changes the file's rows before the fold: on SQLite the import holds the
database's one write lock from its start, so the launches and sign-ins its second phase looks
for cannot have been written (launcher/signins/importer.py checks it).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from launcher.reports import cellkey

# ts, app_id, provider_app, user_id, department, via_portal, provider, record_id
COLUMNS = "ts, app_id, provider_app, user_id, department, via_portal, provider, record_id"


class Sums:
    """The rollup rows that imported rows add up to, until :meth:`write` writes them out."""

    def __init__(self) -> None:
        self.day: dict[tuple[str, str, str, str], list[int]] = {}  # signins, via, their keys
        self.user: dict[tuple[str, str, str, str], list[Any]] = {}  # dept, n, via, days, via_days
        self.person: dict[tuple[str, str], list[Any]] = {}  # dept, days, via_days
        # one string object per day, month, app, person, department: not one per key
        self.days: dict[str, str] = {}
        self.months: dict[str, str] = {}  # by day
        self.strings: dict[str, str] = {}

    @property
    def held(self) -> int:
        return len(self.day) + len(self.user) + len(self.person)

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Add imported rows (:data:`COLUMNS`, times as SQLite stores them)."""
        imported_key = cellkey.imported_key
        day, user, person = self.day, self.user, self.person
        days, months, strings = self.days, self.months, self.strings
        for ts, app, provider_app, uid, dept, via, provider, record_id in rows:
            rk = imported_key(uid, provider, record_id)
            app = strings.setdefault(app, app)
            provider_app = strings.setdefault(provider_app, provider_app)
            uid = strings.setdefault(uid, uid)
            dept = strings.setdefault(dept, dept)
            d = ts[:10]
            m = months.get(d)  # one string per day and month, not one per key
            if m is None:
                d = days[d] = d
                m = months[d] = ts[:7] + "-01"
            else:
                d = days[d]
            bit = 1 << (int(ts[8:10]) - 1)
            c = day.get((d, app, provider_app, dept))
            if c is None:
                c = day[d, app, provider_app, dept] = [0, 0, 0, 0]
            c[0] += 1
            c[2] += rk
            u = user.get((m, app, provider_app, uid))
            if u is None:
                u = user[m, app, provider_app, uid] = [dept, 0, 0, 0, 0]
            elif dept > u[0]:
                u[0] = dept
            u[1] += 1
            u[3] |= bit
            p = None
            if app:
                p = person.get((m, uid))
                if p is None:
                    p = person[m, uid] = [dept, 0, 0]
                elif dept > p[0]:
                    p[0] = dept
                p[1] |= bit
            if via:
                c[1] += 1
                c[3] += rk
                u[2] += 1
                u[4] |= bit
                if p is not None:
                    p[2] |= bit

    def write(self, conn: sa.Connection) -> None:
        """Upsert what is held into the rollups, sorted (so the month tables' B-trees are
        filled in order, which the reports then read), and forget it."""
        raw: Any = conn.connection.driver_connection
        M = cellkey.MOD
        person_key = cellkey.person_key_cached
        raw.executemany(
            """INSERT INTO signin_day (day, app_id, provider_app, department, signins,
            via_portal, signins_key, via_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (day, app_id, provider_app, department) DO UPDATE SET
            signins = signin_day.signins + excluded.signins,
            via_portal = signin_day.via_portal + excluded.via_portal,
            signins_key = (signin_day.signins_key + excluded.signins_key) % """
            + str(M)
            + """, via_key = (signin_day.via_key + excluded.via_key) % """
            + str(M),
            ((*k, n, v, nk % M, vk % M) for k, (n, v, nk, vk) in sorted(self.day.items())),
        )
        raw.executemany(
            """INSERT INTO signin_user_month (month, app_id, provider_app, user_id,
            department, signins, via_portal, days, via_days, person_key)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (month, app_id, provider_app, user_id) DO UPDATE SET
            department = excluded.department,
            signins = signin_user_month.signins + excluded.signins,
            via_portal = signin_user_month.via_portal + excluded.via_portal,
            days = signin_user_month.days | excluded.days,
            via_days = signin_user_month.via_days | excluded.via_days""",
            ((*k, *v, person_key(k[3])) for k, v in sorted(self.user.items())),
        )
        raw.executemany(
            """INSERT INTO signin_person_month (month, user_id, department, days, via_days,
            person_key) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (month, user_id) DO UPDATE SET department = excluded.department,
            days = signin_person_month.days | excluded.days,
            via_days = signin_person_month.via_days | excluded.via_days""",
            ((*k, *v, person_key(k[1])) for k, v in sorted(self.person.items())),
        )
        for held in (self.day, self.user, self.person, self.days, self.months, self.strings):
            held.clear()


class Behind:
    """:class:`Sums` of the rows handed to :meth:`add`, summed in a thread of its own;
    :meth:`write` writes them out (on the caller's connection, in the caller's thread) when
    ``keys`` are held, :meth:`finish` at the end. ``depth`` chunks at most wait to be summed."""

    def __init__(self, conn: sa.Connection, keys: int, depth: int = 2) -> None:
        self.conn = conn
        self.keys = keys
        self.sums = Sums()
        self.queue: queue.Queue[Sequence[Sequence[Any]] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="signin-fold", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (rows := self.queue.get()) is not None:
            try:
                if self.error is None:
                    self.sums.add(rows)
            except BaseException as exc:  # noqa: BLE001 (raised in the importer's thread)
                self.error = exc
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Sum ``rows`` behind; write out what is held first when it is ``keys`` or more."""
        if self.sums.held >= self.keys:
            self._caught_up()
            self.sums.write(self.conn)
        self.queue.put(rows)

    def finish(self) -> None:
        """Sum what is left and write it all out; the thread ends."""
        self._caught_up()
        self.sums.write(self.conn)
        self.close()

    def close(self) -> None:
        """End the thread (sums not written are dropped: the import has failed)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def _caught_up(self) -> None:
        self.queue.join()
        if self.error is not None:
            raise self.error

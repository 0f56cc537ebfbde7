"""Importing sign-in logs: :func:`import_files`, the one entry point (the command line and a
scheduled job both call it).

Each file is one transaction: it is read, checked, pseudonymised and stored whole, or refused
whole (:class:`~launcher.signins.record.ImportRefused`, naming the file, the record number and
the field) with nothing stored from it. The raw user id is turned into the portal's pseudonym
(the keyed hash of issuer and id that sign-in gives the same person, see
launcher/auth/user.py) as soon as a record is read; it is never stored, logged or printed.
Reading (decoding, checking, pseudonymising, making rows) runs in a process of its own
(launcher/signins/reading.py), on the other core than the writing, a chunk ahead of it.

Idempotent: ``(provider, record_id)`` is unique, and a row that is there already is left out
(``ON CONFLICT DO NOTHING``; ``OR IGNORE`` on SQLite), so a record seen before (the same file
twice, overlapping exports) is stored once.
Imports exclude each other (SQLite: one writer; PostgreSQL: an advisory lock), so two imports
at once count each record once too, one after the other.

Two phases in the file's transaction, so that a large file holds up the launch writer only for
the second: (1) rows go in chunk by chunk (launcher/signins/stage.py), each with its
department and its match with the launches stored so far, set-based; (2) under the rollup
lock, the launches written meanwhile are matched too, the departments checked again, and the
new rows folded into the rollups (set-based on PostgreSQL, in one pass summed in Python on
SQLite). On SQLite the whole import holds the database's one write lock (launch batches
wait, or are spooled and written afterwards, see launcher/events/).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from launcher import db
from launcher.errors import ConfigError
from launcher.reports.rollups import ROLLUP_LOCK
from launcher.settings import Settings
from launcher.signins import chunks, join, reading, rollups
from launcher.signins.chunks import FORMATS
from launcher.signins.stage import Stage

IMPORT_LOCK = 0x4C53494D  # PostgreSQL advisory lock id held by an import ("LSIM")
# PostgreSQL: new rows folded into the rollups per statement. It sorts within work_mem, and
# a larger slice folds each person's month once instead of once a slice: at 20,000 the fold
# was a third of a PostgreSQL import's server time (bench/README.md)
FOLD_ROWS = {"postgresql": 500_000}
# SQLite: the new rows are aggregated in Python (rollups.fold_new: SQLite sorts a GROUP BY in
# memory, so it could fold only slices); rollup rows held before they are written out, about
# 300 bytes each
FOLD_KEYS = 50_000
SQLITE_WAIT_MS = 10 * 60 * 1000  # an import waits this long for another import on SQLite
# SQLite's page cache is most of an import's memory, and what makes its inserts fast (the
# indexes of imported_signin take records in random order); SQLite goes past it for a while
# now and then (tens of MB). 32 MiB keeps a 2 GB import under 200 MB resident
# (bench/bench_import.py --memory, bench/README.md)
SQLITE_CACHE_KB = 32 * 1024
SQLITE_TEMP_CACHE_KB = 8 * 1024

Progress = Callable[[Path, int, int, int], None]  # file, records read, bytes read, file size


@dataclass
class Summary:
    """What an import did, for its one line of output."""

    files: int = 0
    read: int = 0
    new: int = 0
    already: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unregistered: Counter[str] = field(default_factory=Counter)  # provider app -> sign-ins
    dry_run: bool = False
    reader_kb: int = 0  # the reading process's peak resident memory (the largest of the files')

    def __str__(self) -> str:
        skipped = sum(self.skipped.values())
        why = ", ".join(f"{n:,} {reason}" for reason, n in sorted(self.skipped.items()))
        apps = sorted(self.unregistered, key=lambda a: (-self.unregistered[a], a))
        names = ", ".join(apps[:5]) + (", …" if len(apps) > 5 else "")
        return (
            ("dry run, nothing stored: " if self.dry_run else "")
            + f"{self.files} file{'s' * (self.files != 1)}, {self.read:,} records read: "
            + f"{self.new:,} {'would be new' if self.dry_run else 'new'}, "
            + f"{self.already:,} already there, {skipped:,} skipped"
            + (f" ({why})" if why else "")
            + f", {len(apps)} unregistered app{'s' * (len(apps) != 1)}"
            + (f" ({names})" if names else "")
        )

    def add(self, other: Summary) -> None:
        for f in dataclasses.fields(self):
            if f.name == "reader_kb":
                self.reader_kb = max(self.reader_kb, other.reader_kb)
            elif f.name != "dry_run":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def import_files(
    engine: sa.Engine,
    settings: Settings | None,
    mapping: Mapping[str, str],
    fmt: str,
    paths: Sequence[Path],
    dry_run: bool = False,
    progress: Progress | None = None,
    *,
    pseudonym: tuple[bytes, str] | None = None,
    retained_from: dt.datetime | None = None,
) -> Summary:
    """Import sign-in log files of format ``fmt`` (entra, keycloak, okta); ``mapping`` maps
    the provider's app ids to registry app ids (the registry's ``signin_ids``). User ids are
    pseudonymised with the settings' key and issuer, as at sign-in; ``pseudonym`` (key,
    issuer) stands in for them where the people were not made by sign-in (the demo's).

    Files are imported one by one, each in its own transaction; the first refused file stops
    the import with :class:`ImportRefused` (the files before it are stored). Sign-ins before
    ``retained_from`` (where the purge has cut: ``rebuild.purge_cutoff``) are skipped: their
    months keep only counts (docs/PRIVACY.md), which a late import must not add people to."""
    module = FORMATS.get(fmt)
    if module is None:
        raise ConfigError(f"unknown sign-in log format {fmt!r}: use one of {', '.join(FORMATS)}")
    if pseudonym is None:
        if settings is None or not settings.oidc_issuer:
            raise ConfigError(
                "LAUNCHER_OIDC_ISSUER is not set: imported user ids are pseudonymised with the "
                "issuer, as at sign-in"
            )
        pseudonym = (settings.pseudonym_secret(), settings.oidc_issuer)
    total = Summary(dry_run=dry_run)
    # the reading process's rows: as SQLite stores them, as COPY text for PostgreSQL, and
    # for a dry run (which only looks up the record ids) as tuples
    form = chunks.ROWS if dry_run else chunks.SQLITE if db.is_sqlite(engine) else chunks.COPY
    for path in paths:
        on_progress = None
        if progress is not None:
            size = path.stat().st_size if path.exists() else 0
            on_progress = functools.partial(_progress, progress, path, size)
        with reading.Reading(
            module.NAME, path, pseudonym, mapping, form, on_progress, retained_from
        ) as rows:
            summary = _check(engine, fmt, rows) if dry_run else _store(engine, fmt, rows)
            summary.files, summary.read = 1, rows.read
            summary.skipped.update(rows.skipped)
            summary.unregistered.update(rows.unregistered)
            summary.reader_kb = rows.peak_kb
        total.add(summary)
    return total


def _progress(progress: Progress, path: Path, size: int, read: int, done: int) -> None:
    progress(path, read, done, size)


def _store(engine: sa.Engine, provider: str, rows: reading.Reading) -> Summary:
    summary = Summary()
    with engine.connect() as conn:
        sqlite = db.is_sqlite(engine)
        if sqlite:
            # one writer at a time: wait for another import rather than fail after 3 s
            conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_WAIT_MS}")
            # bounded memory (see SQLITE_CACHE_KB); the temporary database (the staged chunk,
            # the rollups' GROUP BY sorts) is in memory, and a few MB of cache do for it
            conn.exec_driver_sql(f"PRAGMA main.cache_size=-{SQLITE_CACHE_KB}")
            conn.exec_driver_sql(f"PRAGMA temp.cache_size=-{SQLITE_TEMP_CACHE_KB}")
            conn.commit()
            conn = conn.execution_options(sqlite_immediate=True)
        try:
            with conn.begin():
                if not sqlite:
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (IMPORT_LOCK,))
                _write(conn, provider, rows, summary)
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA busy_timeout=3000")  # as db.make_engine sets it
                conn.exec_driver_sql("PRAGMA main.cache_size=-65536")  # as db.make_engine
                conn.exec_driver_sql("PRAGMA temp.cache_size=-65536")
                conn.commit()
    return summary


def _max_id(conn: sa.Connection, table: str) -> int:
    return int(conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one())


def _write(conn: sa.Connection, provider: str, rows: reading.Reading, summary: Summary) -> None:
    # imports exclude each other, so this import's rows are exactly those above these ids
    fresh_above = _max_id(conn, "imported_signin")
    launches_above = _max_id(conn, "launch_event")
    signins_above = _max_id(conn, "signin_event")
    stage = Stage(conn, provider)
    for chunk in rows.chunks():
        new = stage.store(chunk)
        summary.new += new
        summary.already += chunk.size - new

    # phase 2: hold off the launch writer while the new rows meet what it wrote meanwhile
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK,))
    late = conn.execute(
        sa.text(
            "SELECT ts, app_id, user_id, department FROM launch_event WHERE id > :id ORDER BY id"
        ),
        {"id": launches_above},
    ).all()
    late_signins = conn.execute(
        sa.text("SELECT user_id, department FROM signin_event WHERE id > :id"),
        {"id": signins_above},
    ).all()
    bounds = conn.exec_driver_sql(
        "SELECT (SELECT MIN(ts) FROM imported_signin), (SELECT MAX(ts) FROM imported_signin)"
    ).one()
    if late and bounds[0] is not None:
        launched = [_Launch(join.from_db_time(r[0]), r[1], r[2], r[3]) for r in late]
        imported = (join.from_db_time(bounds[0]), join.from_db_time(bounds[1]))
        join.match_launches(conn, launched, imported, fresh_above=fresh_above)
    if late or late_signins:
        people = [_Launch(dt.datetime.now(dt.UTC), "", r[2], r[3]) for r in late]
        people += [_Launch(dt.datetime.now(dt.UTC), "", r[0], r[1]) for r in late_signins]
        join.sync_departments(conn, people, [], fresh_above=fresh_above)
        # the rows went in with the departments of before: those of the people the launch
        # writer saw meanwhile may have changed (nobody else's can have)
        join.correct_departments(
            conn,
            "id > :above AND user_id IN (SELECT user_id FROM launch_event WHERE id > :l "
            "UNION SELECT user_id FROM signin_event WHERE id > :s)",
            {"above": fresh_above, "l": launches_above, "s": signins_above},
        )
    # the rollups' upserts add, so slices (PostgreSQL) and write-outs (SQLite) sum up the same
    last = _max_id(conn, "imported_signin")
    if conn.dialect.name == "sqlite":
        # SQLite sorts a GROUP BY in memory (temp_store): a 2 GB file's rows at once would
        # cost hundreds of MB, slices upsert each person's month once per slice
        rollups.fold_new(conn, fresh_above, FOLD_KEYS)
    else:
        step = FOLD_ROWS[conn.dialect.name]
        for lo in range(fresh_above, last, step):
            join.fold(conn, "id > :lo AND id <= :hi", {"lo": lo, "hi": lo + step})
    if last > fresh_above:  # then the months the file touched into the span rows
        lo, hi = conn.exec_driver_sql(
            f"SELECT MIN(ts), MAX(ts) FROM imported_signin WHERE id > {fresh_above}"
        ).one()
        join.spans(conn, join.from_db_time(lo).date(), join.from_db_time(hi).date())


@dataclass(frozen=True, slots=True)
class _Launch:
    ts: dt.datetime
    app_id: str
    user_id: str
    department: str | None


def _check(engine: sa.Engine, provider: str, rows: reading.Reading) -> Summary:
    """A dry run: read and check everything, count what is new; write nothing."""
    summary = Summary(dry_run=True)
    with engine.connect() as conn:
        p = join.ph(conn)
        for chunk in rows.chunks():
            ids = sorted({r[0] for r in chunk.rows})
            known = 0
            for part in join.chunks(ids):
                known += conn.exec_driver_sql(
                    f"SELECT COUNT(*) FROM imported_signin WHERE provider = {p} "
                    f"AND record_id IN ({', '.join([p] * len(part))})",
                    (provider, *part),
                ).scalar_one()
            summary.already += known
            summary.new += chunk.size - known
    return summary

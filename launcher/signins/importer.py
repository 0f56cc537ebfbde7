"""Importing sign-in logs: :func:`import_files`, the one entry point (the command line and a
scheduled job both call it).

Each file is one transaction: it is read, checked, pseudonymised and stored whole, or refused
whole (:class:`~launcher.signins.record.ImportRefused`, naming the file, the record number and
the field) with nothing stored from it. The raw user id is turned into the portal's pseudonym
(the keyed hash of issuer and id that sign-in gives the same person, see
launcher/auth/user.py) as soon as a record is read; it is never stored, logged or printed.

Idempotent: ``(provider, record_id)`` is unique, and rows go in with ``ON CONFLICT DO
NOTHING``, so a record seen before (the same file twice, overlapping exports) is stored once.
Imports exclude each other (SQLite: one writer; PostgreSQL: an advisory lock), so two imports
at once count each record once too, one after the other.

Two phases in the file's transaction, so that a large file holds up the launch writer only for
the second: (1) rows go in, each with its department and its match with the launches stored
so far; (2) under the rollup lock, the launches written meanwhile are matched too, the
departments checked again, and the new rows folded into the rollups in a few set-based
statements. On SQLite the whole import holds the database's one write lock (launch batches
wait, or are spooled and written afterwards, see launcher/events/).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa

from launcher import db
from launcher.errors import ConfigError
from launcher.reports.rollups import ROLLUP_LOCK
from launcher.settings import Settings
from launcher.signins import entra, join, keycloak, okta, reader
from launcher.signins.record import FieldError, ImportRefused, Record

FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (entra, keycloak, okta)}
IMPORT_LOCK = 0x4C53494D  # PostgreSQL advisory lock id held by an import ("LSIM")
CHUNK = 5000  # records per INSERT (or COPY)
FOLD_ROWS = 50_000  # new rows folded into the rollups per statement
MAX_ID = 128
SQLITE_WAIT_MS = 10 * 60 * 1000  # an import waits this long for another import on SQLite

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
            if f.name != "dry_run":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True, slots=True)
class _Row:
    record_id: str
    ts: dt.datetime
    user_id: str  # the pseudonym
    app_id: str  # "" when unregistered
    provider_app_id: str
    provider_app: str  # the provider's name, for an unregistered app only


def import_files(
    engine: sa.Engine,
    settings: Settings,
    mapping: Mapping[str, str],
    fmt: str,
    paths: Sequence[Path],
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Import sign-in log files of format ``fmt`` (entra, keycloak, okta); ``mapping`` maps
    the provider's app ids to registry app ids (the registry's ``signin_ids``).

    Files are imported one by one, each in its own transaction; the first refused file stops
    the import with :class:`ImportRefused` (the files before it are stored)."""
    module = FORMATS.get(fmt)
    if module is None:
        raise ConfigError(f"unknown sign-in log format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not settings.oidc_issuer:
        raise ConfigError(
            "LAUNCHER_OIDC_ISSUER is not set: imported user ids are pseudonymised with the "
            "issuer, as at sign-in"
        )
    key = hmac.new(settings.pseudonym_secret(), digestmod=hashlib.sha256)
    key.update(f"{settings.oidc_issuer}\0".encode())
    total = Summary(dry_run=dry_run)
    for path in paths:
        rows = _rows(module, path, key, mapping, progress)
        summary = _check(engine, fmt, rows) if dry_run else _store(engine, fmt, rows)
        total.add(summary)
    return total


def _pseudonym(key: Any, subject: str) -> str:
    """launcher.auth.user.pseudonym (a test holds them equal), with the issuer hashed in
    once: copying the HMAC state saves a third of the work per record."""
    h = key.copy()
    h.update(subject.encode())
    return str(h.hexdigest()[:32])


class _Rows:
    """The file's records as rows to store, counting what it reads and skips."""

    def __init__(self, summary: Summary, rows: Iterator[_Row]) -> None:
        self.summary = summary
        self.rows = rows


def _rows(
    module: ModuleType,
    path: Path,
    key: Any,
    mapping: Mapping[str, str],
    progress: Progress | None,
) -> _Rows:
    summary = Summary(files=1)
    size = path.stat().st_size if path.exists() else 0

    def block(position: int) -> None:
        if progress is not None:
            progress(path, summary.read, position, size)

    def generate() -> Iterator[_Row]:
        n = 0
        try:
            for n, obj in reader.records(path, block):  # noqa: B007 (n: in the error)
                record: Record = module.parse(obj)
                summary.read += 1
                if record.skip is not None:
                    summary.skipped[record.skip] += 1
                    continue
                yield _row(record, key, mapping, summary)
        except reader.ReadError as exc:
            raise ImportRefused(f"{path}: {exc}") from None
        except FieldError as exc:
            raise ImportRefused(f"{path}: record {n}: field {exc}") from None
        except OSError as exc:
            raise ImportRefused(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if progress is not None:
            progress(path, n, size, size)

    return _Rows(summary, generate())


def _row(record: Record, key: Any, mapping: Mapping[str, str], summary: Summary) -> _Row:
    user = _pseudonym(key, record.user)
    if len(record.app) > MAX_ID:
        raise FieldError("app id", f"is longer than {MAX_ID} characters")
    app_id = mapping.get(record.app, "")
    name = ""
    if not app_id:
        name = (record.app_name.strip() or record.app)[:200]
        summary.unregistered[name] += 1
    record_id = record.record_id
    if record_id is None:  # Keycloak without event ids: the event's own fields, keyed
        raw = f"{user}\0{record.ts.isoformat()}\0{record.app}"
        record_id = hashlib.sha256(raw.encode()).hexdigest()[:32]
    elif len(record_id) > MAX_ID:
        raise FieldError("id", f"is longer than {MAX_ID} characters")
    return _Row(record_id, record.ts, user, app_id, record.app, name)


def _batches(rows: _Rows) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows.rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _store(engine: sa.Engine, provider: str, rows: _Rows) -> Summary:
    summary = rows.summary
    with engine.connect() as conn:
        sqlite = db.is_sqlite(engine)
        if sqlite:
            # one writer at a time: wait for another import rather than fail after 3 s
            conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_WAIT_MS}")
            conn.commit()
            conn = conn.execution_options(sqlite_immediate=True)
        try:
            with conn.begin():
                if not sqlite:
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (IMPORT_LOCK,))
                _write(conn, provider, rows)
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA busy_timeout=3000")  # as db.make_engine sets it
                conn.commit()
    return summary


def _max_id(conn: sa.Connection, table: str) -> int:
    return int(conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {table}").scalar_one())


def _write(conn: sa.Connection, provider: str, rows: _Rows) -> None:
    summary = rows.summary
    # imports exclude each other, so this import's rows are exactly those above these ids
    fresh_above = _max_id(conn, "imported_signin")
    launches_above = _max_id(conn, "launch_event")
    signins_above = _max_id(conn, "signin_event")
    launches = join.launch_range(conn)
    departments: dict[str, str] = {}
    p = join.ph(conn)
    head = (
        "INSERT INTO imported_signin (provider, record_id, ts, user_id, app_id, "
        "provider_app_id, provider_app, department, via_portal)"
    )
    for batch in _batches(rows):
        unknown = {r.user_id for r in batch} - departments.keys()
        if unknown:
            found = join.departments_of(conn, unknown)
            departments.update((u, found.get(u, "")) for u in unknown)
        matched = join.match_signins(conn, [(r.user_id, r.app_id, r.ts) for r in batch], launches)
        values = [
            (
                provider,
                r.record_id,
                join.db_time(conn, r.ts),
                r.user_id,
                r.app_id,
                r.provider_app_id,
                r.provider_app,
                departments[r.user_id],
                int(i in matched),
            )
            for i, r in enumerate(batch)
        ]
        if conn.dialect.name == "postgresql":
            new = _copy_in(conn, head, values)
        else:
            row = "(" + ", ".join([p] * 9) + ")"
            new = 0
            for part in join.chunks(values, 3000):  # SQLite takes 32,766 parameters at most
                new += conn.exec_driver_sql(
                    f"{head} VALUES {', '.join([row] * len(part))} "
                    "ON CONFLICT (provider, record_id) DO NOTHING",
                    tuple(v for r in part for v in r),
                ).rowcount
        summary.new += new
        summary.already += len(batch) - new

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
    params = {"above": fresh_above}
    join.correct_departments(conn, "id > :above", params)
    # in slices: SQLite sorts a GROUP BY in memory (temp_store), and a 2 GB file's rows at
    # once would cost hundreds of MB; the rollups' upserts add, so slices sum up the same
    last = _max_id(conn, "imported_signin")
    for lo in range(fresh_above, last, FOLD_ROWS):
        join.fold(conn, "id > :lo AND id <= :hi", {"lo": lo, "hi": lo + FOLD_ROWS})


def _copy_in(conn: sa.Connection, head: str, values: list[tuple[Any, ...]]) -> int:
    """PostgreSQL: COPY the rows into a staging table, then insert those not there yet --
    several times faster than a multi-row INSERT of the same rows. Returns the rows added."""
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS imported_signin_stage "
        "(LIKE imported_signin INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    conn.exec_driver_sql("TRUNCATE imported_signin_stage")
    driver = conn.connection.driver_connection
    assert driver is not None
    columns = head.removeprefix("INSERT INTO imported_signin ")
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY imported_signin_stage {columns} FROM STDIN") as copy,
    ):
        for row in values:
            copy.write_row(row)
    result = conn.exec_driver_sql(
        f"{head} SELECT {columns.strip('()')} FROM imported_signin_stage "
        "ON CONFLICT (provider, record_id) DO NOTHING"
    )
    return int(result.rowcount)


@dataclass(frozen=True, slots=True)
class _Launch:
    ts: dt.datetime
    app_id: str
    user_id: str
    department: str | None


def _check(engine: sa.Engine, provider: str, rows: _Rows) -> Summary:
    """A dry run: read and check everything, count what is new; write nothing."""
    summary = rows.summary
    with engine.connect() as conn:
        p = join.ph(conn)
        for batch in _batches(rows):
            ids = sorted({r.record_id for r in batch})
            known = 0
            for chunk in join.chunks(ids):
                known += conn.exec_driver_sql(
                    f"SELECT COUNT(*) FROM imported_signin WHERE provider = {p} "
                    f"AND record_id IN ({', '.join([p] * len(chunk))})",
                    (provider, *chunk),
                ).scalar_one()
            summary.already += known
            summary.new += len(batch) - known
    return summary

"""A sign-in file's records as chunks of rows to store: read, checked, pseudonymised, in the
form the database takes them (the reading process makes them, launcher/signins/reading.py).

Each record is checked (its time within the logs' years, its ids not too long) and its raw
user id pseudonymised at once (the keyed hash of issuer and id that sign-in gives the same
person, see launcher/auth/user.py); a refusal names the file, the record and the field
(:class:`~launcher.signins.record.ImportRefused`). Rows go in chunks of :data:`CHUNK`: on
SQLite as the stored tuples with the join window's edges (launcher/signins/window.py), on
PostgreSQL as COPY text, or as tuples for a dry run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, cast

from launcher.signins import entra, keycloak, okta, reader
from launcher.signins.record import (
    AHEAD,
    EARLIEST,
    PAST_RETENTION,
    FieldError,
    ImportRefused,
    Record,
)
from launcher.signins.window import Window

FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (entra, keycloak, okta)}
CHUNK = 5000  # rows staged and moved into imported_signin at a time (a few MB)
MAX_ID = 128
MAX_CACHED_USERS = 50_000  # pseudonyms kept while reading a file (a few MB), then forgotten
# One row to store: record id, time (as the database stores it, see join.db_time), pseudonym,
# registry app id ("" when unregistered), the provider's app id, the provider's app name (for
# an unregistered app only); on SQLite then the first and last time of a launch that makes it
# a sign-in through the portal (the window of launcher/signins/join.py, as stored). Plain
# tuples: nothing per record outlives its chunk.
Row = tuple[str, object, str, str, str, str] | tuple[str, str, str, str, str, str, str, str]
# What the reading process makes: the stored rows' form of SQLite, of PostgreSQL as tuples
# (a dry run there), of PostgreSQL as COPY text
SQLITE, ROWS, COPY = "sqlite", "rows", "copy"


class Chunk(NamedTuple):
    """Rows to store: ``rows`` (SQLite, a dry run) or ``copy`` (PostgreSQL: the rows as
    COPY's text, tab-separated lines), ``size`` of them, and on PostgreSQL the ``first`` and
    ``last`` time of a sign-in in the chunk."""

    rows: list[Row]
    copy: bytes
    size: int
    first: dt.datetime | None = None
    last: dt.datetime | None = None


class Counts:
    """What reading a file counted: records read, skipped (by reason), unregistered apps."""

    def __init__(self) -> None:
        self.read = 0
        self.skipped: Counter[str] = Counter()
        self.unregistered: Counter[str] = Counter()  # provider app name -> sign-ins


def chunks(
    module: ModuleType,
    path: Path,
    key: Any,
    mapping: Mapping[str, str],
    form: str,
    counts: Counts,
    progress: Callable[[int, int], None] | None,
    retained_from: dt.datetime | None,
) -> Iterator[list[Row]]:
    """The file's records as rows to store, in chunks, counting what it reads and skips."""
    size = path.stat().st_size if path.exists() else 0

    def block(position: int) -> None:
        if progress is not None:
            progress(counts.read, position)

    n = 0
    chunk: list[Row] = []
    skipped = counts.skipped
    users: dict[str, str] = {}  # raw id -> pseudonym: people sign in many times
    window = Window() if form == SQLITE else None
    latest = dt.datetime.now(dt.UTC) + AHEAD
    first = max(EARLIEST, retained_from or EARLIEST)
    try:
        for n, obj in reader.records(path, block):  # noqa: B007 (n: in the error)
            record: Record = module.parse(obj)
            if record.skip is not None:
                skipped[record.skip] += 1
                continue
            if not EARLIEST <= record.ts <= latest:
                raise FieldError(module.TIME_FIELD, _out_of_range(record.ts, latest))
            if record.ts < first:
                skipped[PAST_RETENTION] += 1
                continue
            chunk.append(_row(record, key, mapping, counts, window, users))
            if len(chunk) >= CHUNK:
                if len(users) > MAX_CACHED_USERS:
                    users.clear()
                counts.read = n
                yield chunk
                chunk = []
    except reader.ReadError as exc:
        raise ImportRefused(f"{path}: {exc}") from None
    except FieldError as exc:
        raise ImportRefused(f"{path}: record {n}: field {exc}") from None
    except OSError as exc:
        raise ImportRefused(f"{path}: cannot be read ({exc.strerror or exc})") from None
    counts.read = n
    if chunk:
        yield chunk
    if progress is not None:
        progress(n, size)


def _out_of_range(ts: dt.datetime, latest: dt.datetime) -> str:
    return (
        f"is {ts.date().isoformat()}: a sign-in must be from {EARLIEST.date().isoformat()} "
        f"up to {latest.date().isoformat()} "
        "(a broken export, or a clock far off)"
    )


def pseudonym(key: Any, subject: str) -> str:
    """launcher.auth.user.pseudonym (a test holds them equal), with the issuer hashed in
    once: copying the HMAC state saves a third of the work per record."""
    h = key.copy()
    h.update(subject.encode())
    return str(h.hexdigest()[:32])


def _row(
    record: Record,
    key: Any,
    mapping: Mapping[str, str],
    counts: Counts,
    window: Window | None,
    users: dict[str, str],
) -> Row:
    user = users.get(record.user)
    if user is None:
        user = users[record.user] = pseudonym(key, record.user)
    app = record.app
    if len(app) > MAX_ID:
        raise FieldError("app id", f"is longer than {MAX_ID} characters")
    app_id = mapping.get(app, "")
    name = ""
    if not app_id:
        name = (record.app_name.strip() or app)[:200]
        counts.unregistered[name] += 1
    record_id = record.record_id
    ts = record.ts  # UTC (record.py)
    if record_id is None:  # Keycloak without event ids: the event's own fields, keyed
        raw = f"{user}\0{ts.isoformat()}\0{app}"
        record_id = hashlib.sha256(raw.encode()).hexdigest()[:32]
    elif len(record_id) > MAX_ID:
        raise FieldError("id", f"is longer than {MAX_ID} characters")
    if window is None:
        return (record_id, ts, user, app_id, app, name)
    # SQLite: the text form of join.db_time, without its checks (ts is UTC already); and the
    # edges of the join's window in the same form, computed here rather than by SQLite's
    # strftime() in the writing, the import's bound (bench/README.md)
    text = ts.isoformat(" ", "microseconds")[:26]  # ts is within EARLIEST ... (no "+00:00")
    return (record_id, text, user, app_id, app, name, *window.edges(ts, text))


def chunk(rows: list[Row], form: str) -> Chunk:
    """The chunk of ``rows`` in ``form`` (:data:`SQLITE`, :data:`ROWS`, :data:`COPY`). Only
    PostgreSQL's move reads the chunk's first and last time (launcher/signins/stage.py); a
    dry run looks up the record ids alone."""
    if form != COPY:
        return Chunk(rows, b"", len(rows))
    times = [cast(dt.datetime, row[1]) for row in rows]
    return Chunk([], copy_text(rows), len(rows), min(times), max(times))


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: list[Row]) -> bytes:
    """PostgreSQL's rows as COPY's text format: a line per row, its fields separated by tabs,
    a backslash, tab, newline or carriage return in a field escaped. Fields hardly ever hold
    one (ids and app names), so the chunk is joined whole and checked once; only a chunk with
    one is escaped field by field."""
    pg = cast(list[tuple[str, dt.datetime, str, str, str, str]], rows)
    text = "".join([f"{r[0]}\t{r[1].isoformat()}\t{r[2]}\t{r[3]}\t{r[4]}\t{r[5]}\n" for r in pg])
    if (
        "\\" in text
        or "\r" in text
        or text.count("\t") != 5 * len(rows)
        or text.count("\n") != len(rows)
    ):
        text = "".join(
            [
                "\t".join(
                    [
                        (f.isoformat() if isinstance(f, dt.datetime) else str(f)).translate(
                            _ESCAPES
                        )
                        for f in r
                    ]
                )
                + "\n"
                for r in rows
            ]
        )
    return text.encode()

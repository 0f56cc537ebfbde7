"""The reading process: a sign-in file read, checked, pseudonymised and made into rows in a
process of its own, on another core than the database's writes (launcher/signins/importer.py).

Reading is most of an import's Python (decoding, the format module, pseudonyms, rows); in a
thread of the importer it shared one interpreter lock with the writing, so an import used one
core. The reading process sends the importer chunks of rows ready to store, through a pipe that
holds about one chunk, so memory stays bounded whatever the file's size:

- on PostgreSQL, the rows as COPY's text (the importer copies the bytes as they come);
- on SQLite and for a dry run, the rows themselves (pickled: strings and tuples, cheap to
  rebuild);

then what it counted (records read, skipped, unregistered apps) and its peak memory. A refused
file ends it with the same message, naming the file, the record and the field, that the
importer raises as :class:`~launcher.signins.record.ImportRefused`; any other error is raised
in the importer as it was in the reading process.

The raw user id is pseudonymised in the reading process as soon as a record is read: nothing
it sends holds one. The pseudonyms' key goes to it through its stdin, never on a command line
or in the environment. The process is started by the same interpreter with the importer's
module path, this package first (``-I``: the environment and current directory cannot put
another ``launcher`` or ``orjson`` in its way), imports neither SQLAlchemy nor
the database code (a few MB, some tens of milliseconds), ignores Ctrl-C (the importer stops
it, and a traceback from it would only repeat the importer's), and ends when the importer
closes it or goes away (its next write fails).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import IO, Any, NamedTuple, cast

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
ENDING_S = 10  # seconds the reading process has to exit once it has sent everything
PIPE_SIZE = 1 << 20  # bytes: a chunk and more (Linux's most for a user, /proc/sys/fs/pipe-max-size)
_HEADER = struct.Struct("<I")  # each message: its length, then its pickle

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


class Reading:
    """A file being read by the reading process: :meth:`chunks`, then the counts
    (``read``, ``skipped``, ``unregistered``) and the process's peak resident memory in KB
    (``peak_kb``). A context manager: leaving it stops the process if it still runs."""

    def __init__(
        self,
        fmt: str,
        path: Path,
        pseudonym: tuple[bytes, str],
        mapping: Mapping[str, str],
        form: str,
        progress: Callable[[int, int], None] | None = None,
        retained_from: dt.datetime | None = None,
    ) -> None:
        self.path = path
        self.progress = progress  # records read, bytes read
        self.read = 0
        self.skipped: Counter[str] = Counter()
        self.unregistered: Counter[str] = Counter()
        self.peak_kb = 0
        self._ahead: Generator[Chunk, None, None] | None = None
        self._ended = False  # it has sent everything, and is exiting
        # the importer's module path, this package's directory first: the reading process
        # imports what the importer would (dependencies installed on PYTHONPATH included)
        root = str(Path(__file__).resolve().parent.parent.parent)  # where launcher/ is
        paths = json.dumps([root, *(p for p in sys.path if p)])
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, this package)
            [sys.executable, "-I", "-c", _START, paths],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdout: IO[bytes] = self.process.stdout
        with contextlib.suppress(OSError, AttributeError):  # Linux only, and within its limit
            # a pipe that holds a whole chunk (64 KiB by default): the reading process makes
            # the next chunk and sends it while this one is stored, instead of waiting
            fcntl.fcntl(self.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        job = (fmt, str(path), pseudonym, dict(mapping), form, retained_from, progress is not None)
        try:
            with self.process.stdin as stdin:
                stdin.write(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
        except BrokenPipeError:
            pass  # it ended at once: _receive says why

    def chunks(self) -> Iterator[Chunk]:
        """The file's chunks as the reading process sends them; then the counts are set. A
        thread of this process receives them a chunk or two ahead (it waits on the pipe while
        the database works, holding no lock)."""
        self._ahead = reader.ahead(self._receive_all())
        return self._ahead

    def _receive_all(self) -> Iterator[Chunk]:
        while True:
            message = self._receive()
            kind = message[0]
            if kind == "chunk":
                self.read = message[2]
                yield message[1]
            elif kind == "progress":
                assert self.progress is not None
                self.progress(message[1], message[2])
            elif kind == "end":
                _, self.read, skipped, unregistered, self.peak_kb = message
                self.skipped.update(skipped)
                self.unregistered.update(unregistered)
                self._ended = True
                return
            elif kind == "refused":
                raise ImportRefused(message[1])
            else:  # "error": what the reading process could not foresee, raised here
                raise message[1]

    def _receive(self) -> tuple[Any, ...]:
        header = self.stdout.read(_HEADER.size)
        data = self.stdout.read(_HEADER.unpack(header)[0]) if len(header) == _HEADER.size else b""
        if not data:
            code = self.process.wait()
            raise RuntimeError(f"the reading process of {self.path} ended (exit code {code})")
        message: tuple[Any, ...] = pickle.loads(data)  # noqa: S301 (our own child's)
        return message

    def close(self) -> None:
        """Stop the reading process if it still runs, wait for it (no zombie), and then for
        the thread receiving from it."""
        try:
            self.process.wait(timeout=ENDING_S if self._ended else 0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._ahead is not None:
            self._ahead.close()  # its thread has seen the end of the pipe by now
        self.stdout.close()

    def __enter__(self) -> Reading:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# The reading process's start: the importer's module path, whatever the environment and the
# current directory hold (-I leaves both out)
_START = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from launcher.signins import reading; reading.main()"
)


def main() -> None:
    """The reading process: the job from stdin, messages to stdout (see :class:`Reading`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not mix with the messages

    def send(*message: object) -> None:
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        out.write(_HEADER.pack(len(data)))
        out.write(data)
        out.flush()

    try:
        try:
            _serve(send)
        except ImportRefused as exc:
            send("refused", exc.message)
        except Exception as exc:  # noqa: BLE001 (handed to the importer, raised there)
            try:
                send("error", exc)
            except (pickle.PicklingError, TypeError, AttributeError):
                send("error", RuntimeError(f"{type(exc).__name__}: {exc}"))
        out.close()
    except BrokenPipeError:  # the importer has gone: nobody to tell
        os._exit(0)  # without flushing a pipe nobody reads (an error at exit)


def _serve(send: Callable[..., None]) -> None:
    job = pickle.load(sys.stdin.buffer)  # noqa: S301 (from the importer that started us)
    fmt, path, (secret, issuer), mapping, form, retained_from, progress = job
    key = hmac.new(secret, digestmod=hashlib.sha256)
    key.update(f"{issuer}\0".encode())
    counts = _Counts()
    on_progress = (lambda read, done: send("progress", read, done)) if progress else None
    for rows in _rows(
        FORMATS[fmt], Path(path), key, mapping, form, counts, on_progress, retained_from
    ):
        send("chunk", _chunk(rows, form), counts.read)
    send("end", counts.read, counts.skipped, counts.unregistered, _peak_kb())


class _Counts:
    def __init__(self) -> None:
        self.read = 0
        self.skipped: Counter[str] = Counter()
        self.unregistered: Counter[str] = Counter()  # provider app name -> sign-ins


def _rows(
    module: ModuleType,
    path: Path,
    key: Any,
    mapping: Mapping[str, str],
    form: str,
    counts: _Counts,
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


def _pseudonym(key: Any, subject: str) -> str:
    """launcher.auth.user.pseudonym (a test holds them equal), with the issuer hashed in
    once: copying the HMAC state saves a third of the work per record."""
    h = key.copy()
    h.update(subject.encode())
    return str(h.hexdigest()[:32])


def _row(
    record: Record,
    key: Any,
    mapping: Mapping[str, str],
    counts: _Counts,
    window: Window | None,
    users: dict[str, str],
) -> Row:
    user = users.get(record.user)
    if user is None:
        user = users[record.user] = _pseudonym(key, record.user)
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


def _chunk(rows: list[Row], form: str) -> Chunk:
    if form == SQLITE:
        return Chunk(rows, b"", len(rows))
    times = [cast(dt.datetime, row[1]) for row in rows]
    first, last = min(times), max(times)
    if form == ROWS:
        return Chunk(rows, b"", len(rows), first, last)
    return Chunk([], copy_text(rows), len(rows), first, last)


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


def _peak_kb() -> int:
    """This process's peak resident memory (VmHWM), 0 where /proc has none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

"""The database side of the event store: batches of launches and sign-ins become rows.

:class:`BatchWriter` writes one batch in one transaction -- the raw events, the rollups (the
``on_flush`` hook) and the batch's id -- or, when the database does not take it, spools it to
a JSON-lines file (fsynced) that :meth:`BatchWriter.replay_spool` writes later. The batch id
makes every write idempotent: a batch that was committed and then spooled as well (a writer
killed between its commit and its acknowledgement, a replay interrupted before it removed its
file) is written once.

:func:`run_writer` is the event writer process (see launcher/launches.py for why a process):
it reads batches from a pipe, writes them, acknowledges each, and replays the spool.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import pickle
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import db, logs

log = logging.getLogger(__name__)

FLUSH_LOCK = 0x4C41554E  # PostgreSQL advisory lock id held while a batch is written ("LAUN")
BATCH_ID_DAYS = 7  # how long written batch ids are kept to recognise a batch written twice
PRUNE_EVERY = 60 * 60.0  # seconds between prunes of old batch ids
MIN_REPLAY_INTERVAL = 0.1  # seconds: the writer's shortest wait between looks at the spool
REPLAY_BUDGET = 0.2  # seconds of replay between looks at the pipe
STATEMENT_TIMEOUT = 10  # seconds: PostgreSQL gives up a statement of a batch write after this

# A batch as the portal buffers it: plain tuples, which pickle at C speed (dataclasses with
# datetimes cost 75 times more), with the time as a POSIX timestamp.
LaunchRow = tuple[float, str, str, str | None, str]  # ts, app_id, user_id, department, source
SignInRow = tuple[float, str, str | None]  # ts, user_id, department


@dataclass(frozen=True, slots=True)
class Launch:
    ts: dt.datetime
    app_id: str
    user_id: str
    department: str | None
    source: str


@dataclass(frozen=True, slots=True)
class SignIn:
    ts: dt.datetime
    user_id: str
    department: str | None


Event = Launch | SignIn
# Called inside the batch's transaction, so derived tables stay in step with the raw events.
FlushHook = Callable[[sa.Connection, Sequence[Launch], Sequence[SignIn], ZoneInfo], None]


def launches_of(rows: Sequence[LaunchRow]) -> list[Launch]:
    return [Launch(dt.datetime.fromtimestamp(r[0], dt.UTC), *r[1:]) for r in rows]


def signins_of(rows: Sequence[SignInRow]) -> list[SignIn]:
    return [SignIn(dt.datetime.fromtimestamp(r[0], dt.UTC), *r[1:]) for r in rows]


def _db_time(conn: sa.Connection, value: dt.datetime) -> object:
    """A timestamp as the driver stores it. SQLite: the text form SQLAlchemy's DateTime uses
    there, so that both compare alike."""
    if conn.dialect.name != "sqlite":
        return value
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")  # faster than strftime


def insert_events(
    conn: sa.Connection, launches: Sequence[Launch], signins: Sequence[SignIn]
) -> None:
    """Bulk insert straight through the driver: SQLAlchemy's per-row parameter processing
    costs more than the database's own work, and this runs for every flushed batch."""
    db.insert_rows(
        conn,
        "INSERT INTO launch_event (ts, app_id, user_id, department, source)",
        [(_db_time(conn, e.ts), e.app_id, e.user_id, e.department, e.source) for e in launches],
    )
    db.insert_rows(
        conn,
        "INSERT INTO signin_event (ts, user_id, department)",
        [(_db_time(conn, e.ts), e.user_id, e.department) for e in signins],
    )


# --- the spool ------------------------------------------------------------------------------
# One file per batch, named after the batch id: events-<batch id>.jsonl, one event per line.
_COLUMNS = {cls: tuple(f.name for f in fields(cls)) for cls in (Launch, SignIn)}


def _encode(event: Event) -> str:
    data: dict[str, Any] = {name: getattr(event, name) for name in _COLUMNS[type(event)]}
    data["ts"] = event.ts.isoformat()
    data["type"] = "launch" if isinstance(event, Launch) else "signin"
    return json.dumps(data, separators=(",", ":"))


def _decode(line: str) -> Event:
    data: dict[str, Any] = json.loads(line)
    kind = data.pop("type")
    data["ts"] = dt.datetime.fromisoformat(data["ts"])
    return Launch(**data) if kind == "launch" else SignIn(**data)


# A spool file that cannot be decoded, or whose rows the database refuses (not merely: is down).
_DAMAGED = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    sa.exc.IntegrityError,
    sa.exc.DataError,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    return True


def new_batch_prefix() -> str:
    """A prefix unique to one event store: its batch ids are ``<prefix>-<sequence number>``."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class BatchWriter:
    """Writes batches (or spools them), replays the spool. Used from one thread at a time."""

    def __init__(self, engine: sa.Engine, spool_dir: Path, on_flush: FlushHook | None) -> None:
        self.engine = engine
        self.spool_dir = spool_dir
        self.on_flush = on_flush
        self.database_ok = True
        self.spool_left = False  # replay_spool stopped at its time budget
        self._pruned = 0.0

    def write(
        self,
        batch_id: str,
        launches: Sequence[Launch],
        signins: Sequence[SignIn],
        tz: ZoneInfo,
    ) -> int:
        """Write a batch in one transaction; 0 when its id shows it was written before."""
        # serialized: the flush hook reads and then updates rollups (see reports/rollups.py)
        with db.serialized_write(self.engine, FLUSH_LOCK) as conn:
            if conn.dialect.name == "postgresql":
                # a server that stalls must not hold the writer (and the batches behind it):
                # a batch takes milliseconds; after this long it is spooled instead
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}s'")
            ph = "?" if conn.dialect.name == "sqlite" else "%s"
            new = conn.exec_driver_sql(
                f"INSERT INTO event_batch (batch_id, written_at) VALUES ({ph}, {ph}) "  # noqa: S608
                "ON CONFLICT DO NOTHING",
                (batch_id, _db_time(conn, dt.datetime.now(dt.UTC))),
            ).rowcount
            if not new:
                log.info("batch %s was written before; not writing it again", batch_id)
                return 0
            insert_events(conn, launches, signins)
            if self.on_flush is not None:
                self.on_flush(conn, launches, signins, tz)
        return len(launches) + len(signins)

    def write_or_spool(
        self,
        batch_id: str,
        launches: Sequence[Launch],
        signins: Sequence[SignIn],
        tz: ZoneInfo,
    ) -> tuple[int, int]:
        """Write the batch, or spool it if that fails for any reason: (written, spooled).

        While the database is known to be down, batches go straight to the spool: trying each
        one would cost a connect or lock timeout apiece, and the writer would fall behind. The
        spool replay finds out when the database is back. A spool that cannot take the batch
        sends it to the database after all: there may be no spool file for a replay to try.
        """
        if not self.database_ok:
            try:
                self.spool(batch_id, launches, signins)
                return 0, len(launches) + len(signins)
            except OSError:
                log.exception("cannot spool to %s; trying the database", self.spool_dir)
        try:
            written = self.write(batch_id, launches, signins, tz)
        except Exception as exc:  # any failure, not just the database's: the batch is kept
            if isinstance(exc, sa.exc.SQLAlchemyError):
                if self.database_ok:
                    log.error(
                        "database unavailable, spooling events to %s: %s", self.spool_dir, exc
                    )
                self.database_ok = False
            else:
                log.exception("writing events failed; spooling them to %s", self.spool_dir)
            self.spool(batch_id, launches, signins)  # an OSError here is the caller's
            return 0, len(launches) + len(signins)
        self._back_up()
        return written, 0

    def _back_up(self) -> None:
        if not self.database_ok:
            log.info("database is back; writing events again")
        self.database_ok = True

    def spool(self, batch_id: str, launches: Sequence[Launch], signins: Sequence[SignIn]) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        name = f"events-{batch_id}.jsonl"
        tmp = self.spool_dir / (name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            events: list[Event] = [*launches, *signins]
            fh.write("\n".join(_encode(e) for e in events) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(self.spool_dir / name)  # atomic: a replay never sees half a file
        self._sync_dir()  # the rename itself survives a power cut

    def _sync_dir(self) -> None:
        if not hasattr(os, "O_DIRECTORY"):
            return  # not on this platform (Windows)
        fd = os.open(self.spool_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _reclaim_orphans(self) -> None:
        """Files claimed by a writer that died mid-replay go back in the queue."""
        for claimed in self.spool_dir.glob("events-*.jsonl.claimed-*"):
            pid = claimed.name.rsplit("-", 1)[1]
            if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):  # another writer may reclaim it first
                claimed.rename(claimed.with_name(claimed.name.rsplit(".claimed-", 1)[0]))
                log.warning("reclaimed spool file %s from a writer that died", claimed.name)

    def replay_spool(self, tz: ZoneInfo, budget: float | None = None) -> int:
        """Write spooled batches; each file is claimed by rename so two writers never share one.

        With a ``budget`` (seconds), stop after the file that exceeds it and set
        ``spool_left``: the writer process reads its pipe between rounds.
        """
        self.spool_left = False
        if not self.spool_dir.is_dir():
            return 0
        self._reclaim_orphans()
        replayed = 0
        started = time.monotonic()
        for path in sorted(self.spool_dir.glob("events-*.jsonl")):
            if budget is not None and time.monotonic() - started > budget:
                self.spool_left = True
                break
            claimed = path.with_name(path.name + f".claimed-{os.getpid()}")
            try:
                path.rename(claimed)
            except OSError:
                continue  # another writer took it
            batch_id = path.name.removeprefix("events-").removesuffix(".jsonl")
            try:
                events = [_decode(line) for line in claimed.read_text("utf-8").splitlines() if line]
                launches = [e for e in events if isinstance(e, Launch)]
                signins = [e for e in events if isinstance(e, SignIn)]
                replayed += self.write(batch_id, launches, signins, tz)
            except _DAMAGED as exc:  # retrying would never help, and would block every later file
                log.error("spool file %s is damaged (%s); kept as .bad for inspection", path, exc)
                claimed.rename(path.with_suffix(".bad"))
                continue
            except sa.exc.SQLAlchemyError:
                claimed.rename(path)  # still down; try again later
                self.database_ok = False
                return replayed
            except BaseException:  # unexpected: put the file back for the next round
                with contextlib.suppress(OSError):
                    claimed.rename(path)
                raise
            claimed.unlink()
            self._back_up()
        if replayed:
            log.info("replayed %d spooled events", replayed)
        return replayed

    def prune_batch_ids(self) -> None:
        """Forget batch ids older than BATCH_ID_DAYS, at most once per PRUNE_EVERY seconds. A
        batch is written twice within seconds, when at all: a week is ample."""
        if time.monotonic() - self._pruned < PRUNE_EVERY and self._pruned:
            return
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=BATCH_ID_DAYS)
        try:
            with self.engine.begin() as conn:
                ph = "?" if conn.dialect.name == "sqlite" else "%s"
                conn.exec_driver_sql(
                    f"DELETE FROM event_batch WHERE written_at < {ph}",  # noqa: S608
                    (_db_time(conn, cutoff),),
                )
        except sa.exc.SQLAlchemyError as exc:  # harmless to leave for the next try
            log.warning("could not prune old event batch ids: %s", exc)
            return
        self._pruned = time.monotonic()


# --- the writer process ---------------------------------------------------------------------
# Messages, pickled: to the writer ("batch", id, tz, [LaunchRow], [SignInRow]) and ("close",);
# from it ("done", id, written, spooled, database_ok), ("kept", id, database_ok) when it could
# neither write nor spool the batch (the portal keeps it), and ("replayed", n, database_ok).


def send(conn: Connection, message: tuple[Any, ...]) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Connection) -> tuple[Any, ...]:
    # Only ever the other end of a pipe between the portal and the writer it started (as
    # multiprocessing itself does): nothing else can write to it.
    message: tuple[Any, ...] = pickle.loads(conn.recv_bytes())  # noqa: S301
    return message


def run_writer(
    conn: Connection,
    database_url: str,
    spool_dir: Path,
    on_flush: FlushHook | None,
    tz: ZoneInfo,
    retry_interval: float,
) -> None:
    """The event writer process: write what arrives on ``conn`` until "close" or end of file."""
    # The portal decides when the writer stops (after its last batch): a Ctrl-C or a SIGTERM
    # sent to the whole process group must not end it first.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if not logging.getLogger().handlers:  # a spawned process: the portal's LAUNCHER_LOG_FORMAT
        logs.configure_from_environment()
    engine = db.make_engine(database_url)
    writer = BatchWriter(engine, spool_dir, on_flush)
    next_replay = 0.0
    try:
        while True:
            if conn.poll(max(0.0, next_replay - time.monotonic())):
                try:
                    message = receive(conn)
                except EOFError:
                    return  # the portal is gone
                if message[0] == "close":
                    return
                _, batch_id, tz, launch_rows, signin_rows = message
                try:
                    written, spooled = writer.write_or_spool(
                        batch_id, launches_of(launch_rows), signins_of(signin_rows), tz
                    )
                except OSError:
                    log.exception(
                        "cannot spool to %s either; the portal keeps the events", spool_dir
                    )
                    send(conn, ("kept", batch_id, writer.database_ok))
                    continue
                send(conn, ("done", batch_id, written, spooled, writer.database_ok))
            if time.monotonic() >= next_replay:
                next_replay = time.monotonic() + max(retry_interval, MIN_REPLAY_INTERVAL)
                try:
                    replayed = writer.replay_spool(tz, budget=REPLAY_BUDGET)
                except Exception:  # the writer must survive anything; the files stay
                    log.exception("replaying the event spool failed")
                    continue
                if writer.spool_left:
                    next_replay = 0.0  # more after a look at the pipe
                if writer.database_ok:
                    writer.prune_batch_ids()
                if replayed or not writer.database_ok:
                    send(conn, ("replayed", replayed, writer.database_ok))
    except (BrokenPipeError, ConnectionResetError):
        return  # the portal is gone; everything acknowledged is written or spooled
    finally:
        engine.dispose()

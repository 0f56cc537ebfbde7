"""The database side of the pipeline: a batch becomes rows, or a spool file, exactly once.

:class:`BatchWriter` writes one batch in one transaction -- the raw events, the rollups (the
``on_flush`` hook) and the batch's id -- or, when the database does not take it, puts it in the
spool (launcher/events/spool.py), and replays the spool later. The batch id makes every write
idempotent: a batch that was committed and then spooled as well (a writer killed between its
commit and its acknowledgement, a replay interrupted before it removed its file) is written once.

:func:`run_writer` is the event writer process (see launcher/events/__init__.py for why a
process): it reads batches from a pipe, writes them, acknowledges each, and replays the spool.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import db, logs, personal
from launcher.events.protocol import (
    CLOSE,
    DONE,
    KEPT,
    REPLAYED,
    FlushHook,
    Launch,
    SignIn,
    launches_of,
    receive,
    send,
    signins_of,
)
from launcher.events.spool import Spool

log = logging.getLogger(__name__)

FLUSH_LOCK = 0x4C41554E  # PostgreSQL advisory lock id held while a batch is written ("LAUN")
BATCH_ID_DAYS = 7  # how long written batch ids are kept to recognise a batch written twice
PRUNE_EVERY = 60 * 60.0  # seconds between prunes of old batch ids
MIN_REPLAY_INTERVAL = 0.1  # seconds: the writer's shortest wait between looks at the spool
REPLAY_BUDGET = 0.2  # seconds of replay between looks at the pipe
STATEMENT_TIMEOUT = 10  # seconds: PostgreSQL gives up a statement of a batch write after this

# A spool file that cannot be decoded, or whose rows the database refuses (not merely: is down).
_DAMAGED = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    sa.exc.IntegrityError,
    sa.exc.DataError,
)


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
    costs more than the database's own work, and this runs for every flushed batch. Each
    person's last launch of each app goes into user_recent with them (the grid's "recently
    used", launcher/personal.py)."""
    rows = [(_db_time(conn, e.ts), e.app_id, e.user_id, e.department, e.source) for e in launches]
    db.insert_rows(conn, "INSERT INTO launch_event (ts, app_id, user_id, department, source)", rows)
    personal.note_launches(conn, (r[:3] for r in rows))
    db.insert_rows(
        conn,
        "INSERT INTO signin_event (ts, user_id, department)",
        [(_db_time(conn, e.ts), e.user_id, e.department) for e in signins],
    )


class BatchWriter:
    """Writes batches (or spools them), replays the spool. Used from one thread at a time."""

    def __init__(self, engine: sa.Engine, spool_dir: Path, on_flush: FlushHook | None) -> None:
        self.engine = engine
        self.spool_dir = spool_dir
        self.spool = Spool(spool_dir)
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
                self.spool.put(batch_id, launches, signins)
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
            self.spool.put(batch_id, launches, signins)  # an OSError here is the caller's
            return 0, len(launches) + len(signins)
        self._back_up()
        return written, 0

    def _back_up(self) -> None:
        if not self.database_ok:
            log.info("database is back; writing events again")
        self.database_ok = True

    def replay_spool(self, tz: ZoneInfo, budget: float | None = None) -> int:
        """Write spooled batches, each claimed first so that two writers never share one.

        With a ``budget`` (seconds), stop after the file that exceeds it and set
        ``spool_left``: the writer process reads its pipe between rounds.
        """
        self.spool_left = False
        self.spool.reclaim_orphans()
        replayed = 0
        started = time.monotonic()
        for path in self.spool.waiting():
            if budget is not None and time.monotonic() - started > budget:
                self.spool_left = True
                break
            claim = self.spool.claim(path)
            if claim is None:
                continue  # another writer took it
            try:
                launches, signins = claim.read()
                replayed += self.write(claim.batch_id, launches, signins, tz)
            except _DAMAGED as exc:  # retrying would never help, and would block every later file
                log.error("spool file %s is damaged (%s); kept as .bad for inspection", path, exc)
                claim.set_aside()
                continue
            except sa.exc.SQLAlchemyError:
                claim.release()  # still down; try again later
                self.database_ok = False
                return replayed
            except BaseException:  # unexpected: put the file back for the next round
                with contextlib.suppress(OSError):
                    claim.release()
                raise
            claim.finish()
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
                if message[0] == CLOSE:
                    return
                _, batch_id, tz, launch_rows, signin_rows = message  # BATCH
                try:
                    written, spooled = writer.write_or_spool(
                        batch_id, launches_of(launch_rows), signins_of(signin_rows), tz
                    )
                except OSError:
                    log.exception(
                        "cannot spool to %s either; the portal keeps the events", spool_dir
                    )
                    send(conn, (KEPT, batch_id, writer.database_ok))
                    continue
                send(conn, (DONE, batch_id, written, spooled, writer.database_ok))
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
                    send(conn, (REPLAYED, replayed, writer.database_ok))
    except (BrokenPipeError, ConnectionResetError):
        return  # the portal is gone; everything acknowledged is written or spooled
    finally:
        engine.dispose()

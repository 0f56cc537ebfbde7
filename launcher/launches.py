"""The event store: launches and sign-ins, written behind the request.

A request only appends to an in-memory buffer; a background task inserts the buffer in one
batch at least every ``flush_interval`` seconds, on a worker thread so that the event loop
never waits for the database. When the database is down, a batch is spooled to a JSON-lines
file (fsynced) and replayed when the database answers again. Shutdown flushes, and spools
whatever the database does not take, so a SIGTERM loses nothing that was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import anyio.to_thread
import sqlalchemy as sa

from launcher import db

log = logging.getLogger(__name__)

FLUSH_LOCK = 0x4C41554E  # PostgreSQL advisory lock id held while a batch is written ("LAUN")


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
# Called inside the flush transaction with the batch, so derived tables stay in step.
FlushHook = Callable[[sa.Connection, Sequence[Launch], Sequence[SignIn]], None]


# Field names per event type. Rows are built by hand: dataclasses.asdict deep-copies every
# field, and was most of the cost of a flush (which holds the event loop's GIL meanwhile).
_COLUMNS = {cls: tuple(f.name for f in fields(cls)) for cls in (Launch, SignIn)}


def _row(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in _COLUMNS[type(event)]}


def insert_events(
    conn: sa.Connection, launches: Sequence[Launch], signins: Sequence[SignIn]
) -> None:
    """Bulk insert straight through the driver: SQLAlchemy's per-row parameter processing
    costs more than the database's own work, and this runs for every flushed batch."""
    sqlite = conn.dialect.name == "sqlite"

    def ts(value: dt.datetime) -> object:
        # SQLite: the text form SQLAlchemy's DateTime uses there, so that both compare alike
        if not sqlite:
            return value
        if value.tzinfo is not dt.UTC:
            value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")  # faster than strftime

    db.insert_rows(
        conn,
        "INSERT INTO launch_event (ts, app_id, user_id, department, source)",
        [(ts(e.ts), e.app_id, e.user_id, e.department, e.source) for e in launches],
    )
    db.insert_rows(
        conn,
        "INSERT INTO signin_event (ts, user_id, department)",
        [(ts(e.ts), e.user_id, e.department) for e in signins],
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    return True


def _encode(event: Event) -> str:
    data = _row(event)
    data["ts"] = event.ts.isoformat()
    data["type"] = "launch" if isinstance(event, Launch) else "signin"
    return json.dumps(data, separators=(",", ":"))


# A spool file that cannot be decoded, or whose rows the database refuses (not merely: is down).
_DAMAGED = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    sa.exc.IntegrityError,
    sa.exc.DataError,
)


def _decode(line: str) -> Event:
    data: dict[str, Any] = json.loads(line)
    kind = data.pop("type")
    data["ts"] = dt.datetime.fromisoformat(data["ts"])
    return Launch(**data) if kind == "launch" else SignIn(**data)


class EventStore:
    """Buffers events and writes them in batches; see the module docstring."""

    def __init__(
        self,
        engine: sa.Engine,
        spool_dir: Path,
        *,
        flush_interval: float = 0.1,
        retry_interval: float = 5.0,
        on_flush: FlushHook | None = None,
    ) -> None:
        self.engine = engine
        self.spool_dir = spool_dir
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.on_flush = on_flush
        self._buffer: list[Event] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_replay = 0.0
        self.written = 0  # events committed to the database by this process
        self.spooled = 0
        self.database_ok = True

    # --- the request path: no I/O -------------------------------------------------------
    def record_launch(
        self, app_id: str, user_id: str, department: str | None, source: str = "tile"
    ) -> None:
        self._buffer.append(Launch(dt.datetime.now(dt.UTC), app_id, user_id, department, source))

    def record_signin(self, user_id: str, department: str | None) -> None:
        self._buffer.append(SignIn(dt.datetime.now(dt.UTC), user_id, department))

    @property
    def pending(self) -> int:
        return len(self._buffer)

    # --- background ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="launcher-event-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
                if time.monotonic() - self._last_replay > self.retry_interval:
                    self._last_replay = time.monotonic()
                    await anyio.to_thread.run_sync(self.replay_spool)
            except Exception:  # the loop must survive anything; the events are spooled
                log.exception("event flush failed")

    async def flush(self) -> None:
        async with self._lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            await anyio.to_thread.run_sync(self._write_or_spool, batch)

    async def close(self) -> None:
        """Stop the background task and write (or spool) everything still buffered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    # --- worker thread --------------------------------------------------------------------
    def _write(self, batch: Sequence[Event]) -> None:
        launches = [e for e in batch if isinstance(e, Launch)]
        signins = [e for e in batch if isinstance(e, SignIn)]
        # serialized: the flush hook reads and then updates rollups (see reports/rollups.py)
        with db.serialized_write(self.engine, FLUSH_LOCK) as conn:
            insert_events(conn, launches, signins)
            if self.on_flush is not None:
                self.on_flush(conn, launches, signins)
        self.written += len(batch)

    def _write_or_spool(self, batch: Sequence[Event]) -> None:
        try:
            self._write(batch)
        except Exception as exc:  # any failure, not just the database's: the batch is kept
            if isinstance(exc, sa.exc.SQLAlchemyError):
                if self.database_ok:
                    log.error(
                        "database unavailable, spooling events to %s: %s", self.spool_dir, exc
                    )
                self.database_ok = False
            else:
                log.exception("writing events failed; spooling them to %s", self.spool_dir)
            try:
                self._spool(batch)
            except OSError:
                log.exception(
                    "cannot spool to %s either; keeping the events in memory", self.spool_dir
                )
                self._buffer[:0] = batch
        else:
            if not self.database_ok:
                log.info("database is back; writing events again")
            self.database_ok = True

    def _spool(self, batch: Sequence[Event]) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        name = f"events-{os.getpid()}-{time.time_ns()}-{uuid.uuid4().hex[:6]}.jsonl"
        tmp = self.spool_dir / (name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write("\n".join(_encode(e) for e in batch) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(self.spool_dir / name)  # atomic: a replay never sees half a file
        self.spooled += len(batch)

    def _reclaim_orphans(self) -> None:
        """Files claimed by a worker that died mid-replay go back in the queue."""
        for claimed in self.spool_dir.glob("events-*.jsonl.claimed-*"):
            pid = claimed.name.rsplit("-", 1)[1]
            if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):  # another worker may reclaim it first
                claimed.rename(claimed.with_name(claimed.name.rsplit(".claimed-", 1)[0]))
                log.warning("reclaimed spool file %s from a worker that died", claimed.name)

    def replay_spool(self) -> int:
        """Insert spooled events; each file is claimed by rename so two workers never share one."""
        if not self.spool_dir.is_dir():
            return 0
        self._reclaim_orphans()
        replayed = 0
        for path in sorted(self.spool_dir.glob("events-*.jsonl")):
            claimed = path.with_name(path.name + f".claimed-{os.getpid()}")
            try:
                path.rename(claimed)
            except OSError:
                continue  # another worker took it
            try:
                events = [_decode(line) for line in claimed.read_text("utf-8").splitlines() if line]
                self._write(events)
            except _DAMAGED as exc:  # retrying would never help, and would block every later file
                log.error("spool file %s is damaged (%s); kept as .bad for inspection", path, exc)
                claimed.rename(path.with_suffix(".bad"))
                continue
            except sa.exc.SQLAlchemyError:
                claimed.rename(path)  # still down; try again later
                self.database_ok = False
                return replayed
            claimed.unlink()
            replayed += len(events)
            self.database_ok = True
        if replayed:
            log.info("replayed %d spooled events", replayed)
        return replayed

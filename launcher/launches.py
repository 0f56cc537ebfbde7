"""The launch store: launches and sign-ins, written behind the request.

A request only appends a tuple to an in-memory buffer. At least every ``flush_interval``
seconds the buffer becomes a batch with an id of its own and goes to the event writer
(launcher/events.py), which writes it -- raw events, rollups and the batch id in one
transaction -- or, while the database is down, spools it to disk and replays it later.

The writer is, by default, a process of its own fed through a pipe. Writing a batch is Python
work that holds the GIL (rows, rollup keys); in a thread of the portal's process it stalled the
event loop at every flush, and under load the launch p99 doubled. The portal keeps each batch
until the writer acknowledges it; if the writer dies, the portal spools the unacknowledged
batches itself and starts a new writer. The batch ids make a batch that was both written and
spooled count once. ``writer="thread"`` writes from a thread of this process instead, each
flush finished when it returns (tools and tests).

Shutdown flushes, lets the writer finish and spools whatever it did not acknowledge, so a
SIGTERM loses nothing that was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import anyio.to_thread
import sqlalchemy as sa

from launcher.events import (
    BatchWriter,
    FlushHook,
    LaunchRow,
    SignInRow,
    launches_of,
    new_batch_prefix,
    receive,
    run_writer,
    send,
    signins_of,
)

log = logging.getLogger(__name__)

WRITER_STOP_TIMEOUT = 3.5  # seconds for the writer to finish at shutdown (cli: last flush < 4 s)
WRITER_RESTART_DELAY = 1.0  # seconds between starts of a writer that keeps dying


@dataclass
class _Batch:
    batch_id: str
    launches: list[LaunchRow]
    signins: list[SignInRow]

    @property
    def size(self) -> int:
        return len(self.launches) + len(self.signins)


class EventStore:
    """Buffers events and hands them to the writer in batches; see the module docstring."""

    def __init__(
        self,
        engine: sa.Engine,
        spool_dir: Path,
        *,
        flush_interval: float = 0.1,
        retry_interval: float = 5.0,
        on_flush: FlushHook | None = None,
        timezone: Callable[[], ZoneInfo] = lambda: ZoneInfo("UTC"),
        writer: Literal["process", "thread"] = "process",
    ) -> None:
        self.engine = engine
        self.spool_dir = spool_dir
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.on_flush = on_flush  # in a process writer: a module-level function (pickled by name)
        self.timezone = timezone
        self.mode = writer
        self._launches: list[LaunchRow] = []
        self._signins: list[SignInRow] = []
        self._prefix = new_batch_prefix()
        self._sequence = 0
        # Batches handed over and not yet acknowledged, in order. Touched only by the one
        # worker thread that holds self._lock.
        self._inflight: dict[str, _Batch] = {}
        self._inflight_events = 0
        self._resend: list[str] = []
        self._local = BatchWriter(engine, spool_dir, on_flush)
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._start_after = 0.0
        self._writer_wanted = False  # a writer was started: keep one running until close()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_replay = 0.0
        self.written = 0  # events committed to the database (as the writer reports)
        self.spooled = 0
        self.database_ok = True

    # --- the request path: no I/O -------------------------------------------------------
    def record_launch(
        self, app_id: str, user_id: str, department: str | None, source: str = "tile"
    ) -> None:
        self._launches.append((time.time(), app_id, user_id, department, source))

    def record_signin(self, user_id: str, department: str | None) -> None:
        self._signins.append((time.time(), user_id, department))

    @property
    def pending(self) -> int:
        """Events not yet written or spooled: buffered, or with the writer."""
        return len(self._launches) + len(self._signins) + self._inflight_events

    # --- background ---------------------------------------------------------------------
    def start(self) -> None:
        """Start flushing; the writer process starts with the first flush (and replays any
        spool a previous run left)."""
        self._writer_wanted = self.mode == "process"
        self._task = asyncio.create_task(self._run(), name="launcher-event-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
                if self.mode == "thread" and (
                    time.monotonic() - self._last_replay > self.retry_interval
                ):
                    self._last_replay = time.monotonic()
                    await anyio.to_thread.run_sync(self.replay_spool)
            except Exception:  # the loop must survive anything; the events are kept
                log.exception("event flush failed")

    async def flush(self) -> None:
        """Hand the buffer to the writer (thread mode: and wait until it is written)."""
        async with self._lock:
            batch = self._take()
            if batch is None and not self._inflight and not self._writer_wanted:
                return  # nothing to write, no writer to watch
            work = self._write_here if self.mode == "thread" else self._hand_over
            await anyio.to_thread.run_sync(work, batch)

    async def close(self) -> None:
        """Stop the background task, write everything buffered, and stop the writer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        if self.mode == "process":
            async with self._lock:
                await anyio.to_thread.run_sync(self._stop_writer)

    def replay_spool(self) -> int:
        """Write spooled batches from this process (thread mode; the writer process replays
        on its own)."""
        replayed = self._local.replay_spool(self.timezone())
        self.written += replayed
        self.database_ok = self._local.database_ok
        return replayed

    def _take(self) -> _Batch | None:
        if not self._launches and not self._signins:
            return None
        launches, self._launches = self._launches, []
        signins, self._signins = self._signins, []
        self._sequence += 1
        return _Batch(f"{self._prefix}-{self._sequence}", launches, signins)

    def _track(self, batch: _Batch) -> None:
        self._inflight[batch.batch_id] = batch
        self._inflight_events += batch.size

    def _settled(self, batch_id: str) -> _Batch | None:
        batch = self._inflight.pop(batch_id, None)
        if batch is not None:
            self._inflight_events -= batch.size
        return batch

    # --- worker thread: thread mode -----------------------------------------------------
    def _write_here(self, batch: _Batch | None) -> None:
        if batch is not None:
            self._track(batch)
        for pending in list(self._inflight.values()):  # older ones first: kept after a failure
            try:
                written, spooled = self._local.write_or_spool(
                    pending.batch_id,
                    launches_of(pending.launches),
                    signins_of(pending.signins),
                    self.timezone(),
                )
            except OSError:
                log.exception("cannot spool to %s either; keeping the events", self.spool_dir)
                break
            self._settled(pending.batch_id)
            self.written += written
            self.spooled += spooled
        self.database_ok = self._local.database_ok

    # --- worker thread: process mode ----------------------------------------------------
    def _hand_over(self, batch: _Batch | None) -> None:
        if batch is not None:  # first: from here on, nothing can drop it
            self._track(batch)
            self._resend.append(batch.batch_id)
        self._read_acks()
        if self._proc is not None and not self._proc.is_alive():
            self._writer_died()
        if self._proc is None and time.monotonic() >= self._start_after:
            try:
                self._start_writer()
            except Exception:
                self._start_after = time.monotonic() + WRITER_RESTART_DELAY
                log.exception("cannot start the event writer process; spooling meanwhile")
        if self._conn is None:
            self._spool_here()  # no writer at the moment: nothing may wait in memory for it
            return
        while self._resend:
            pending = self._inflight.get(self._resend[0])
            if pending is not None and not self._send(pending):
                return
            self._resend.pop(0)

    def _send(self, batch: _Batch) -> bool:
        assert self._conn is not None
        message = ("batch", batch.batch_id, self.timezone(), batch.launches, batch.signins)
        try:
            send(self._conn, message)
        except OSError:
            self._writer_died()
            return False
        return True

    def _start_writer(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork: this process has threads
        ours, theirs = context.Pipe()
        proc = context.Process(
            target=run_writer,
            args=(
                theirs,
                self.engine.url.render_as_string(hide_password=False),
                self.spool_dir,
                self.on_flush,
                self.timezone(),
                self.retry_interval,
            ),
            name="launcher-event-writer",
            daemon=True,  # if this process exits without close(), the writer goes too
        )
        try:
            proc.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._writer_wanted = True
        self._proc, self._conn = proc, ours
        self._start_after = time.monotonic() + WRITER_RESTART_DELAY
        self._resend = list(self._inflight)  # unacknowledged: the new writer gets them all

    def _read_acks(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                self._handle(receive(conn))
        except (EOFError, OSError):
            self._writer_died()

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "done":
            _, batch_id, written, spooled, self.database_ok = message
            self._settled(batch_id)
            self.written += written
            self.spooled += spooled
        elif kind == "kept":  # neither written nor spooled: try again with the next flush
            _, batch_id, self.database_ok = message
            if batch_id in self._inflight and batch_id not in self._resend:
                self._resend.append(batch_id)
        elif kind == "replayed":
            _, replayed, self.database_ok = message
            self.written += replayed

    def _writer_died(self) -> None:
        proc, self._proc = self._proc, None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        code = proc.exitcode if proc is not None else None
        log.error(
            "the event writer process stopped (exit code %s); spooling %d events it had not "
            "acknowledged, and starting a new writer",
            code,
            self._inflight_events,
        )
        self._spool_here()

    def _spool_here(self) -> None:
        """Spool every unacknowledged batch from this process (under its own batch id, so a
        batch the writer did commit is not written twice by the replay)."""
        for batch in list(self._inflight.values()):
            try:
                self._local.spool(
                    batch.batch_id, launches_of(batch.launches), signins_of(batch.signins)
                )
            except OSError:
                log.exception("cannot spool to %s either; keeping the events", self.spool_dir)
                return
            self._settled(batch.batch_id)
            self.spooled += batch.size
        self._resend.clear()

    def _stop_writer(self) -> None:
        """Send "close", read acknowledgements until the writer exits (or time is up), then
        spool what it did not acknowledge."""
        proc, conn = self._proc, self._conn
        if proc is not None and conn is not None:
            deadline = time.monotonic() + WRITER_STOP_TIMEOUT
            with contextlib.suppress(OSError):
                send(conn, ("close",))
            try:
                while time.monotonic() < deadline and (proc.is_alive() or conn.poll()):
                    if conn.poll(0.05):
                        self._handle(receive(conn))
            except (EOFError, OSError):
                pass  # it has finished: its end of the pipe is closed
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.error("the event writer did not finish in time; stopping it")
                proc.kill()
                proc.join()
            conn.close()
            self._proc = self._conn = None
        self._writer_wanted = False
        if self._inflight:
            log.warning("spooling %d events the writer did not write", self._inflight_events)
            self._spool_here()

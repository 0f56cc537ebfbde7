"""The portal's end of the pipeline: :class:`EventStore`, the write-behind buffer.

The story -- from the 303 to the row, SIGTERM, a writer killed, a database outage -- is told in
launcher/events/__init__.py. This module is one class of about 400 lines: the buffer, the
in-flight batches and the writer process it hands them to share one set of books (a batch is
in the outbox, in flight, or settled), and splitting the process handling out would have it
reach into those books from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.util
import os
import pickle
import threading
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

from launcher.events.protocol import (
    BATCH,
    CLOSE,
    DONE,
    KEPT,
    REPLAYED,
    FlushHook,
    LaunchRow,
    SignInRow,
    launches_of,
    new_batch_prefix,
    receive,
    send,
    signins_of,
)
from launcher.events.writer import BatchWriter, run_writer

log = logging.getLogger(__name__)

WRITER_STOP_TIMEOUT = 3.5  # seconds from the start of close() (cli: the last flush < 4 s)
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
    """Buffers events and hands them to the writer in batches (launcher/events/__init__.py).

    Threads: the event loop records events and moves full buffers to ``_outbox`` (never
    awaiting in between, so a cancellation cannot drop a batch). One worker thread at a time
    (``_lock``, and a limiter of its own so that flushes never queue behind request threads)
    takes batches from the outbox and owns everything about the writer.
    """

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
        if writer == "process":
            try:
                pickle.dumps(on_flush)
            except Exception as exc:  # fail at start-up, not at the first flush
                raise TypeError(
                    "on_flush must be a module-level function to run in the writer process"
                ) from exc
            if multiprocessing.current_process().daemon:
                log.warning("a daemonic process cannot start the event writer; using a thread")
                writer = "thread"
        self.engine = engine
        self.spool_dir = spool_dir
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.on_flush = on_flush
        self.timezone = timezone
        self.mode = writer
        self._launches: list[LaunchRow] = []
        self._signins: list[SignInRow] = []
        self._outbox: list[_Batch] = []  # taken from the buffers, not yet seen by the worker
        self._pid = os.getpid()
        self._prefix = new_batch_prefix()
        self._sequence = 0
        # Batches handed over and not yet acknowledged. Worker thread only.
        self._inflight: dict[str, _Batch] = {}
        self._inflight_events = 0
        self._resend: list[str] = []
        self._resend_after = 0.0
        self._local = BatchWriter(engine, spool_dir, on_flush)
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._finalizer: multiprocessing.util.Finalize | None = None
        self._start_after = 0.0
        self._writer_wanted = False  # a writer was started: keep one running until close()
        self._closing = False
        self._started = False  # a writer process has been started at least once
        self._lock = asyncio.Lock()
        self._limiter: anyio.CapacityLimiter | None = None
        self._stopping = asyncio.Event()
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
        """Events not yet written or spooled: buffered, or on their way to the writer."""
        queued = sum(batch.size for batch in list(self._outbox))
        return len(self._launches) + len(self._signins) + queued + self._inflight_events

    @property
    def oldest_pending(self) -> float | None:
        """When (time.time()) the oldest event not yet written or spooled was recorded; None
        when none waits. Each buffer and batch is in recording order, so its first row is its
        oldest (the metric launcher_events_oldest_pending_seconds)."""
        batches = [*list(self._outbox), *list(self._inflight.values())]
        firsts: list[float] = [
            rows[0][0] for rows in (self._launches, *(b.launches for b in batches)) if rows
        ]
        firsts += [rows[0][0] for rows in (self._signins, *(b.signins for b in batches)) if rows]
        return min(firsts, default=None)

    # --- background ---------------------------------------------------------------------
    def start(self) -> None:
        """Start flushing; the writer process starts with the first flush (and replays any
        spool a previous run left)."""
        self._writer_wanted = self.mode == "process"
        self._task = asyncio.create_task(self._run(), name="launcher-event-flush")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.flush_interval)
            if self._stopping.is_set():
                return  # close() does the last flush
            try:
                await self.flush()
                if self.mode == "thread" and (
                    time.monotonic() - self._last_replay > self.retry_interval
                ):
                    self._last_replay = time.monotonic()
                    await self._in_thread(self.replay_spool)
            except Exception:  # the loop must survive anything; the events are kept
                log.exception("event flush failed")

    async def _in_thread(self, work: Callable[[], object]) -> None:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        await anyio.to_thread.run_sync(work, limiter=self._limiter)

    async def flush(self) -> None:
        """Hand the buffer to the writer (thread mode: and wait until it is written)."""
        self._take()  # before any await: from here on the batch is in the outbox
        async with self._lock:
            if not self._outbox and not self._inflight and not self._writer_wanted:
                return  # nothing to write, no writer to watch
            await self._in_thread(self._write_here if self.mode == "thread" else self._hand_over)

    async def close(self) -> None:
        """Write everything buffered and stop the writer, within WRITER_STOP_TIMEOUT."""
        deadline = time.monotonic() + WRITER_STOP_TIMEOUT
        # Whatever blocks -- a send into the pipe of a writer stuck on the database -- ends
        # when the writer is killed at the deadline; what it had not acknowledged is spooled.
        watchdog = threading.Timer(WRITER_STOP_TIMEOUT, self._kill_writer)
        watchdog.daemon = True
        if self.mode == "process":
            watchdog.start()
        try:
            self._stopping.set()
            if self._task is not None:
                await self._task  # it finishes the flush it is in, then stops
                self._task = None
            self._closing = True  # no new writer from here on
            await self.flush()
        finally:
            if self.mode == "process":
                async with self._lock:
                    await self._in_thread(lambda: self._stop_writer(deadline))
            watchdog.cancel()

    def replay_spool(self) -> int:
        """Write spooled batches from this process (thread mode; the writer process replays
        on its own)."""
        replayed = self._local.replay_spool(self.timezone())
        self.written += replayed
        self.database_ok = self._local.database_ok
        if self.database_ok:
            self._local.prune_batch_ids()
        return replayed

    def _take(self) -> None:
        if not self._launches and not self._signins:
            return
        if os.getpid() != self._pid:  # a forked copy of this store: ids of its own
            self._pid, self._prefix, self._sequence = os.getpid(), new_batch_prefix(), 0
        launches, self._launches = self._launches, []
        signins, self._signins = self._signins, []
        self._sequence += 1
        self._outbox.append(_Batch(f"{self._prefix}-{self._sequence}", launches, signins))

    def _track_outbox(self) -> list[str]:
        """Worker thread: move the outbox into the batches waiting for acknowledgement; the
        ids of those just moved."""
        moved = []
        while self._outbox:
            batch = self._outbox[0]
            self._inflight[batch.batch_id] = batch
            self._inflight_events += batch.size
            moved.append(batch.batch_id)
            self._outbox.pop(0)
        return moved

    def _settled(self, batch_id: str) -> _Batch | None:
        batch = self._inflight.pop(batch_id, None)
        if batch is not None:
            self._inflight_events -= batch.size
        return batch

    # --- worker thread: thread mode -----------------------------------------------------
    def _write_here(self) -> None:
        self._track_outbox()
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
    def _hand_over(self) -> None:
        self._resend += self._track_outbox()  # not sent yet
        self._read_acks()
        if self._proc is not None and not self._proc.is_alive():
            self._writer_died()
        # While closing, a writer that died is not replaced (a new one would first replay
        # the spool): the portal spools its batches. One that never ran still starts.
        restart = not (self._closing and self._started)
        if self._proc is None and restart and time.monotonic() >= self._start_after:
            try:
                self._start_writer()
            except Exception:
                self._start_after = time.monotonic() + WRITER_RESTART_DELAY
                log.exception("cannot start the event writer process; spooling meanwhile")
        if self._conn is None:
            self._spool_here()  # no writer at the moment: nothing may wait in memory for it
            return
        if time.monotonic() < self._resend_after:
            return
        while self._resend:
            pending = self._inflight.get(self._resend[0])
            if pending is not None and not self._send(pending):
                return
            self._resend.pop(0)

    def _send(self, batch: _Batch) -> bool:
        assert self._conn is not None
        message = (BATCH, batch.batch_id, self.timezone(), batch.launches, batch.signins)
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
        self._writer_wanted = self._started = True
        self._proc, self._conn = proc, ours
        self._start_after = time.monotonic() + WRITER_RESTART_DELAY
        self._resend = list(self._inflight)  # unacknowledged: the new writer gets them all
        # At interpreter exit without close() (a second Ctrl-C, a crash in the lifespan),
        # multiprocessing would SIGTERM the writer -- which ignores it -- and wait for ever.
        # Closing our end first lets it finish its batch and exit.
        if self._finalizer is not None:
            self._finalizer.cancel()
        self._finalizer = multiprocessing.util.Finalize(self, self._at_exit, exitpriority=10)

    def _read_acks(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                self._handle(receive(conn))
        except Exception:  # end of file, a broken pipe, half a message: the writer is gone
            self._writer_died()

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == DONE:
            _, batch_id, written, spooled, self.database_ok = message
            if self._settled(batch_id) is not None:
                self.written += written
                self.spooled += spooled
        elif kind == KEPT:  # neither written nor spooled: try again later
            _, batch_id, self.database_ok = message
            if batch_id in self._inflight and batch_id not in self._resend:
                self._resend.append(batch_id)
                self._resend_after = time.monotonic() + self.retry_interval
        elif kind == REPLAYED:
            _, replayed, self.database_ok = message
            self.written += replayed

    def _kill_writer(self) -> None:
        """The close() watchdog (a timer thread)."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            log.error("the event writer did not finish in time; stopping it")
            proc.kill()

    def _writer_died(self) -> None:
        proc, self._proc = self._proc, None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if proc is not None:
            proc.join(1)  # reap it
        code = proc.exitcode if proc is not None else None
        if not self._closing:
            log.error(
                "the event writer process stopped (exit code %s); spooling %d events it had "
                "not acknowledged, and starting a new writer",
                code,
                self._inflight_events,
            )
        self._spool_here()

    def _spool_here(self) -> None:
        """Spool every unacknowledged batch from this process (under its own batch id, so a
        batch the writer did commit is not written twice by the replay)."""
        for batch in list(self._inflight.values()):
            try:
                self._local.spool.put(
                    batch.batch_id, launches_of(batch.launches), signins_of(batch.signins)
                )
            except OSError:
                log.exception("cannot spool to %s either; keeping the events", self.spool_dir)
                return
            self._settled(batch.batch_id)
            self.spooled += batch.size
        self._resend.clear()

    def _stop_writer(self, deadline: float) -> None:
        """Send "close", read acknowledgements until the writer exits (or the deadline), then
        spool what it did not acknowledge."""
        self._track_outbox()  # anything a cancelled flush left behind
        proc, conn = self._proc, self._conn
        if proc is not None and conn is not None:
            with contextlib.suppress(OSError):
                send(conn, (CLOSE,))  # may block on a full pipe until the watchdog kills
            with contextlib.suppress(Exception):  # end of file: it has finished
                while time.monotonic() < deadline and (proc.is_alive() or conn.poll()):
                    if conn.poll(0.05):
                        self._handle(receive(conn))
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                self._kill_writer()
                proc.join(2)
            with contextlib.suppress(Exception):  # acknowledgements still in the pipe
                while conn.poll():
                    self._handle(receive(conn))
            conn.close()
            self._proc = self._conn = None
        if self._finalizer is not None:
            self._finalizer.cancel()
            self._finalizer = None
        self._writer_wanted = False
        if self._inflight:
            log.warning("spooling %d events the writer did not write", self._inflight_events)
            self._spool_here()

    def _at_exit(self) -> None:
        """Interpreter exit without close(): stop the writer as close() would."""
        if self._proc is None:
            return
        watchdog = threading.Timer(WRITER_STOP_TIMEOUT, self._kill_writer)
        watchdog.daemon = True
        watchdog.start()
        try:
            self._stop_writer(time.monotonic() + WRITER_STOP_TIMEOUT)
        finally:
            watchdog.cancel()

"""Launches and sign-ins, from the request that answers them to their rows in the database.

The request never waits for the database, and nothing that was answered is lost: not at a
SIGTERM, not when the writer is killed, not while the database is down.

From the 303 to the row
    The launch view (launcher/views/launch.py) answers ``GET /launch/{id}`` with its 303 and
    calls :meth:`EventStore.record_launch` (a HEAD gets the same 303 and records nothing), which
    appends a plain tuple to a list in memory (store.py): no I/O, no lock. Every
    ``flush_interval`` (0.1 s) the store's flush loop moves the buffer, as one batch with an id
    of its own (``<pid>-<random>-<n>``), to an outbox -- before any ``await``, so no
    cancellation can drop it -- and a worker thread hands the batch to the event writer, a
    process of its own, through a pipe (the messages: protocol.py). The portal keeps the batch
    until the writer acknowledges it. The writer (writer.py) writes each batch in one
    transaction: its id into ``event_batch``, the raw events, and the report rollups (the
    ``on_flush`` hook, launcher/reports/rollups.py, serialized across workers by
    :data:`FLUSH_LOCK`); then it answers "done", and the portal forgets the batch. A batch id
    that is already in ``event_batch`` is not written again, so whatever route a batch takes
    twice, it counts once.

SIGTERM
    The server stops accepting, finishes the requests in flight, and the lifespan calls
    :meth:`EventStore.close`: the flush loop stops between two flushes (an event, not a cancel),
    the last buffer is flushed, the writer is told "close" and the portal reads its
    acknowledgements until it exits. A watchdog kills the writer :data:`WRITER_STOP_TIMEOUT`
    (3.5 s) after close() began, which also ends a send blocked on a full pipe; whatever it had
    not acknowledged the portal then spools itself (spool.py). The writer ignores SIGTERM and
    SIGINT, because a signal sent to the whole process group must not end it before the portal
    has handed over its last batch; it stops on "close" or when its pipe ends. At interpreter
    exit without close() (a second Ctrl-C), a multiprocessing finalizer does the same.
    tests/test_shutdown.py sends SIGTERM under load and counts the rows.

SIGKILL of the writer
    At its next flush (0.1 s) the portal sees the writer gone (not alive, or end of file on the
    pipe), spools every batch the writer had not acknowledged, and starts a new writer (at most
    one a second). The new writer replays the spool; a batch the dead writer had committed but
    not acknowledged is recognised by its id and skipped.

A database outage
    A batch the database does not take (an error, SQLite's lock or PostgreSQL's 3 s lock
    timeout, a 10 s statement timeout on a stalled server) is spooled: one fsynced JSON-lines
    file per batch, acknowledged as spooled. While the database is known to be down, batches go
    straight to the spool rather than wait out a timeout each. Every ``retry_interval`` (5 s)
    the writer replays the spool, oldest file first, at most 0.2 s per round between looks at
    the pipe; the first file written tells it the database is back. A file the database refuses
    or that cannot be read is set aside as ``.bad``. If the spool cannot take a batch either (a
    full disk), the writer tries the database after all, and failing both answers "kept": the
    portal keeps the batch in memory and sends it again later.

Why a process, and why a thread as well
    Writing a batch -- rows, rollup keys, upserts -- is Python work that holds the GIL. With the
    writer in a thread of the portal's process the launch p99 under load was 12.5 ms (target:
    10 ms; the bare redirect's 5.5 ms); with the writer in its own process it is 7.8-8.9 ms
    (bench/README.md, docs/DECISIONS.md). So the portal serves with ``writer="process"``.
    ``writer="thread"`` writes from a thread of the portal's process, each flush finished when
    it returns: it is what a daemonic process gets (multiprocessing lets it start no child),
    and what the store's tests use to check outcomes without waiting for another process.

The modules: ``store`` (the portal's buffer, :class:`EventStore`), ``writer``
(:class:`BatchWriter` and the writer process, :func:`run_writer`), ``spool`` (the files on
disk), ``protocol`` (the rows, batch ids and pipe messages between them).
"""

from __future__ import annotations

from launcher.events.protocol import Event, FlushHook, Launch, LaunchRow, SignIn, SignInRow
from launcher.events.spool import Spool
from launcher.events.store import WRITER_STOP_TIMEOUT, EventStore
from launcher.events.writer import BATCH_ID_DAYS, FLUSH_LOCK, BatchWriter, insert_events, run_writer

__all__ = [
    "BATCH_ID_DAYS",
    "FLUSH_LOCK",
    "WRITER_STOP_TIMEOUT",
    "BatchWriter",
    "Event",
    "EventStore",
    "FlushHook",
    "Launch",
    "LaunchRow",
    "SignIn",
    "SignInRow",
    "Spool",
    "insert_events",
    "run_writer",
]

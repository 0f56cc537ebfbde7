"""Jobs that must run once per cluster, however many replicas schedule them.

Every replica runs the daily purge, and a Kubernetes CronJob may start ``launcher send-digest``
or ``launcher db purge`` while a previous run is still going. :func:`run_once` lets exactly one
of them do the work: on PostgreSQL it takes a session-level advisory lock
(``pg_try_advisory_lock``) named after the job and holds it on a connection of its own until the
job ends; whoever does not get it skips the run. A lock held by a process that dies is released
with its connection, so a crash never blocks the next run.

SQLite is one host and one file: there every caller runs (the purge and the rollups are
serialized by SQLite's one writer anyway).

``launcher import-signins`` is not a run-once job: two imports of different files must both
happen. Each file's transaction takes an advisory lock of its own and waits for it
(launcher/signins/importer.py), so imports run one after the other, each record counted once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import db, partitions
from launcher.reports import rebuild

# The jobs by name. The lock id is derived from the name, so a new job needs no number.
PURGE = "purge"
DIGEST = "send-digest"
PARTITIONS = "partitions"

BUSY = "another run is in progress"  # what a command prints when it skips


def lock_id(name: str) -> int:
    """A stable signed 64-bit advisory lock id for job ``name`` (PostgreSQL's bigint)."""
    digest = hashlib.sha256(b"launcher.jobs:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def run_once(engine: sa.Engine, name: str) -> Iterator[bool]:
    """``with run_once(engine, "purge") as mine:`` -- ``mine`` is True for the one caller in
    the cluster that should run job ``name`` now, False while another holds it."""
    if db.is_sqlite(engine):
        yield True
        return
    key = lock_id(name)
    with engine.connect() as conn:
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        # the lock belongs to the session, not to a transaction: end the transaction, so that
        # the connection does not sit "idle in transaction" for the whole job
        conn.commit()
        if not got:
            yield False
            return
        try:
            yield True
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


def purge(
    engine: sa.Engine, retention_days: int, tz: ZoneInfo, now: dt.datetime | None = None
) -> int | None:
    """The daily purge (and ``launcher db purge``), by one worker of one replica at a time:
    month partitions are made ahead and those past the retention dropped (PostgreSQL,
    launcher/partitions.py), then whatever is left past it is deleted (``rebuild.purge_raw``:
    imported sign-ins, SQLite's rows). Returns the rows deleted, None when another process
    holds the job."""
    with run_once(engine, PURGE) as mine:
        if not mine:
            return None
        partitions.ensure(engine, tz, now)
        partitions.drop_old(engine, retention_days, tz, now)
        return rebuild.purge_raw(engine, retention_days, tz, now)

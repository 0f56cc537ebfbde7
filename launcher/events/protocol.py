"""What passes between the parts of the pipeline: rows, batch ids and the pipe's messages.

A request appends a row *tuple* (:data:`LaunchRow`, :data:`SignInRow`): plain tuples with the
time as a POSIX timestamp pickle at C speed, and every batch crosses a pipe to the writer
process (dataclasses with datetimes cost 75 times more). The writer turns them into
:class:`Launch` and :class:`SignIn`, which is what the database insert, the spool and the
rollups (``FlushHook``) see.

Messages are pickled tuples whose first item says what they are:

to the writer
    ``(BATCH, batch_id, tz, [LaunchRow], [SignInRow])`` and ``(CLOSE,)``
from the writer
    ``(DONE, batch_id, written, spooled, database_ok)`` -- written or spooled, the portal may
    forget the batch; ``(KEPT, batch_id, database_ok)`` -- neither could be done, the portal
    keeps the batch and sends it again later; ``(REPLAYED, n, database_ok)`` -- spooled events
    written by a replay.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

LaunchRow = tuple[float, str, str, str | None, str]  # ts, app_id, user_id, department, source
SignInRow = tuple[float, str, str | None]  # ts, user_id, department

BATCH, CLOSE = "batch", "close"  # to the writer
DONE, KEPT, REPLAYED = "done", "kept", "replayed"  # from the writer


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


def new_batch_prefix() -> str:
    """A prefix unique to one event store: its batch ids are ``<prefix>-<sequence number>``.

    The id is written with the batch's events (table ``event_batch``), so a batch that reaches
    the database twice -- committed by the writer and spooled by the portal as well -- counts
    once."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def send(conn: Connection, message: tuple[Any, ...]) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Connection) -> tuple[Any, ...]:
    # Only ever the other end of a pipe between the portal and the writer it started (as
    # multiprocessing itself does): nothing else can write to it.
    message: tuple[Any, ...] = pickle.loads(conn.recv_bytes())  # noqa: S301
    return message

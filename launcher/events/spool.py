"""The spool: batches the database did not take, kept on disk until a replay writes them.

One file per batch, named after its batch id: ``events-<batch id>.jsonl``, one event per line.
A file is written under a temporary name, fsynced, renamed into place and its directory
fsynced, so a replay never sees half a file and a power cut keeps what was acknowledged.

A replay first *claims* a file by renaming it to ``….claimed-<pid>``: two writers (two portal
workers, or a portal and the writer it started) never replay the same file. A file claimed by
a process that no longer exists goes back in the queue (:meth:`Spool.reclaim_orphans`). What
happens to a claimed file -- written, put back, set aside as damaged -- is the replay's call
(``BatchWriter.replay_spool`` in launcher/events/writer.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from launcher.events.protocol import Event, Launch, SignIn

log = logging.getLogger(__name__)

_COLUMNS = {cls: tuple(f.name for f in fields(cls)) for cls in (Launch, SignIn)}


def encode(event: Event) -> str:
    """One spool line: the event's fields, its time in ISO 8601 and its type."""
    data: dict[str, Any] = {name: getattr(event, name) for name in _COLUMNS[type(event)]}
    data["ts"] = event.ts.isoformat()
    data["type"] = "launch" if isinstance(event, Launch) else "signin"
    return json.dumps(data, separators=(",", ":"))


def decode(line: str) -> Event:
    """The event of a spool line; ValueError, KeyError, TypeError or AttributeError if the line
    is not one."""
    data: dict[str, Any] = json.loads(line)
    kind = data.pop("type")
    data["ts"] = dt.datetime.fromisoformat(data["ts"])
    return Launch(**data) if kind == "launch" else SignIn(**data)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    return True


@dataclass(frozen=True)
class Claim:
    """A spool file this process has renamed to itself: nobody else replays it meanwhile."""

    path: Path  # its name in the queue
    claimed: Path  # its name while claimed

    @property
    def batch_id(self) -> str:
        return self.path.name.removeprefix("events-").removesuffix(".jsonl")

    def read(self) -> tuple[list[Launch], list[SignIn]]:
        events = [decode(line) for line in self.claimed.read_text("utf-8").splitlines() if line]
        launches = [e for e in events if isinstance(e, Launch)]
        signins = [e for e in events if isinstance(e, SignIn)]
        return launches, signins

    def finish(self) -> None:
        """Written: the file goes."""
        self.claimed.unlink()

    def release(self) -> None:
        """Not written this time: back in the queue for the next replay."""
        self.claimed.rename(self.path)

    def set_aside(self) -> None:
        """Never writable (damaged, or refused by the database): kept as ``.bad`` for a person
        to inspect, out of the way of every later file."""
        self.claimed.rename(self.path.with_suffix(".bad"))


class Spool:
    """The spool directory of one portal (shared by its workers and their writers)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, batch_id: str, launches: Sequence[Launch], signins: Sequence[SignIn]) -> None:
        """Keep a batch on disk, durably; an OSError (disk full, no directory) is the caller's."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"events-{batch_id}.jsonl"
        tmp = self.directory / (name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            events: list[Event] = [*launches, *signins]
            fh.write("\n".join(encode(e) for e in events) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(self.directory / name)  # atomic: a replay never sees half a file
        self._sync_dir()  # the rename itself survives a power cut

    def _sync_dir(self) -> None:
        if not hasattr(os, "O_DIRECTORY"):
            return  # not on this platform (Windows)
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def waiting(self) -> list[Path]:
        """The files waiting to be replayed, oldest batch first; none if there is no spool."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("events-*.jsonl"))

    def claim(self, path: Path) -> Claim | None:
        """Take ``path`` for this process; None if another writer took it first."""
        claimed = path.with_name(path.name + f".claimed-{os.getpid()}")
        try:
            path.rename(claimed)
        except OSError:
            return None
        return Claim(path, claimed)

    def reclaim_orphans(self) -> None:
        """Files claimed by a writer that died mid-replay go back in the queue."""
        if not self.directory.is_dir():
            return
        for claimed in self.directory.glob("events-*.jsonl.claimed-*"):
            pid = claimed.name.rsplit("-", 1)[1]
            if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):  # another writer may reclaim it first
                claimed.rename(claimed.with_name(claimed.name.rsplit(".claimed-", 1)[0]))
                log.warning("reclaimed spool file %s from a writer that died", claimed.name)

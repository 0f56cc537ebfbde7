"""The reading process: a sign-in file read, checked, pseudonymised and made into rows
(launcher/signins/chunks.py) in a process of its own, on another core than the database's
writes (launcher/signins/importer.py).

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
from typing import IO, Any

from launcher.signins import chunks, reader
from launcher.signins.chunks import Chunk
from launcher.signins.record import ImportRefused

ENDING_S = 10  # seconds the reading process has to exit once it has sent everything
PIPE_SIZE = 1 << 20  # bytes: a chunk and more (Linux's most for a user, /proc/sys/fs/pipe-max-size)
_HEADER = struct.Struct("<I")  # each message: its length, then its pickle


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
    counts = chunks.Counts()
    on_progress = (lambda read, done: send("progress", read, done)) if progress else None
    for rows in chunks.chunks(
        chunks.FORMATS[fmt], Path(path), key, mapping, form, counts, on_progress, retained_from
    ):
        send("chunk", chunks.chunk(rows, form), counts.read)
    send("end", counts.read, counts.skipped, counts.unregistered, _peak_kb())


def _peak_kb() -> int:
    """This process's peak resident memory (VmHWM), 0 where /proc has none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

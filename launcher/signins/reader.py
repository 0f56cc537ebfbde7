"""Streaming a sign-in export one record at a time, in bounded memory.

Accepted: a JSON array of records, a Microsoft Graph page (``{"value": […], "@odata…": …}``)
and JSON lines (one record per line, or any whitespace between records); each may be gzipped
(recognised by its first bytes, whatever the file is called). The file is read in blocks of
1 MiB and each record is decoded by the standard library's C decoder as soon as its block is
in, so a 2 GB export needs the memory of a block and a record, not of the file.

JSON lines, the form an export job writes (deploy/kubernetes/base/fetch-signins.py), take a
faster path: each line is decoded by ``orjson`` (two to three times the standard library's
speed, and most of an import's time is decoding). A line it will not take whole (a record
spread over lines, two records on one line, anything malformed) is handed with the rest of
the file to the standard library's decoder, so what is accepted and the errors are the same.

Errors are :class:`ReadError` with the number of the record where reading stopped (1-based):
the importer adds the file's name.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

BLOCK = 1 << 20  # characters read at a time
MAX_RECORD = 16 << 20  # a record (or key of a page) longer than this is refused, not buffered
_WS = " \t\r\n"
T = TypeVar("T")
_decoder = json.JSONDecoder()


class ReadError(ValueError):
    def __init__(self, record: int, problem: str) -> None:
        super().__init__(f"record {record}: {problem}" if record else problem)
        self.record = record
        self.problem = problem


class _Stream:
    """A text stream with a window of it in memory; ``pos`` is the reading position in the
    window. Text before ``keep`` (or before ``pos`` when nothing is kept) is dropped when the
    window grows. ``start`` is text already read from the stream, to be read first."""

    def __init__(
        self, f: IO[str], on_block: Callable[[], None] | None = None, start: str = ""
    ) -> None:
        self.f = f
        self.on_block = on_block
        self.buf = start
        self.pos = 0
        self.eof = False
        self.keep: int | None = None

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(BLOCK)
        if not chunk:
            self.eof = True
            return False
        if self.on_block is not None:
            self.on_block()
        cut = self.pos if self.keep is None else self.keep
        self.buf = self.buf[cut:] + chunk
        self.pos -= cut
        if self.keep is not None:
            self.keep = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), without consuming it."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self.fill():
                return ""

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def value(self, record: int) -> Any:
        """Decode the JSON value at the reading position. A value that ends at the end of the
        window may go on in the next block (a number, most often): it is decoded again with
        more text unless the file has ended."""
        self.peek()
        while True:
            try:
                value, end = _decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # more text may complete the value; but a malformed record must not make us
                # read the rest of a 2 GB file into memory looking for its end
                if len(self.buf) - self.pos < MAX_RECORD and self.fill():
                    continue
                where = "truncated" if exc.pos >= len(self.buf) - 1 else "malformed"
                raise ReadError(record, f"{where} JSON ({exc.msg})") from None
            if end == len(self.buf) and self.fill():
                continue
            self.pos = end
            return value


def records(path: Path, progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
    """(record number, decoded JSON value) for each record of the file, in file order.
    ``progress`` hears the bytes of the file read so far (compressed bytes of a gzip file)."""
    lines = _lines(path, progress)
    first = next(lines, None)
    if first is not None:  # JSON lines: the first line was one record
        yield first
        yield from lines
        return
    # not JSON lines, or a line the fast path would not take: from the start, as text
    raw = path.open("rb")
    head = raw.peek(2)[:2]
    binary: IO[bytes] = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw  # type: ignore[assignment]
    with raw, io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict") as f:
        on_block = None if progress is None else (lambda: progress(raw.tell()))
        with _errors():
            yield from _records(_Stream(f, on_block))


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError | PermissionError):
            raise
        raise ReadError(0, f"cannot be read as UTF-8 text or gzip ({exc})") from None


LINES_PER_REPORT = 4096  # progress is reported every this many lines


def _lines(path: Path, progress: Callable[[int], None] | None) -> Iterator[tuple[int, Any]]:
    """The records of a file of JSON lines, one ``orjson.loads`` per line. Yields nothing
    when the first line is not one JSON object that is not a Graph page (the caller then
    reads the file as text from the start); from a later line that is not one record, the
    rest of the file is read by :class:`_Stream`."""
    raw = path.open("rb")
    head = raw.peek(2)[:2]
    binary: IO[bytes] = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw  # type: ignore[assignment]
    with raw, binary, _errors():
        line = binary.readline(MAX_RECORD)
        if line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        if not isinstance(obj, dict) or isinstance(obj.get("value"), list):
            return  # the caller reads it as text, a page of Graph included
        yield 1, obj
        n = 1
        loads, readline = orjson.loads, binary.readline
        while line := readline(MAX_RECORD):
            if n % LINES_PER_REPORT == 0 and progress is not None:
                progress(raw.tell())
            try:
                obj = loads(line)
            except orjson.JSONDecodeError:
                if not line.strip():
                    continue  # a blank line between records
                f = io.TextIOWrapper(binary, encoding="utf-8", errors="strict")
                on_block = None if progress is None else (lambda: progress(raw.tell()))
                s = _Stream(f, on_block, line.decode("utf-8"))
                while s.peek() != "":
                    n += 1
                    yield n, s.value(n)
                return
            n += 1
            yield n, obj


def _records(s: _Stream) -> Iterator[tuple[int, Any]]:
    first = s.peek()
    if first == "":
        raise ReadError(0, "is empty: no sign-in records")
    if first == "[":
        s.pos += 1
        n = yield from _array(s, 0)
        _end(s, n)
        return
    if first != "{":
        raise ReadError(0, 'is not JSON: expected an array, a {"value": [...]} page or JSON lines')
    yield from _page_or_lines(s)


def _array(s: _Stream, n: int) -> Generator[tuple[int, Any], None, int]:
    """The elements of an array whose ``[`` has been read; returns the record count."""
    if s.take("]"):
        return n
    while True:
        n += 1
        yield n, s.value(n)
        if s.take("]"):
            return n
        if not s.take(","):
            problem = "truncated JSON" if s.peek() == "" else "malformed JSON (expected ',')"
            raise ReadError(n + (s.peek() != ""), problem)


def _page_or_lines(s: _Stream) -> Generator[tuple[int, Any], None, int]:
    """A top-level object: a Graph page when it has a key ``value`` holding an array, else
    the first of a file of JSON lines. Its keys are read one by one (keeping the text, so
    that a record can be read again as a record), so a page of any size streams."""
    s.keep = s.pos  # fill() moves it along with the text it keeps
    s.pos += 1
    first_key = True
    while True:
        if s.take("}"):
            break
        if not first_key and not s.take(","):
            break  # not an object we can walk; read it as a record below
        first_key = False
        if s.peek() != '"':
            break
        key = s.value(1)
        if not s.take(":"):
            break
        if key == "value" and s.peek() == "[":
            s.keep = None
            s.pos += 1
            n = yield from _array(s, 0)
            _rest_of_page(s, n)
            return n
        s.value(1)
    # no "value" array: JSON lines, starting again at the first object
    assert s.keep is not None
    s.pos, s.keep = s.keep, None
    n = 0
    while s.peek() != "":
        n += 1
        yield n, s.value(n)
    return n


def _rest_of_page(s: _Stream, n: int) -> None:
    """The keys after ``value`` (``@odata.nextLink``), then the end of the page and file."""
    while not s.take("}"):
        if not s.take(",") or s.peek() != '"':
            raise ReadError(n, "malformed JSON after the records of the page")
        s.value(n)
        if not s.take(":"):
            raise ReadError(n, "malformed JSON after the records of the page")
        s.value(n)
    _end(s, n)


def _end(s: _Stream, n: int) -> None:
    if s.peek() != "":
        raise ReadError(n, "unexpected text after the end of the JSON document")


def ahead(items: Iterator[T], depth: int = 2) -> Generator[T, None, None]:
    """The items of ``items``, produced by a thread of their own up to ``depth`` ahead of
    the consumer. An import receives chunks from its reading process (launcher/signins/
    reading.py) while the database stores the previous one (SQLite's and psycopg's C code let
    go of the GIL), so the two overlap; memory stays bounded by ``depth`` items. An error of
    the producer is raised in the consumer; when the consumer stops (closes this generator),
    so does the producer."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, raised there)
            put(("error", exc))
            return
        put(("end", None))

    thread = threading.Thread(target=produce, name="signin-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()

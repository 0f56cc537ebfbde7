"""Short reads on a worker's event loop, on PostgreSQL: the grid page's read of favourites and
recently used, the most frequent statement of all, without a thread.

Through the engine, that read cost a worker 0.40 ms of CPU a page: 0.13 ms handing it to a
thread and back, the rest SQLAlchemy's execution around psycopg. Over psycopg's own
``AsyncConnection`` on the event loop the same read costs 0.15 ms, and there is no thread to
compete for the interpreter lock (bench/README.md, bench_grid.py). Everything else keeps the
engine and its threads (launcher/db.py); SQLite, whose reads are calls into this process, too.

Why not psycopg_pool: a page can do without this read (the grid shows no favourites then), so
a database that is down must fail the read at once, as a refused connection does, rather than
make each page wait for a pool's reconnection loop; and these few connections need none of
its sizing, ageing or health checks. What they do need is here: at most ``size`` at once,
opened when first needed, and a connection found broken (a restarted server, a proxy's idle
time-out) closed together with the other idle ones, its read tried once more on a new one --
as :func:`launcher.db.retry_once` does for the engine's reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from launcher import db

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# A read of the grid takes about a millisecond; one that has not been answered in this time
# (a connection to open included, db.CONNECT_TIMEOUT) is given up, and the page goes without.
READ_TIMEOUT = 3.0
# libpq's: a connection to a server that went away without a word (a network cut, a NAT's idle
# time-out) is found out in seconds, not after the kernel's two hours of keepalive or fifteen
# minutes of retransmissions; ignored on a Unix socket
_TCP = {
    "connect_timeout": db.CONNECT_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms without an acknowledgement of data sent
}


class Unavailable(Exception):
    """The database could not answer a read (its cause, a psycopg.Error, says why)."""


class LoopReads:
    """At most ``size`` PostgreSQL connections of one event loop, for reads that run outside
    a transaction (autocommit, as db.reading). Made where the engine is; bound to the first
    loop that reads, and :meth:`usable` only there (a test client may run each request in a
    loop of its own: those reads go through the engine)."""

    def __init__(
        self,
        engine: sa.Engine,
        size: int = db.LOOP_READ_CONNECTIONS,
        timeout: float = READ_TIMEOUT,
    ) -> None:
        if db.is_sqlite(engine):
            raise ValueError("LoopReads is for PostgreSQL; SQLite's reads need no thread hop")
        _, params = engine.dialect.create_connect_args(engine.url)
        self._params: dict[str, Any] = {**params, **_TCP}
        self._size = size
        self.timeout = timeout  # seconds for a read, waiting for a connection included
        self._idle: list[psycopg.AsyncConnection[tuple[Any, ...]]] = []
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._abandoned: set[asyncio.Future[Any]] = set()  # reads given up, still ending

    def usable(self) -> bool:
        """True in the loop these connections belong to (the first to ask) until closed."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop, self._slots = loop, asyncio.Semaphore(self._size)
        return self._loop is loop and not self._closed

    async def rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[tuple[Any, ...]]:
        """The rows of ``sql`` (psycopg's ``%(name)s`` parameters). Raises Unavailable when
        the database cannot answer, or not within ``timeout``; a connection lost since its
        last read is replaced and the read tried once more."""
        import psycopg  # noqa: PLC0415 (PostgreSQL only: SQLite never imports the driver)

        if not self.usable():
            raise RuntimeError("LoopReads used outside its event loop, or after close()")
        read = asyncio.ensure_future(self._rows(sql, params))
        try:
            done, _ = await asyncio.wait((read,), timeout=self.timeout)
        except BaseException:  # the page was cancelled (its client went away): so is its read
            read.cancel()
            raise
        if not done:
            # psycopg, cancelled in the middle of a statement, first asks the server to cancel
            # it and waits for that, seconds when the network is cut: the page goes on without
            # the rows, and the read ends (closing its connection) on its own time
            read.cancel()
            self._abandoned.add(read)
            read.add_done_callback(self._forget)
            raise Unavailable(f"no answer within {self.timeout:g} s")
        try:
            return read.result()
        except psycopg.Error as exc:
            raise Unavailable(str(exc)) from exc

    def _forget(self, read: asyncio.Future[Any]) -> None:
        self._abandoned.discard(read)
        if not read.cancelled():
            read.exception()  # retrieved: asyncio would log it as never retrieved

    async def _rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[tuple[Any, ...]]:
        assert self._slots is not None  # set by usable()
        async with self._slots:
            try:
                return await self._read(sql, params)
            except _Lost as lost:
                log.info("database connection lost; trying once more: %s", lost.error)
            try:
                return await self._read(sql, params)
            except _Lost as lost:
                raise lost.error from None

    async def _read(self, sql: str, params: Mapping[str, Any]) -> Sequence[tuple[Any, ...]]:
        import psycopg  # noqa: PLC0415 (PostgreSQL only: SQLite never imports the driver)

        if self._closed:  # waited for a slot while the worker stopped
            raise Unavailable("the worker is stopping")
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            cursor = await conn.execute(sql, params)
            rows = await cursor.fetchall()
        except psycopg.Error as exc:
            lost = conn.closed or conn.broken
            await _close(conn)
            if not lost:
                raise
            # a restarted server closed the idle ones too: do not try them one by one
            await self._close_idle()
            raise _Lost(exc) from exc
        except BaseException:  # cancelled mid-read: the connection's state is unknown
            await _close(conn)
            raise
        if self._closed:
            await _close(conn)
        else:
            self._idle.append(conn)
        return rows

    async def _connect(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        import psycopg  # noqa: PLC0415

        return await psycopg.AsyncConnection.connect(autocommit=True, **self._params)

    async def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close(conn)

    async def close(self) -> None:
        """Close the idle connections; one in use is closed when its read ends."""
        self._closed = True
        await self._close_idle()


class _Lost(Exception):
    """The connection broke (``error`` says how): worth one more try on a new connection."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


async def _close(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection may fail; it is gone
        await conn.close()

"""The engine and migrations. SQLite runs in WAL mode; PostgreSQL through psycopg 3."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from launcher.errors import ConfigError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"

# Connections a worker may hold at once on PostgreSQL (docs/SCALING.md). Request handlers reach
# the database from threads (anyio's), and all but the report pages hold a connection for a
# few milliseconds: 8 cover hundreds of requests a second; a ninth waits for one (up to the
# pool's 30 s) rather than open yet another. On top, the worker's own background threads can
# each hold one: the revocation poll, the registry and partition jobs (a lock connection and a
# working one, launcher/jobs.py) and /readyz's ping.
WORKER_DB_THREADS = 8
# Of those, the grid page's read of favourites and recently used takes at most this many at
# once (launcher/views/portal.py; on SQLite, and on PostgreSQL where the app runs without its
# lifespan, as a test client may). It is most of the traffic and a short read (~0.3 ms of a
# thread): 3 threads keep up with what 8 did, and with 8 runnable threads contending for a
# worker's interpreter lock beside its event loop, 1-2 % of pages waited 0.5-1.5 s for it (64
# connections on PostgreSQL: p99 ~400 ms against ~65 ms with 3; bench/README.md, bench_grid).
GRID_READ_THREADS = 3
# On PostgreSQL that read runs on the worker's event loop instead, over connections of its own
# (launcher/loop_reads.py): a read holds one for ~0.2 ms, so three keep up with a worker's CPU.
LOOP_READ_CONNECTIONS = 3
BACKGROUND_CONNECTIONS = 4
# A PostgreSQL connection that sat in the pool this long is pinged before it is handed out (a
# server restart or a proxy's idle timeout may have closed it); a busy worker's connections
# come back within milliseconds and are handed out without that round trip (_ping_if_idle).
PING_AFTER_IDLE = 10.0
CONNECT_TIMEOUT = 2  # seconds: a database that does not answer must fail fast (make_engine)
RECYCLE_AFTER = 1800  # seconds; then a connection is closed and opened anew at its checkout
_IDLE_SINCE = "launcher_idle_since"  # in a pool record's info

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")


def connections_per_worker(threads: int = WORKER_DB_THREADS) -> int:
    """The most PostgreSQL connections one worker opens: its pool plus the overflow, and the
    event loop's own for the grid. With the event writer's one, a host needs
    ``workers * (this + 1)``, a cluster that times replicas, below the server's
    max_connections."""
    return threads + BACKGROUND_CONNECTIONS + LOOP_READ_CONNECTIONS


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses no committed data
    cursor.execute("PRAGMA busy_timeout=3000")  # then fail, and the events are spooled
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: reports and rollup rebuilds read a lot
    cursor.execute("PRAGMA temp_store=MEMORY")  # GROUP BY sorts stay off the disk
    cursor.close()


def make_engine(url: str, threads: int = WORKER_DB_THREADS) -> sa.Engine:
    """Create the engine for ``url``; SQLite gets its directory made and WAL switched on.

    On PostgreSQL the pool holds ``threads`` connections (the threads of a worker that use the
    database at once) and lets :data:`BACKGROUND_CONNECTIONS` more open for a while."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"LAUNCHER_DATABASE_URL is not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise ConfigError("for PostgreSQL use a postgresql+psycopg:// URL (psycopg 3)")
    engine = sa.create_engine(
        url,
        pool_size=threads,
        max_overflow=BACKGROUND_CONNECTIONS,
        pool_recycle=RECYCLE_AFTER,
        # a database that does not answer must fail fast: events are spooled meanwhile, and
        # shutdown has to finish within 10 s
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )
    # Not pool_pre_ping: it costs a round trip on every checkout, three per grid page.
    sa.event.listen(engine, "checkin", _mark_idle)
    sa.event.listen(engine, "checkout", _ping_if_idle(engine.dialect))
    return engine


def _mark_idle(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dialect: sa.Dialect) -> Callable[[Any, Any, Any], None]:
    """A checkout listener: ping a connection that was idle for :data:`PING_AFTER_IDLE`; one
    that does not answer makes the pool drop every connection it holds (a restarted server
    closed them all) and open a new one. A connection that breaks while in use is dropped by
    SQLAlchemy with the others of the pool too, and :func:`retry_once` repeats a read once."""

    def listener(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_connection)
            dbapi_connection.rollback()  # hand it out without the ping's transaction
        except Exception as exc:  # a closed socket says so in several ways
            log.info("a pooled database connection is gone (%s); reconnecting", exc)
            raise sa.exc.InvalidatePoolError() from exc

    return listener


def retry_once(read: Callable[[], T]) -> T:
    """``read()``, and once more when its connection turned out to be broken (the database
    restarted while this worker held it): the pool has dropped the broken connections by then.
    Only for reads, or for writes that are whole transactions of their own."""
    try:
        return read()
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.info("database connection lost; trying once more: %s", exc.orig)
        return read()


@contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for reads that need no transaction around them: each statement runs on
    its own (autocommit), so PostgreSQL is spared a BEGIN and a ROLLBACK, two round trips and
    about half the server's work for the grid page's two small reads (bench/README.md,
    bench_grid.py). Not for statements that must see one snapshot together. On SQLite, where
    a BEGIN costs no round trip, a plain connection: SQLAlchemy switches SQLite's isolation
    level with PRAGMA statements at every checkout and checkin, which cost more."""
    if is_sqlite(engine):
        with engine.connect() as conn:
            yield conn
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


def _sqlite_begin(conn: sa.Connection) -> None:
    # A writer that reads first must hold the write lock from the start, or a concurrent
    # commit turns its read-then-write into SQLITE_BUSY_SNAPSHOT.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """``engine.begin()`` for a transaction that reads and then writes: on SQLite it holds the
    write lock from the start (BEGIN IMMEDIATE, waiting up to the busy timeout), so that a
    flush committing in between cannot fail it with SQLITE_BUSY_SNAPSHOT at once. A transaction
    whose first statement writes needs only ``engine.begin()`` (tests/test_db.py)."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            yield conn


@contextmanager
def serialized_write(engine: sa.Engine, lock_id: int) -> Iterator[sa.Connection]:
    """A transaction that no other writer holding ``lock_id`` runs beside, on any worker.

    SQLite: BEGIN IMMEDIATE (one writer at a time anyway). PostgreSQL: a transaction-scoped
    advisory lock. Used where a transaction reads rollups and then updates them.
    """
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            if not is_sqlite(engine):
                # a writer stuck behind a long rebuild gives up (and spools) instead of
                # waiting for ever; SQLite's busy_timeout does the same there
                conn.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
            yield conn


def insert_rows(
    conn: sa.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """``head VALUES (…), (…), … tail`` in as few statements as the driver allows.

    One statement for many rows, not executemany(): SQLite's driver releases and re-takes the
    GIL for every row it steps through, and the event loop thread, which wants the GIL after
    every send(), turns each of those into a wait. ``head`` and ``tail`` are SQL written by us;
    every value is a bound parameter.
    """
    if not rows:
        return
    width = len(rows[0])
    row = "(" + ", ".join([placeholder(conn)] * width) + ")"
    per_statement = max(1, 30_000 // width)  # SQLite allows 32 766 parameters, PostgreSQL 65 535
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = f"{head} VALUES {', '.join([row] * len(chunk))} {tail}"
        execute(conn, sql, [value for r in chunk for value in r])


# psycopg turns "%s" into PostgreSQL's "$1" by a regular expression in Python, and keeps the
# result only for statements of at most 50 parameters and 4 KB (psycopg/_queries.py): a batch's
# multi-row INSERT or key lookup, with hundreds to thousands of parameters, was parsed anew every
# time, two thirds of the event writer's CPU (bench/README.md, bench_scale.py).
_PARSED_BY_PSYCOPG = 50


def execute(
    conn: sa.Connection, sql: str, params: Sequence[Any]
) -> sa.CursorResult[*tuple[Any, ...]]:
    """``conn.exec_driver_sql(sql, params)`` for SQL written with :func:`placeholder`'s
    markers, one per value. On PostgreSQL a statement with many parameters is sent with
    numbered ones ("$1") through psycopg's RawCursor, which takes them as they are."""
    if (
        conn.dialect.name != "postgresql"
        or len(params) <= _PARSED_BY_PSYCOPG
        # a server-side cursor is made by name, whatever the connection's cursor class
        or conn.get_execution_options().get("stream_results")
    ):
        return conn.exec_driver_sql(sql, tuple(params))
    numbered = _numbered(sql)
    if numbered is None:
        return conn.exec_driver_sql(sql, tuple(params))
    import psycopg  # noqa: PLC0415 (PostgreSQL only)

    # the connection's own cursor class for this one statement: SQLAlchemy makes the cursor,
    # so its error handling (and a lost connection's invalidation) stays as it is
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    usual = driver.cursor_factory
    driver.cursor_factory = psycopg.RawCursor
    try:
        return conn.exec_driver_sql(numbered, tuple(params))
    finally:
        driver.cursor_factory = usual


# a batch's full chunks have the same length (each statement up to ~200 KB: a few only)
@functools.lru_cache(maxsize=8)
def _numbered(sql: str) -> str | None:
    """``sql`` with its "%s" markers numbered "$1", "$2", ... and "%%" (psycopg's escaped
    "%") as "%"; None for any other "%", or a "$": then psycopg's parser it is."""
    if "$" in sql or "%%s" in sql:
        return None
    rest = sql.replace("%%", "")
    if rest.count("%") != rest.count("%s"):
        return None
    pieces = sql.replace("%%", "%").split("%s")
    numbered = [f"{piece}${i}" for i, piece in enumerate(pieces[:-1], 1)]
    return "".join(numbered) + pieces[-1]


def placeholder(conn: sa.Connection) -> str:
    """The driver's parameter marker, for SQL sent to the driver directly (sqlite3: qmark,
    psycopg: format)."""
    return "?" if conn.dialect.name == "sqlite" else "%s"


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _alembic_config(engine: sa.Engine) -> Config:
    # Alembic only when migrating or checking migrations: not in every worker's memory
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: sa.Engine, revision: str = "head", timezone: str | None = None) -> None:
    """Apply pending migrations (``launcher db upgrade``). ``timezone``, the portal's, places
    the month partitions' edges where the purge cuts (migration 0013; UTC when not given)."""
    from alembic import command

    config = _alembic_config(engine)
    config.attributes["timezone"] = timezone
    command.upgrade(config, revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Undo migrations down to ``revision`` (``base``: an empty database). Tests only."""
    from alembic import command

    command.downgrade(_alembic_config(engine), revision)


def pending_migrations(engine: sa.Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(engine))
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current != set(script.get_heads())

"""launcher/loop_reads.py: the grid's read on the event loop, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from launcher import db, personal
from launcher.loop_reads import LoopReads, Unavailable
from tests.helpers import STAFF, InProcess

pytestmark = pytest.mark.postgres

PID = "SELECT pg_backend_pid()"


@pytest.fixture
def engine(postgres_server: str) -> Iterator[sa.Engine]:
    made = db.make_engine(postgres_server)
    yield made
    made.dispose()


def _alive(engine: sa.Engine, pids: set[int]) -> set[int]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT pid FROM pg_stat_activity").scalars()
        return pids & {int(pid) for pid in rows}


def _terminate(engine: sa.Engine, pids: set[int]) -> None:
    with engine.connect() as conn:
        for pid in pids:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        conn.commit()


@pytest.mark.anyio
async def test_reads_share_a_few_connections(engine: sa.Engine) -> None:
    """Twelve reads at once on three connections: each connection is opened once and kept."""
    reads = LoopReads(engine, size=3)
    assert reads.usable()
    rows = await asyncio.gather(
        *(reads.rows("SELECT pg_backend_pid(), pg_sleep(0.05)", {}) for _ in range(12))
    )
    pids = {r[0][0] for r in rows}
    assert len(pids) == 3, pids
    assert {(await reads.rows(PID, {}))[0][0] for _ in range(6)} <= pids  # kept, not reopened
    # parameters in psycopg's form, as the grid's statement has them
    assert await reads.rows("SELECT %(a)s::int + 1", {"a": 41}) == [(42,)]
    await reads.close()
    assert not reads.usable()
    assert await asyncio.to_thread(_alive, engine, pids) == set()  # closed, not left open


@pytest.mark.anyio
async def test_a_lost_connection_is_replaced_and_the_read_tried_once_more(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A restarted server closed every connection: the first read finds out, the idle ones
    go with it, and the read is answered on a new connection."""
    reads = LoopReads(engine, size=3)
    first = {r[0][0] for r in await asyncio.gather(*(reads.rows(PID, {}) for _ in range(3)))}
    await asyncio.to_thread(_terminate, engine, first)
    caplog.set_level(logging.INFO, logger="launcher.loop_reads")
    [(pid,)] = await reads.rows(PID, {})
    assert pid not in first
    assert "database connection lost; trying once more" in caplog.text
    caplog.clear()
    assert await reads.rows(PID, {}) == [(pid,)]  # the idle broken ones were dropped at once
    assert "trying once more" not in caplog.text
    await reads.close()


@pytest.mark.anyio
async def test_an_error_in_the_statement_is_not_tried_again(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    reads = LoopReads(engine, size=1)
    [(before,)] = await reads.rows(PID, {})
    caplog.set_level(logging.INFO, logger="launcher.loop_reads")
    with pytest.raises(Unavailable, match="division by zero") as raised:
        await reads.rows("SELECT 1 / 0", {})
    assert isinstance(raised.value.__cause__, psycopg.errors.DivisionByZero)
    assert "trying once more" not in caplog.text
    [(after,)] = await reads.rows(PID, {})  # and the next read is answered
    assert after != before  # on a new connection: one that failed is never handed out again
    await reads.close()


@pytest.mark.anyio
async def test_a_database_that_is_down_fails_the_read(free_tcp_port: int) -> None:
    """Nothing listens: the read fails with the driver's reason, as Unavailable, and the next
    one tries to connect again."""
    dead = db.make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_tcp_port}/none")
    reads = LoopReads(dead)
    for _ in range(2):
        with pytest.raises(Unavailable, match="refused") as raised:
            await reads.rows(PID, {})
        assert isinstance(raised.value.__cause__, psycopg.OperationalError)
    await reads.close()
    dead.dispose()


@pytest.mark.anyio
async def test_a_cancelled_read_closes_its_connection(engine: sa.Engine) -> None:
    """A page cancelled mid-read (its client went away) leaves its connection in an unknown
    state: it is closed, never handed to the next page."""
    reads = LoopReads(engine, size=1)
    [(pid,)] = await reads.rows(PID, {})
    slow = asyncio.create_task(reads.rows("SELECT pg_sleep(30)", {}))
    await asyncio.sleep(0.2)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    [(after,)] = await reads.rows(PID, {})
    assert after != pid
    for _ in range(50):  # and the server's side of it ends: the statement stopped, not left
        if not await asyncio.to_thread(_alive, engine, {pid}):
            break
        await asyncio.sleep(0.1)
    assert not await asyncio.to_thread(_alive, engine, {pid})
    await reads.close()


def test_only_the_loop_that_read_first_uses_them(engine: sa.Engine) -> None:
    """A test client may run each request in a loop of its own: there the page reads through
    the engine, as on SQLite."""
    reads = LoopReads(engine)

    async def usable() -> bool:
        return reads.usable()

    assert asyncio.run(usable())
    assert not asyncio.run(usable())
    with pytest.raises(ValueError, match="PostgreSQL"):
        LoopReads(db.make_engine("sqlite://"))


def test_the_grid_shows_without_favourites_when_the_database_is_down(
    make_portal: Callable[..., InProcess],
    free_tcp_port: int,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The portal's own read on the loop, against a database that does not answer: the page
    is served, with its tiles and without the person's rows, and the reason is logged."""
    portal = make_portal(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_tcp_port}/none"
    )
    reads: Any = portal.app.state.loop_reads
    assert isinstance(reads, LoopReads)

    def through_a_thread(*_: object) -> None:
        raise AssertionError("the grid read through the engine, not on the event loop")

    monkeypatch.setattr(personal, "for_grid", through_a_thread)
    page = portal.get("/", portal.cookie(STAFF))
    assert page.status_code == 200
    assert 'class="tile' in page.text
    assert "favourites and recent apps unavailable" in caplog.text
    assert "refused" in caplog.text


@pytest.mark.anyio
async def test_a_read_that_gets_no_answer_is_given_up(engine: sa.Engine) -> None:
    """A server that stops answering (a network cut, a stuck backend) must not hold the pages:
    after the time-out the read fails as Unavailable and its connection is closed."""
    reads = LoopReads(engine, size=1, timeout=0.5)
    [(pid,)] = await reads.rows(PID, {})
    with pytest.raises(Unavailable, match="no answer within 0.5 s"):
        await reads.rows("SELECT pg_sleep(30)", {})
    [(after,)] = await reads.rows(PID, {})  # the next page is answered, on a new connection
    assert after != pid
    await reads.close()


@pytest.mark.anyio
async def test_the_page_does_not_wait_for_a_statement_that_will_not_stop(
    engine: sa.Engine,
) -> None:
    """psycopg, cancelled mid-statement, asks the server to cancel it and waits for the
    statement to end (or for the cancel request: seconds when the network is cut). The page
    must not wait with it: a statement that goes on for 3 s after its cancel still fails the
    read at the 0.5 s time-out, and the next read is answered once it has ended."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION launcher_test_stubborn() RETURNS int AS $$ BEGIN "
            "PERFORM pg_sleep(30); RETURN 1; "
            "EXCEPTION WHEN query_canceled THEN PERFORM pg_sleep(3); RETURN 2; "
            "END $$ LANGUAGE plpgsql"
        )
    reads = LoopReads(engine, size=2, timeout=0.5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(Unavailable, match="no answer within 0.5 s"):
        await reads.rows("SELECT launcher_test_stubborn()", {})
    waited = asyncio.get_running_loop().time() - started
    assert waited < 2.5, f"the page waited {waited:.1f} s for the cancelled statement"
    assert await reads.rows("SELECT 1", {}) == [(1,)]  # on the other connection
    await reads.close()

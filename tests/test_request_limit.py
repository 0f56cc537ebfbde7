"""The daily limit on requests for missing apps holds under parallel requests, on SQLite and
PostgreSQL: counting and adding are one step per person."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from launcher import app_requests, db
from launcher.errors import TooManyRequests
from launcher.models import AppRequest, table

PARALLEL = 24


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = db.make_engine(database_url)
    yield eng
    eng.dispose()


def _rows(engine: sa.Engine, user_id: str) -> int:
    t = table(AppRequest)
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(t).where(t.c.user_id == user_id)
        return int(conn.execute(query).scalar_one())


def test_parallel_requests_cannot_pass_the_daily_limit(engine: sa.Engine) -> None:
    barrier = threading.Barrier(PARALLEL)
    outcomes: list[str] = []
    lock = threading.Lock()

    def ask(n: int) -> None:
        barrier.wait()
        try:
            app_requests.add(engine, "racer", None, f"App number {n}")
            outcome = "added"
        except TooManyRequests:
            outcome = "refused"
        except Exception as exc:  # any other failure is a failure of the test
            outcome = f"error: {exc!r}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(set(outcomes)) == ["added", "refused"], outcomes
    assert outcomes.count("added") == app_requests.PER_DAY
    assert _rows(engine, "racer") == app_requests.PER_DAY
    # someone else is not held up by the racer's limit
    app_requests.add(engine, "bystander", None, "App number 1")
    assert _rows(engine, "bystander") == 1

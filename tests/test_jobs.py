"""Jobs that run once per cluster (launcher/jobs.py): on PostgreSQL two processes start the same
job and exactly one does the work; the digest and the purge commands skip, exit 0, while
another run holds the job; SQLite runs every caller."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from launcher import db, jobs
from launcher.engage import subscriptions
from tests.conftest import ROOT, free_port
from tests.helpers import make_user
from tests.test_engage_digest import Inbox

SPAWN = multiprocessing.get_context("spawn")


def _job(url: str, name: str, barrier: Any, done: Any, results: Any) -> None:
    """One replica: start together with the other, do the work if the job is ours, and hold
    it until the other has tried."""
    engine = db.make_engine(url)
    barrier.wait(timeout=60)
    with jobs.run_once(engine, name) as mine:
        if mine:
            with engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO job_work (pid) VALUES (:p)"), {"p": os.getpid()})
            done.wait(timeout=60)
        else:
            done.set()
    results.put(mine)
    engine.dispose()


def _die_holding(url: str, name: str, held: Any) -> None:
    engine = db.make_engine(url)
    with jobs.run_once(engine, name) as mine:
        assert mine
        held.set()
        os._exit(3)  # no unlock, no clean-up: as a pod that is killed


@pytest.fixture
def pg(postgres_server: str) -> Iterator[str]:
    engine = db.make_engine(postgres_server)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS job_work")
        conn.exec_driver_sql("CREATE TABLE job_work (pid INTEGER)")
    yield postgres_server
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE job_work")
    engine.dispose()


def _work(url: str) -> int:
    engine = db.make_engine(url)
    with engine.connect() as conn:
        count = int(conn.execute(sa.text("SELECT COUNT(*) FROM job_work")).scalar_one())
    engine.dispose()
    return count


@pytest.mark.postgres
def test_two_processes_start_the_job_and_exactly_one_does_it(pg: str) -> None:
    barrier, done, results = SPAWN.Barrier(2), SPAWN.Event(), SPAWN.Queue()
    args = (pg, "test-job", barrier, done, results)
    procs = [SPAWN.Process(target=_job, args=args) for _ in "ab"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=90)
        assert proc.exitcode == 0
    assert sorted(results.get(timeout=5) for _ in procs) == [False, True]
    assert _work(pg) == 1
    engine = db.make_engine(pg)
    with jobs.run_once(engine, "test-job") as mine:  # released when the job ended
        assert mine
    engine.dispose()


@pytest.mark.postgres
def test_a_process_that_dies_holding_the_job_does_not_block_the_next_run(pg: str) -> None:
    held = SPAWN.Event()
    proc = SPAWN.Process(target=_die_holding, args=(pg, "test-crash", held))
    proc.start()
    assert held.wait(timeout=60)
    proc.join(timeout=60)
    assert proc.exitcode == 3
    engine = db.make_engine(pg)
    with jobs.run_once(engine, "test-crash") as mine:  # its session, and the lock, are gone
        assert mine
    engine.dispose()


def test_sqlite_runs_every_caller(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    with jobs.run_once(engine, jobs.PURGE) as first, jobs.run_once(engine, jobs.PURGE) as second:
        assert first and second
    engine.dispose()


def test_lock_ids_are_stable_and_distinct() -> None:
    ids = {jobs.lock_id(n) for n in (jobs.PURGE, jobs.DIGEST, jobs.PARTITIONS)}
    assert len(ids) == 3
    assert all(-(2**63) <= i < 2**63 for i in ids)
    assert jobs.lock_id(jobs.PURGE) == jobs.lock_id("purge")


# --- the commands, as a CronJob on two replicas runs them --------------------------------


class SlowInbox(Inbox):
    """Takes a while per mail, so that a second run starts while the first is sending."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(0.1)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp() -> Iterator[Callable[[Inbox], Controller]]:
    started: list[Controller] = []

    def start(inbox: Inbox) -> Controller:
        controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


def _environment(tmp_path: Path, url: str, smtp_port: int) -> dict[str, str]:
    apps = tmp_path / "apps.yaml"
    apps.write_text(
        "apps:\n  - {id: roster, name: Roster, url: 'https://roster.example/',"
        " new_until: 2999-12-31}\n"
    )
    return {
        "LAUNCHER_SECRET_KEY": "jobs-digest-secret-key-that-is-long-enough-012",
        "LAUNCHER_DATABASE_URL": url,
        "LAUNCHER_APPS_FILE": str(apps),
        "LAUNCHER_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "LAUNCHER_MAIL_FROM": "portal@zorg.example",
    }


def _subscribe(url: str, count: int) -> list[str]:
    from tests.conftest import _reset

    _reset(url)
    engine = db.make_engine(url)
    people = [make_user(f"p{n:02d}", "staff", email=f"p{n:02d}@zorg.example") for n in range(count)]
    for person in people:
        subscriptions.subscribe(engine, person, "en")
    engine.dispose()
    return [f"p{n:02d}@zorg.example" for n in range(count)]


@pytest.mark.postgres
def test_send_digest_skips_while_another_run_holds_it(
    postgres_server: str,
    smtp: Callable[[Inbox], Controller],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from launcher.cli import main

    inbox = Inbox()
    server = smtp(inbox)
    addresses = _subscribe(postgres_server, 3)
    for name, value in _environment(tmp_path, postgres_server, server.port).items():
        monkeypatch.setenv(name, value)
    engine = db.make_engine(postgres_server)
    with jobs.run_once(engine, jobs.DIGEST) as mine:  # another replica's run
        assert mine
        assert main(["send-digest"]) == 0
        assert capsys.readouterr().out == "digest: another run is in progress; nothing sent\n"
        assert main(["db", "purge"]) == 0  # a different job: not held
        capsys.readouterr()
    assert inbox.messages == []
    assert main(["send-digest"]) == 0
    assert sorted(m["To"] for m in inbox.messages) == addresses
    with jobs.run_once(engine, jobs.PURGE):
        assert main(["db", "purge"]) == 0
        said = capsys.readouterr().out
        assert said.endswith("purge: another run is in progress; nothing deleted\n")
    engine.dispose()


@pytest.mark.postgres
def test_two_send_digest_commands_at_once_mail_each_person_once(
    postgres_server: str, smtp: Callable[[Inbox], Controller], tmp_path: Path
) -> None:
    inbox = SlowInbox()
    server = smtp(inbox)
    addresses = _subscribe(postgres_server, 30)  # 3 s of sending: the runs overlap
    env = {**os.environ, **_environment(tmp_path, postgres_server, server.port)}
    env["PYTHONPATH"] = str(ROOT)
    procs = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "launcher", "send-digest"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert sorted(m["To"] for m in inbox.messages) == addresses  # nobody twice
    said = " ".join(out for out, _ in outputs)
    assert "sent 30" in said or ("sent" in said and "already sent" in said)

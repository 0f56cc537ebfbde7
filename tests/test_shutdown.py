"""SIGTERM under load: `launcher serve` records every launch it answered, then exits 0 in time.

The portal runs as a real subprocess (``python -m launcher serve``), on SQLite and on the real
PostgreSQL; a few client threads launch apps as fast as they can while SIGTERM arrives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from launcher.auth.session import Revocations, SessionCodec
from launcher.auth.user import User, pseudonym
from launcher.settings import load_settings
from tests.conftest import EXAMPLE_APPS, SECRET, free_port

ISSUER = "http://127.0.0.1:9/issuer"  # never contacted: a launch does not talk to the provider
CLIENTS = 8  # load generator threads
LOAD_BEFORE_SIGTERM = 1.5  # seconds
EXIT_LIMIT = 10  # seconds; README: on SIGTERM the portal exits within 10 s


def _env(base_url: str, database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAUNCHER_")}
    env.update(
        LAUNCHER_BASE_URL=base_url,
        LAUNCHER_SECRET_KEY=SECRET,
        LAUNCHER_DATABASE_URL=database_url,
        LAUNCHER_APPS_FILE=str(EXAMPLE_APPS),
        LAUNCHER_SPOOL_DIR=str(tmp_path / "spool"),
        LAUNCHER_OIDC_ISSUER=ISSUER,
        LAUNCHER_OIDC_CLIENT_ID="launcher-test",
        LAUNCHER_OIDC_CLIENT_SECRET="launcher-test-secret",
    )
    return env


def _staff_cookie(base_url: str) -> tuple[str, str]:
    """A session cookie for a user in group "staff", signed like the portal signs it."""
    settings = load_settings(secret_key=SECRET, base_url=base_url, oidc_issuer=ISSUER)
    codec = SessionCodec(settings, Revocations(sa.create_engine("sqlite://")))
    user = User(
        user_id=pseudonym(settings.pseudonym_secret(), ISSUER, "staff-1"),
        sub="staff-1",
        name="Sanne de Vries",
        email="sanne@example.org",
        department="nursing",
        groups=("staff",),
    )
    return settings.session_cookie, codec.dumps(codec.new(user, op_sid=None))


@contextlib.contextmanager
def _serve(
    tmp_path: Path, database_url: str, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``launcher serve`` as a subprocess, once it answers; its output in tmp_path/portal.log."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "portal.log"
    with log.open("wb") as out:  # a file, not a pipe: nobody reads a pipe until the end
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_env(base_url, database_url, tmp_path) | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"portal exited during start-up:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"portal did not start:\n{log.read_text()}"
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield proc, base_url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def portal(tmp_path: Path, database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with _serve(tmp_path, database_url) as served:
        yield served


def _launch_until_gone(
    url: str, cookie: tuple[str, str], stop: threading.Event, outcomes: Counter[str]
) -> None:
    """Launch over and over (keep-alive) until the server is gone or ``stop`` is set."""
    with httpx.Client(cookies=dict([cookie]), timeout=5, follow_redirects=False) as client:
        while not stop.is_set():
            try:
                status = client.get(url).status_code
            except httpx.TransportError:
                outcomes["transport error"] += 1  # refused or closed: nothing was answered
                if stop.wait(0.01):
                    return
                continue
            outcomes[str(status)] += 1  # this thread's own Counter; merged at the end


def test_sigterm_under_load_loses_no_launch(
    portal: tuple[subprocess.Popen[bytes], str], database_url: str
) -> None:
    proc, base_url = portal
    cookie = _staff_cookie(base_url)
    url = f"{base_url}/launch/google-workspace"
    with httpx.Client(cookies=dict([cookie])) as client:
        first = client.get(url)
    assert first.status_code == 303, "the minted session should launch"
    assert first.headers["location"].startswith("https://accounts.google.com/")

    stop = threading.Event()
    per_thread: list[Counter[str]] = [Counter() for _ in range(CLIENTS)]
    threads = [
        threading.Thread(target=_launch_until_gone, args=(url, cookie, stop, outcomes))
        for outcomes in per_thread
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(LOAD_BEFORE_SIGTERM)
        assert sum(c["303"] for c in per_thread) > 0, "no load reached the portal"
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            code = proc.wait(timeout=EXIT_LIMIT + 5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the portal did not exit within {EXIT_LIMIT + 5} s of SIGTERM")
        took = time.monotonic() - sent
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)

    outcomes: Counter[str] = sum(per_thread, Counter())
    assert took <= EXIT_LIMIT, f"exit took {took:.1f} s"
    assert code == 0, f"exit code {code}"
    assert set(outcomes) <= {"303", "transport error"}, outcomes
    answered = outcomes["303"] + 1  # + the check above
    assert outcomes["transport error"] > 0, "SIGTERM should have arrived mid-load"
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM launch_event")).scalar_one()
    finally:
        engine.dispose()
    assert rows == answered, f"{answered} launches answered with 303, {rows} recorded"


@pytest.mark.parametrize("setting", [None, "true"])
def test_access_log_only_when_asked_for(
    tmp_path: Path, sqlite_url: str, setting: str | None
) -> None:
    """No request lines by default (docs/PRIVACY.md); LAUNCHER_ACCESS_LOG=true writes them."""
    env = {} if setting is None else {"LAUNCHER_ACCESS_LOG": setting}
    with _serve(tmp_path, sqlite_url, **env) as (proc, base_url):
        with httpx.Client(cookies=dict([_staff_cookie(base_url)])) as client:
            assert client.get(f"{base_url}/launch/teams").status_code == 303
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_LIMIT + 5) == 0
    log = (tmp_path / "portal.log").read_text()
    assert "Application startup complete" in log  # the log itself is there
    assert ('"GET /launch/teams HTTP/1.1" 303' in log) == (setting == "true"), log

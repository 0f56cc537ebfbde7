"""``launcher serve --workers 2``: one scrape of /metrics shows every worker's counters summed
(prometheus-client's multiprocess mode, launcher/metrics.py and launcher/serve.py), a worker
that dies keeps its counts in the sum and loses its gauges, and the directory goes at exit.
Each worker adds its launches and request times to its file once a second: the test waits for
that before it counts.

The portal runs as a real subprocess; launches come over many connections so that both workers
answer some (checked in the workers' own files, not assumed)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from tests.conftest import free_port
from tests.test_shutdown import _env, _staff_cookie

pytestmark = pytest.mark.slow
TOKEN = "prometheus-scrape-token-0123456789abcdef"
APP = "google-workspace"  # in EXAMPLE_APPS, for group staff


@contextlib.contextmanager
def _serve(tmp_path: Path, database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "portal.log"
    env = _env(base_url, database_url, tmp_path) | {"LAUNCHER_METRICS_TOKEN": TOKEN}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launcher", "serve", "--port", str(port), "--workers", "2"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"portal exited during start-up:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"portal did not start:\n{log.read_text()}"
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code in (200, 503):
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield proc, base_url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _launches_by_pid(directory: Path) -> dict[int, float]:
    """Each worker's launch count, read from its own file in the multiprocess directory."""
    found: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rpartition("_")[2])
        total = sum(
            value
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
            if '"launcher_launches_total"' in key
        )
        found[pid] = total
    return found


def _flushed(directory: Path, answered: int) -> dict[int, float]:
    """_launches_by_pid once the workers' files hold every launch answered: each worker adds
    its counts to its file every second (launcher/metrics.py, Metrics.flush), not at once."""
    deadline = time.monotonic() + 10
    while True:
        by_pid = _launches_by_pid(directory)
        total = sum(by_pid.values())
        assert total <= answered, by_pid  # never more than were answered
        if total == answered:
            return by_pid
        assert time.monotonic() < deadline, f"{total} of {answered} launches counted: {by_pid}"
        time.sleep(0.2)


def _launch(base_url: str, cookie: tuple[str, str], count: int) -> int:
    """``count`` launches, each on a new connection (so the kernel spreads them)."""
    answered = 0
    for _ in range(count):
        headers = {"Cookie": f"{cookie[0]}={cookie[1]}", "Connection": "close"}
        resp = httpx.get(f"{base_url}/launch/{APP}", headers=headers, timeout=10)
        assert resp.status_code == 303, resp.text
        answered += 1
    return answered


def _scrape(base_url: str) -> str:
    resp = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert resp.status_code == 200
    return resp.text


def _value(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in the scrape"
    return float(match[1])


def test_one_scrape_sums_every_worker(tmp_path: Path, sqlite_url: str) -> None:
    with _serve(tmp_path, sqlite_url) as (proc, base_url):
        directories = list((tmp_path / "spool").glob("metrics-*"))
        assert len(directories) == 1
        directory = directories[0]
        cookie = _staff_cookie(base_url)
        answered = 0
        for _ in range(20):  # until both workers have answered launches
            with ThreadPoolExecutor(8) as pool:
                answered += sum(pool.map(lambda _: _launch(base_url, cookie, 10), range(8)))
            by_pid = _flushed(directory, answered)
            if len([n for n in by_pid.values() if n > 0]) >= 2:
                break
        assert len([n for n in by_pid.values() if n > 0]) == 2, by_pid
        assert sum(by_pid.values()) == answered

        for _ in range(4):  # whichever worker answers the scrape, it shows the total
            text = _scrape(base_url)
            assert _value(text, "launcher_launches_total", f'{{app="{APP}"}}') == answered
            latency = '{route="/launch/{app_id}"}'
            assert _value(text, "launcher_request_duration_seconds_count", latency) == answered
            assert _value(text, "launcher_registry_valid") == 1
            assert _value(text, "launcher_spool_files") == 0
            assert "launcher_events_oldest_pending_seconds" in text
            assert "/launch/google-workspace" not in text  # templates, never paths

        # a worker that dies: its launches stay counted, its gauges leave the sums
        victim = max(by_pid, key=lambda pid: by_pid[pid])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while list(directory.glob(f"gauge_live*_{victim}.db")):
            assert time.monotonic() < deadline, "the dead worker's gauges were not removed"
            time.sleep(0.5)
        for _ in range(20):
            try:
                text = _scrape(base_url)
                break
            except httpx.TransportError:  # the supervisor is starting a new worker
                time.sleep(0.5)
        assert _value(text, "launcher_launches_total", f'{{app="{APP}"}}') == answered
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not directory.exists()  # serve made it, serve removed it

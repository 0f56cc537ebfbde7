"""Launch throughput: the portal's ``GET /launch/{app_id}`` against a bare redirect.

Both servers run as subprocesses under uvicorn with the options ``launcher serve`` uses (one
worker; see ``launcher.serve.uvicorn_options``), and ``wrk`` loads them alternately in the same run,
so the ratio portal/bare says what the portal adds per launch, whatever the machine. After the
portal has been stopped with SIGTERM, every 303 that wrk received must be a row in
``launch_event``.

    python bench/bench_launch.py [--rounds 3] [--duration 10] [--connections 32]

Targets: ratio >= 0.7, portal p99 <= 10 ms, zero launches lost. The exit status is 1 when a
launch was lost, a launch was not answered 303, or the portal did not exit cleanly within 10 s
of SIGTERM; the ratio and p99 are reported, not enforced (they depend on a quiet machine).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-" + "x" * 32
ISSUER = "http://127.0.0.1:9/unreachable-issuer"  # a launch never talks to the provider
APP_ID = "google-workspace"  # groups: [staff]; its URL has an {email} placeholder
INSTALL_WRK = "apt-get update && apt-get install -y wrk    (macOS: brew install wrk)"
EXIT_LIMIT = 10.0  # seconds; README: on SIGTERM the portal exits within 10 s

# Counts responses by status in every wrk thread and prints the totals at the end, so that
# the bench sees non-303 answers as well as 303s.
COUNT_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do io.write(string.format("STATUS %d %d\\n", status, n)) end
end
"""


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    socket_errors: str
    cpu_us: float | None  # server CPU time (all its threads) per response


@dataclass
class Server:
    name: str
    url: str  # the launch URL wrk loads
    proc: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def database_backends(conn: sa.Connection) -> list[int]:
    """The PostgreSQL server processes of the other client connections to ``conn``'s
    database (a SQLAlchemy connection): whose CPU a benchmark reads from /proc on a local
    server (bench_scale.py, grid_cpu.py)."""
    pids = conn.exec_driver_sql(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    return [int(pid) for pid in pids.scalars()]


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time so far of a process and its children (Linux; the portal's event
    writer is a child process), or None elsewhere."""
    stat = _stat(pid)
    if stat is None:
        return None
    ticks = int(stat[11]) + int(stat[12])
    for entry in Path("/proc").iterdir():
        child = _stat(int(entry.name)) if entry.name.isdigit() else None
        if child is not None and int(child[1]) == pid:  # field 4: the parent's pid
            ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    assert match, value
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]


def wrk(server: Server, seconds: float, args: argparse.Namespace) -> Run:
    # A fresh cookie per run: a browser stores the cookie the portal re-issues once a minute
    # (the idle clock), which wrk cannot; a stale one would be re-issued on every launch.
    cookie = _mint_cookie(args.portal_base)
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(args.script),
        "-H",
        f"Cookie: {cookie}",
        server.url,
    ]
    cpu_before = _cpu_seconds(server.proc.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
    cpu_after = _cpu_seconds(server.proc.pid)
    text = out.stdout

    def find(pattern: str) -> str:
        match = re.search(pattern, text, re.M)
        assert match, f"no {pattern!r} in wrk's output:\n{text}"
        return match[1]

    statuses = {int(s): int(n) for s, n in re.findall(r"^STATUS (\d+) (\d+)$", text, re.M)}
    answered = sum(statuses.values())
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and answered:
        cpu_us = (cpu_after - cpu_before) / answered * 1e6
    errors = re.search(r"Socket errors:.*", text)
    return Run(
        rps=float(find(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)")),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)")),
        statuses=statuses,
        socket_errors=errors[0] if errors else "",
        cpu_us=cpu_us,
    )


def _mint_cookie(base_url: str) -> str:
    """A valid session cookie for a user in group "staff", signed with the portal's secret."""
    import sqlalchemy as sa

    from launcher.auth.session import Revocations, SessionCodec
    from launcher.auth.user import User, pseudonym
    from launcher.settings import load_settings

    settings = load_settings(secret_key=SECRET, base_url=base_url, oidc_issuer=ISSUER)
    codec = SessionCodec(settings, Revocations(sa.create_engine("sqlite://")))
    user = User(
        user_id=pseudonym(settings.pseudonym_secret(), ISSUER, "bench-user"),
        sub="bench-user",
        name="Bench User",
        email="bench.user@example.org",
        department="nursing",
        groups=("staff",),
    )
    return f"{settings.session_cookie}={codec.dumps(codec.new(user, op_sid=None))}"


# seconds a server may take to answer after its exec; more on a machine busy with other work
START_TIMEOUT = float(os.environ.get("BENCH_START_TIMEOUT", "30"))


def _start(
    name: str, argv: list[str], url: str, ready: str, env: dict[str, str], tmp: Path
) -> Server:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:  # a file: a pipe that nobody reads would block the server
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, url, proc, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise SystemExit(
                f"{name} exited with {proc.returncode} at start-up:\n{log.read_text()}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start within {START_TIMEOUT:g} s:\n{log.read_text()}")
        try:
            httpx.get(ready, timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.1)


METRICS_TOKEN = "bench-metrics-token-0123456789abcdef"  # /metrics needs one (>= 32 chars)


def _launches_answered(base_url: str) -> int:
    """The portal's own count of the launches it answered (its Prometheus counter)."""
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    answer = httpx.get(f"{base_url}/metrics", headers=auth, timeout=5)
    answer.raise_for_status()  # a 404 would read as "no launches answered"
    text = answer.text
    values = re.findall(r"^launcher_launches_total\{.*\} (\S+)$", text, re.M)
    return round(sum(float(v) for v in values))


def _median(runs: list[Run], attr: str) -> float:
    values = [getattr(r, attr) for r in runs]
    return statistics.median(values) if None not in values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description="Launch throughput: portal vs bare redirect.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(f"bench: wrk is not installed. Install it with:\n    {INSTALL_WRK}", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="launcher-bench-"))
    args.script = tmp / "count.lua"
    args.script.write_text(COUNT_SCRIPT)
    portal_base = f"http://127.0.0.1:{_free_port()}"
    bare_base = f"http://127.0.0.1:{_free_port()}"
    db_path = tmp / "launcher.db"
    spool = tmp / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAUNCHER_")}
    env.update(
        LAUNCHER_BASE_URL=portal_base,
        LAUNCHER_SECRET_KEY=SECRET,
        LAUNCHER_DATABASE_URL=f"sqlite:///{db_path}",
        LAUNCHER_APPS_FILE=str(ROOT / "config" / "apps.yaml"),
        LAUNCHER_SPOOL_DIR=str(spool),
        LAUNCHER_OIDC_ISSUER=ISSUER,
        LAUNCHER_OIDC_CLIENT_ID="bench",
        LAUNCHER_OIDC_CLIENT_SECRET="bench-client-secret",
        LAUNCHER_METRICS_TOKEN=METRICS_TOKEN,
    )
    args.portal_base = portal_base
    py = sys.executable
    servers: list[Server] = []
    try:
        portal = _start(
            "portal",
            [py, "-m", "launcher", "serve", "--port", portal_base.rsplit(":", 1)[1]],
            f"{portal_base}/launch/{APP_ID}",
            f"{portal_base}/healthz",
            env,
            tmp,
        )
        servers.append(portal)
        bare = _start(
            "bare",
            [py, str(ROOT / "bench" / "bare_redirect.py"), "--port", bare_base.rsplit(":", 1)[1]],
            f"{bare_base}/launch/{APP_ID}",
            f"{bare_base}/launch/{APP_ID}",
            env,
            tmp,
        )
        servers.append(bare)

        check = httpx.get(portal.url, headers={"Cookie": _mint_cookie(portal_base)}, timeout=5)
        if check.status_code != 303 or check.headers["location"].startswith("/login"):
            print(
                f"bench: the minted session does not launch ({check.status_code})", file=sys.stderr
            )
            return 2
        wrk_303 = 1  # the check above
        not_303: dict[int, int] = {}

        def count(run: Run) -> Run:
            nonlocal wrk_303
            for status, n in run.statuses.items():
                if status == 303:
                    wrk_303 += n
                else:
                    not_303[status] = not_303.get(status, 0) + n
            return run

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"wrk: {args.connections} connections, {args.threads} thread(s); warm-up "
            f"{args.warmup} s each, then {args.rounds} rounds of {args.duration} s, alternating; "
            f"{os.cpu_count()} CPUs, load average {load:.1f}"
        )
        wrk(bare, args.warmup, args)
        count(wrk(portal, args.warmup, args))
        bare_runs: list[Run] = []
        portal_runs: list[Run] = []
        for i in range(1, args.rounds + 1):
            b = wrk(bare, args.duration, args)
            p = count(wrk(portal, args.duration, args))
            bare_runs.append(b)
            portal_runs.append(p)
            cpu = f"   CPU/req {b.cpu_us:.0f} / {p.cpu_us:.0f} us" if p.cpu_us and b.cpu_us else ""
            errors = f"   [portal {p.socket_errors}]" if p.socket_errors else ""
            print(
                f"  round {i}: bare {b.rps:7.0f} req/s   portal {p.rps:7.0f} req/s   ratio "
                f"{p.rps / b.rps:.2f}   portal p50 {p.p50_ms:.2f} ms p99 {p.p99_ms:.2f} ms"
                f"{cpu}{errors}"
            )

        answered = _launches_answered(portal_base)
        bare.proc.send_signal(signal.SIGTERM)
        portal.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            code: int | None = portal.proc.wait(timeout=EXIT_LIMIT + 5)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - sent
        with sqlite3.connect(db_path) as conn:
            rows = int(conn.execute("SELECT count(*) FROM launch_event").fetchone()[0])
        spooled = sum(len(p.read_text().splitlines()) for p in spool.glob("events-*.jsonl"))
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.proc.kill()
            server.proc.wait()

    bare_rps, portal_rps = _median(bare_runs, "rps"), _median(portal_runs, "rps")
    ratio = portal_rps / bare_rps
    p50, p99 = _median(portal_runs, "p50_ms"), _median(portal_runs, "p99_ms")
    bare_cpu, portal_cpu = _median(bare_runs, "cpu_us"), _median(portal_runs, "cpu_us")
    lost = max(0, wrk_303 - rows)
    # When its time is up wrk drops the requests still in flight: the portal answered and
    # recorded them, but wrk never counted their 303 (at most one per connection and run).
    unread = rows - wrk_303

    print()
    print(f"bare     {bare_rps:8.0f} req/s   server CPU {bare_cpu:5.0f} us/req   (medians)")
    print(f"portal   {portal_rps:8.0f} req/s   server CPU {portal_cpu:5.0f} us/req")
    print(f"ratio    {ratio:8.2f}         by CPU per request {bare_cpu / portal_cpu:.2f}")
    print(f"portal latency   p50 {p50:.2f} ms   p99 {p99:.2f} ms   (medians)")
    bare_p50, bare_p99 = _median(bare_runs, "p50_ms"), _median(bare_runs, "p99_ms")
    print(f"bare latency     p50 {bare_p50:.2f} ms   p99 {bare_p99:.2f} ms   (for scale)")
    print(
        f"launches: wrk got {wrk_303} x 303; the portal counted {answered}; launch_event has "
        f"{rows} rows; {spooled} left in the spool; {unread} answered while wrk was stopping"
    )
    other = ", ".join(f"{n} x {s}" for s, n in sorted(not_303.items())) or "none"
    print(f"portal answers other than 303: {other}")
    ended = "did not exit" if code is None else f"exit code {code} after {took:.1f} s"
    print(f"portal on SIGTERM: {ended}")
    print()

    no_loss = lost == 0 and rows == answered and spooled == 0
    clean_exit = code == 0 and took <= EXIT_LIMIT
    checks = [
        (ratio >= 0.7, f"ratio portal/bare {ratio:.2f} (target >= 0.7)"),
        (p99 <= 10, f"portal p99 {p99:.2f} ms (target <= 10 ms)"),
        (no_loss, f"launches lost: {lost} (target 0: every 303 is a launch_event row)"),
        (not not_303, "every launch answered 303"),
        (clean_exit, f"SIGTERM: exit code 0 within {EXIT_LIMIT:g} s"),
    ]
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if not (no_loss and clean_exit and not not_303):
        print(f"bench: logs kept in {tmp}", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

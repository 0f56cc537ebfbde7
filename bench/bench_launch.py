"""Launch throughput: the portal's ``GET /launch/{app_id}`` against a bare redirect.

Both servers run as subprocesses under uvicorn with the options ``launcher serve`` uses (one
worker); ``wrk`` loads them alternately in the same run, so the ratio portal/bare does not depend
on the machine. After the portal has been stopped with SIGTERM, every 303 that wrk received must
be a row in ``launch_event``.

    python bench/bench_launch.py [--rounds 3 --duration 10 --connections 32]

Targets: ratio >= 0.7, portal p99 <= 10 ms, zero launches lost. Exit 1 when launches were lost
(or the portal did not exit cleanly); the ratio and p99 are reported, not asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-" + "x" * 32
ISSUER = "http://127.0.0.1:9/unreachable-issuer"  # launch never talks to the provider
APP_ID = "google-workspace"  # groups: [staff], URL with an {email} placeholder
INSTALL_WRK = "apt-get update && apt-get install -y wrk  (macOS: brew install wrk)"

# Counts responses by status in every wrk thread and prints them once at the end, so that
# non-303 answers are accounted for as well as 303s.
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
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: str = ""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, seconds: float, args: argparse.Namespace, script: Path, cookie: str) -> Run:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(script),
        "-H",
        f"Cookie: {cookie}",
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)  # type: ignore[union-attr]
    statuses = {int(s): int(n) for s, n in re.findall(r"^STATUS (\d+) (\d+)$", text, re.M)}
    errors = re.search(r"Socket errors:.*", text)
    return Run(rps, _ms(p50), _ms(p99), statuses, errors.group(0) if errors else "")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, cookie: str = "") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode} during start-up:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit(f"server at {url} did not start within 30 s:\n{log.read_text()}")


def _mint_cookie(env: dict[str, str]) -> tuple[str, str]:
    """A valid session cookie for a user in group "staff", signed with the portal's secret."""
    import sqlalchemy as sa

    from launcher.auth.session import Revocations, SessionCodec
    from launcher.auth.user import User
    from launcher.launches import pseudonym
    from launcher.settings import load_settings

    settings = load_settings(
        secret_key=env["LAUNCHER_SECRET_KEY"],
        base_url=env["LAUNCHER_BASE_URL"],
        oidc_issuer=ISSUER,
    )
    codec = SessionCodec(settings, Revocations(sa.create_engine("sqlite://")))
    user = User(
        user_id=pseudonym(settings.pseudonym_secret(), ISSUER, "bench-user"),
        sub="bench-user",
        name="Bench User",
        email="bench.user@example.org",
        department="nursing",
        groups=("staff",),
    )
    session = codec.new(user, op_sid=None)
    return settings.session_cookie, codec.dumps(session)


def _launches_answered(base: str) -> int:
    """The portal's own count of launches it answered (Prometheus counter, all apps)."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return round(sum(float(v) for v in re.findall(r"^launcher_launches_total\{.*\} (\S+)$", text, re.M)))


def main() -> int:
    parser = argparse.ArgumentParser(description="Launch throughput: portal vs bare redirect.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print(f"bench: wrk is not installed. Install it with:\n  {INSTALL_WRK}", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="launcher-bench-"))
    portal_port, bare_port = _free_port(), _free_port()
    portal = f"http://127.0.0.1:{portal_port}"
    bare = f"http://127.0.0.1:{bare_port}"
    db_path = tmp / "launcher.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAUNCHER_")}
    env.update(
        LAUNCHER_BASE_URL=portal,
        LAUNCHER_SECRET_KEY=SECRET,
        LAUNCHER_DATABASE_URL=f"sqlite:///{db_path}",
        LAUNCHER_APPS_FILE=str(ROOT / "config" / "apps.yaml"),
        LAUNCHER_SPOOL_DIR=str(tmp / "spool"),
        LAUNCHER_OIDC_ISSUER=ISSUER,
        LAUNCHER_OIDC_CLIENT_ID="bench",
        LAUNCHER_OIDC_CLIENT_SECRET="bench-client-secret",
    )
    cookie_name, cookie_value = _mint_cookie(env)
    cookie = f"{cookie_name}={cookie_value}"
    script = tmp / "count.lua"
    script.write_text(COUNT_SCRIPT)

    # Server logs go to files: a pipe nobody reads would block the server once it is full.
    portal_log, bare_log = tmp / "portal.log", tmp / "bare.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with portal_log.open("wb") as plog, bare_log.open("wb") as blog:
            py = sys.executable
            portal_proc = subprocess.Popen(
                [py, "-m", "launcher", "serve", "--port", str(portal_port)],
                cwd=tmp, env=env, stdout=plog, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(portal_proc)
            bare_proc = subprocess.Popen(
                [py, str(ROOT / "bench" / "bare_redirect.py"), "--port", str(bare_port)],
                cwd=tmp, env=env, stdout=blog, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(bare_proc)
        _wait_http(f"{portal}/healthz", portal_proc, portal_log)
        _wait_http(f"{bare}/launch/x", bare_proc, bare_log)

        launch_url = f"{portal}/launch/{APP_ID}"
        check = httpx.get(launch_url, headers={"Cookie": cookie}, timeout=5)
        if check.status_code != 303 or check.headers["location"].startswith("/login"):
            print(f"bench: the minted session does not launch: {check.status_code}", file=sys.stderr)
            return 2
        portal_303s = 1  # the check above
        portal_other: dict[int, int] = {}

        def account(run: Run) -> None:
            nonlocal portal_303s
            portal_303s += run.statuses.get(303, 0)
            for status, n in run.statuses.items():
                if status != 303:
                    portal_other[status] = portal_other.get(status, 0) + n

        print(f"wrk: {args.connections} connections, {args.threads} thread(s); "
              f"warm-up {args.warmup:g} s, {args.rounds} rounds of {args.duration:g} s each")  # fmt: skip
        wrk(f"{bare}/launch/{APP_ID}", args.warmup, args, script, cookie)
        account(wrk(launch_url, args.warmup, args, script, cookie))

        bare_runs: list[Run] = []
        portal_runs: list[Run] = []
        for i in range(1, args.rounds + 1):
            b = wrk(f"{bare}/launch/{APP_ID}", args.duration, args, script, cookie)
            p = wrk(launch_url, args.duration, args, script, cookie)
            bare_runs.append(b)
            portal_runs.append(p)
            account(p)
            print(f"  round {i}: bare {b.rps:8.0f} req/s   portal {p.rps:8.0f} req/s   "
                  f"ratio {p.rps / b.rps:.2f}   portal p50 {p.p50_ms:.2f} ms  p99 {p.p99_ms:.2f} ms"
                  + (f"   [{p.socket_errors}]" if p.socket_errors else ""))  # fmt: skip

        answered = _launches_answered(portal)
        portal_proc.send_signal(signal.SIGTERM)
        bare_proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = portal_proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            code = None
        exit_seconds = time.monotonic() - started
        with sqlite3.connect(db_path) as conn:
            rows = int(conn.execute("SELECT count(*) FROM launch_event").fetchone()[0])
        spooled = sum(
            len(p.read_text().splitlines()) for p in (tmp / "spool").glob("events-*.jsonl")
        ) if (tmp / "spool").is_dir() else 0  # fmt: skip
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    bare_rps = statistics.median(r.rps for r in bare_runs)
    portal_rps = statistics.median(r.rps for r in portal_runs)
    ratio = portal_rps / bare_rps
    p50 = statistics.median(r.p50_ms for r in portal_runs)
    p99 = statistics.median(r.p99_ms for r in portal_runs)
    lost = max(0, portal_303s - rows)
    # wrk abandons requests still in flight when its time is up: the portal answered and
    # recorded them but wrk never counted the 303, so rows may exceed wrk's count by at most
    # one per connection and run. The portal's own counter has no such gap.
    unread = rows - portal_303s

    print()
    print(f"bare    {bare_rps:9.0f} req/s (median of {args.rounds})")
    print(f"portal  {portal_rps:9.0f} req/s (median of {args.rounds})")
    print(f"ratio   {ratio:9.2f}")
    print(f"portal latency  p50 {p50:.2f} ms   p99 {p99:.2f} ms (medians)")
    other = ", ".join(f"{n} x {s}" for s, n in sorted(portal_other.items())) or "none"
    print(f"launches: wrk got {portal_303s} x 303 (non-303: {other}); portal answered "
          f"{answered}; launch_event rows {rows}; spooled {spooled}; "
          f"answered but unread by wrk {unread}")  # fmt: skip
    exit_note = "did not exit" if code is None else f"exit code {code} after {exit_seconds:.1f} s"
    print(f"portal on SIGTERM: {exit_note}")
    print()
    ok_lost = (
        lost == 0
        and rows == answered
        and spooled == 0
        and not portal_other
        and 0 <= unread <= args.connections * (args.rounds + 1)
        and code == 0
        and exit_seconds <= 10
    )
    print(f"{'PASS' if ratio >= 0.7 else 'FAIL'}  ratio portal/bare {ratio:.2f} (target >= 0.7)")
    print(f"{'PASS' if p99 <= 10 else 'FAIL'}  portal p99 {p99:.2f} ms (target <= 10 ms)")
    print(f"{'PASS' if ok_lost else 'FAIL'}  launches lost {lost} (target 0; every 303 recorded, "
          "clean exit within 10 s)")  # fmt: skip
    if not ok_lost:
        print(f"portal log: {portal_log}", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

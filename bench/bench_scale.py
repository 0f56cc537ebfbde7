"""Scale-out on PostgreSQL: ``launcher serve --workers 2`` against a bare redirect with 2 workers,
a worker's memory after 100,000 launches, cold start to ready, and bytes per row.

Everything runs in one go on a fresh PostgreSQL database (``--database-url``, default the local
server), so every figure is measured beside its baseline on the same machine:

1. cold start: ``launcher serve`` (1 and 2 workers) from exec until ``/readyz`` answers 200
   (a stub provider on loopback publishes the discovery document /readyz asks for);
2. throughput: the portal with 2 workers and the bare Starlette redirect with 2 workers
   (bench/bare_redirect.py's app, the same uvicorn options), loaded alternately by wrk; after
   SIGTERM every 303 wrk received must be a ``launch_event`` row (0 lost);
3. memory: one worker (``launcher serve``) answers at least 100,000 launches; its resident set
   (VmRSS) is read afterwards, the event writer process beside it;
4. growth: bytes per launch (``launch_event`` and its partitions with indexes, measured over the
   launches of step 3) and per imported sign-in (``imported_signin`` with its indexes, over
   100,000 synthetic rows of realistic width).

    python bench/bench_scale.py [--rounds 3] [--duration 10] [--connections 64]

Targets: ratio >= 0.8 with 0 lost, RSS <= 120 MB, cold start <= 2 s. Exit 1 when a launch was
lost; the rest is reported (it depends on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_launch as bl  # noqa: E402  (the wrk plumbing)

ROOT = bl.ROOT
TOKEN = "bench-metrics-token-" + "y" * 32
PG = os.environ.get(
    "LAUNCHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MEMORY_LAUNCHES = 100_000


class _Discovery(BaseHTTPRequestHandler):
    issuer = ""

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _stub_provider() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    _Discovery.issuer = issuer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, issuer


def _database() -> tuple[str, sa.Engine]:
    name = f"launcher_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG).set(database=name).render_as_string(hide_password=False)
    return url, admin


def _serve(
    name: str, port: int, workers: int, env: dict[str, str], tmp: Path
) -> tuple[subprocess.Popen[bytes], float]:
    """``launcher serve``; returns once /readyz answers 200, with the seconds it took."""
    log = tmp / f"{name}.log"
    argv = [sys.executable, "-m", "launcher", "serve", "--port", str(port)]
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--workers", str(workers)],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited at start-up:\n{log.read_text()}")
        if time.monotonic() - started > 2 * bl.START_TIMEOUT:
            raise SystemExit(
                f"{name} was not ready within {2 * bl.START_TIMEOUT:g} s:\n{log.read_text()}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        stat = bl._stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and int(stat[1]) == pid:
            found.append(int(entry.name))
    return found


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of one process so far: what a start costs, whatever the
    machine's load does to the wall-clock time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _cpu_split(server: int, engine: sa.Engine) -> dict[str, float]:
    """CPU seconds so far of a ``launcher serve``'s workers (its children), their event
    writers (the workers' children) and the PostgreSQL server processes of its database, on a
    local server: where a launch's CPU goes (the writer's and the server's part of it are
    invisible in the worker's)."""
    workers = _children(server)
    writers = [w for worker in workers for w in _descendants(worker)]
    with engine.connect() as conn:
        server_pids = bl.database_backends(conn)
    return {
        "workers": sum(map(_cpu_seconds, workers)),
        "writers": sum(map(_cpu_seconds, writers)),
        "PostgreSQL": sum(map(_cpu_seconds, server_pids)),
    }


def _rss_mb(pid: int, field: str = "VmRSS:") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def _answered(base: str) -> int:
    text = httpx.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).text
    import re

    values = re.findall(r"^launcher_launches_total\{.*\} (\S+)$", text, re.M)
    return round(sum(float(v) for v in values))


def _gauge(base: str, name: str) -> float:
    text = httpx.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).text
    import re

    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match[1]) if match else 0.0


def _rows(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def _bytes(engine: sa.Engine, table: str) -> int:
    """A table with its partitions, indexes and TOAST, after a VACUUM (so that the free space
    map and visibility map are there as they would be)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
        return int(
            conn.execute(
                sa.text(  # a plain table has no partition tree
                    "SELECT COALESCE((SELECT SUM(pg_total_relation_size(relid)) FROM "
                    "pg_partition_tree(CAST(:t AS regclass))), "
                    "pg_total_relation_size(CAST(:t AS regclass)))"
                ),
                {"t": table},
            ).scalar_one()
        )


def _signin_bytes(engine: sa.Engine, n: int = 100_000) -> float:
    """Bytes per imported sign-in: rows as the importer stores them (a 64-character pseudonym,
    an Entra-like record id and app id, a department)."""
    before = _bytes(engine, "imported_signin")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO imported_signin (provider, record_id, ts, user_id, app_id, "
                "provider_app_id, provider_app, department, via_portal) "
                "SELECT 'entra', md5(g::text) || '-' || substr(md5((g * 7)::text), 1, 4), "
                "now() - (g || ' seconds')::interval, encode(sha256(g::text::bytea), 'hex'), "
                "'teams', '00000003-0000-0ff1-ce00-' || substr(md5((g % 40)::text), 1, 12), '', "
                "'nursing', g % 2 FROM generate_series(1, :n) AS g"
            ),
            {"n": n},
        )
    return (_bytes(engine, "imported_signin") - before) / n


def main() -> int:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description="Scale-out on PostgreSQL.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(f"bench: wrk is not installed:\n    {bl.INSTALL_WRK}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="launcher-scale-"))
    args.script = tmp / "count.lua"
    args.script.write_text(bl.COUNT_SCRIPT)
    provider, issuer = _stub_provider()
    bl.ISSUER = issuer  # the minted session names the same issuer as the portal
    url, admin = _database()
    engine = sa.create_engine(url)
    port = bl._free_port()
    base = f"http://127.0.0.1:{port}"
    args.portal_base = base
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCHER_", "PROMETHEUS_"))}
    env.update(
        LAUNCHER_BASE_URL=base,
        LAUNCHER_SECRET_KEY=bl.SECRET,
        LAUNCHER_DATABASE_URL=url,
        LAUNCHER_APPS_FILE=str(ROOT / "config" / "apps.yaml"),
        LAUNCHER_SPOOL_DIR=str(tmp / "spool"),
        LAUNCHER_OIDC_ISSUER=issuer,
        LAUNCHER_OIDC_CLIENT_ID="bench",
        LAUNCHER_OIDC_CLIENT_SECRET="bench-client-secret",
        LAUNCHER_METRICS_TOKEN=TOKEN,
        PYTHONPATH=str(ROOT),
    )
    failed = False
    try:
        subprocess.run(
            [sys.executable, "-m", "launcher", "db", "upgrade"], env=env, cwd=tmp, check=True
        )
        load = os.getloadavg()[0]
        print(f"{os.cpu_count()} CPUs, load average {load:.1f}; PostgreSQL {url.rsplit('/', 1)[1]}")

        # 1. cold start
        colds: dict[int, float] = {}
        cpu: dict[int, float] = {}
        for workers in (1, 2):
            proc, took = _serve(f"cold{workers}", port, workers, env, tmp)
            colds[workers] = took
            cpu[workers] = sum(_cpu_seconds(p) for p in [proc.pid, *_descendants(proc.pid)])
            _stop(proc)
        print(
            f"cold start to /readyz 200: 1 worker {colds[1]:.2f} s, 2 workers {colds[2]:.2f} s "
            f"(CPU used by then, all processes: {cpu[1]:.2f} s and {cpu[2]:.2f} s)"
        )

        # 2. throughput, 2 workers each
        portal_proc, _ = _serve("portal2", port, 2, env, tmp)
        bare_port = bl._free_port()
        bare_log = (tmp / "bare.log").open("wb")
        bare_proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import uvicorn; from launcher.serve import uvicorn_options; "
                f"uvicorn.run('bare_redirect:app', **uvicorn_options('127.0.0.1', {bare_port}, 2))",
            ],
            cwd=ROOT / "bench",
            env=env | {"PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"},
            stdout=bare_log,
            stderr=subprocess.STDOUT,
        )
        bare_url = f"http://127.0.0.1:{bare_port}/launch/{bl.APP_ID}"
        deadline = time.monotonic() + bl.START_TIMEOUT
        while True:
            try:
                httpx.get(bare_url, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the bare redirect did not start"
                time.sleep(0.1)
        portal = bl.Server("portal", f"{base}/launch/{bl.APP_ID}", portal_proc, tmp / "p.log")
        bare = bl.Server("bare", bare_url, bare_proc, tmp / "bare.log")
        wrk_303, other = 0, 0
        bl.wrk(bare, args.warmup, args)
        warm = bl.wrk(portal, args.warmup, args)
        wrk_303 += warm.statuses.get(303, 0)
        other += sum(n for s, n in warm.statuses.items() if s != 303)
        ratios, p99s, bare_rps, portal_rps = [], [], [], []
        cpu_used: dict[str, float] = {}
        bare_cpu = 0.0
        for i in range(1, args.rounds + 1):
            bare_before = sum(map(_cpu_seconds, _children(bare_proc.pid)))
            b = bl.wrk(bare, args.duration, args)
            bare_cpu += sum(map(_cpu_seconds, _children(bare_proc.pid))) - bare_before
            before = _cpu_split(portal_proc.pid, engine)
            p = bl.wrk(portal, args.duration, args)
            after = _cpu_split(portal_proc.pid, engine)
            for kind, seconds in after.items():
                cpu_used[kind] = cpu_used.get(kind, 0.0) + seconds - before[kind]
            wrk_303 += p.statuses.get(303, 0)
            other += sum(n for s, n in p.statuses.items() if s != 303)
            ratios.append(p.rps / b.rps)
            p99s.append(p.p99_ms)
            bare_rps.append(b.rps)
            portal_rps.append(p.rps)
            print(
                f"  round {i}: bare {b.rps:7.0f} req/s   portal {p.rps:7.0f} req/s   ratio "
                f"{p.rps / b.rps:.2f}   portal p99 {p.p99_ms:.2f} ms   bare p99 {b.p99_ms:.2f} ms"
            )
        time.sleep(1.5)  # each worker adds its counts to the shared metrics once a second
        answered = _answered(base)
        code = _stop(portal_proc)
        _stop(bare_proc)
        bare_log.close()
        rows = _rows(engine, "launch_event")
        # a backlog the writer had not written by the deadline is spooled, not lost: the next
        # start replays it (launcher/events/__init__.py)
        spooled = sum(
            len(p.read_text().splitlines()) for p in (tmp / "spool").glob("events-*.jsonl")
        )
        lost = max(0, wrk_303 - rows - spooled)
        ratio = sorted(ratios)[len(ratios) // 2]
        print(
            f"2 workers: bare {sorted(bare_rps)[len(bare_rps) // 2]:.0f} req/s, portal "
            f"{sorted(portal_rps)[len(portal_rps) // 2]:.0f} req/s, ratio {ratio:.2f} (median), "
            f"portal p99 {sorted(p99s)[len(p99s) // 2]:.2f} ms"
        )
        timed = sum(portal_rps) * args.duration
        bare_timed = sum(bare_rps) * args.duration
        print(
            "CPU per launch while loaded (the writers' share as far as they kept up): "
            + ", ".join(
                f"{kind} {seconds / timed * 1e6:.0f} us" for kind, seconds in cpu_used.items()
            )
            + f"; the bare redirect's workers {bare_cpu / bare_timed * 1e6:.0f} us"
        )
        print(
            f"launches: wrk got {wrk_303} x 303, the portal counted {answered} (/metrics, both "
            f"workers), launch_event has {rows} rows, {spooled} events spooled at exit, "
            f"lost {lost}, "
            f"non-303 {other}, exit code {code}"
        )
        failed |= lost > 0 or other > 0

        # 3. memory of one worker after 100,000 launches; 4. bytes per launch
        before_rows, before_bytes = rows, _bytes(engine, "launch_event")
        proc, _ = _serve("memory", port, 1, env, tmp)
        one = bl.Server("one", f"{base}/launch/{bl.APP_ID}", proc, tmp / "m.log")
        start_rss = _rss_mb(proc.pid)
        done = 0
        while done < MEMORY_LAUNCHES:
            run = bl.wrk(one, args.duration, args)
            done += run.statuses.get(303, 0)
        peak = _rss_mb(proc.pid, "VmHWM:")
        deadline = time.monotonic() + 120
        while _gauge(base, "launcher_events_pending") > 0 and time.monotonic() < deadline:
            time.sleep(0.5)  # the writer's backlog: held in the worker until written
        rss = _rss_mb(proc.pid)
        writer = [_rss_mb(c) for c in _children(proc.pid)]
        _stop(proc)
        grown = _rows(engine, "launch_event") - before_rows
        per_launch = (_bytes(engine, "launch_event") - before_bytes) / grown
        print(
            f"one worker after {done:,} launches: RSS {rss:.0f} MB once the writer caught up "
            f"(at ready {start_rss:.0f} MB, peak under load {peak:.0f} MB); "
            f"event writer process {', '.join(f'{w:.0f} MB' for w in writer) or '-'}"
        )
        per_signin = _signin_bytes(engine)
        print(
            f"PostgreSQL bytes per launch (launch_event, partitions, indexes): {per_launch:.0f}; "
            f"per imported sign-in (imported_signin, indexes): {per_signin:.0f}"
        )
        print()
        for ok, text in (
            (ratio >= 0.8, f"ratio portal/bare with 2 workers {ratio:.2f} (target >= 0.8)"),
            (lost == 0 and other == 0, f"launches lost {lost} (target 0)"),
            (rss <= 120, f"worker RSS after 100,000 launches {rss:.0f} MB (target <= 120)"),
            (colds[1] <= 2, f"cold start to ready {colds[1]:.2f} s (target <= 2 s)"),
        ):
            print(f"{'PASS' if ok else 'FAIL'}  {text}")
    finally:
        provider.shutdown()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()
    if failed:
        print(f"bench: logs kept in {tmp}", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

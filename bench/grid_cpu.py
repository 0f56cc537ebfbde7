"""CPU of one grid page, in process: the page of bench_grid.py without uvicorn, wrk or a second
worker, so that instruction counts under callgrind compare two versions of the code on a busy
machine (wall-clock figures there do not).

    python bench/grid_cpu.py --db postgres --pages 300            # ms of CPU per page
    python bench/grid_cpu.py --db postgres --pages 300 --profile  # and where it goes (cProfile)
    # instructions per page under callgrind, counted over the pages only (--callgrind turns
    # collection on and off around them), on a database seeded once (--seed-only prints its
    # URL; drop it afterwards)
    URL=$(python bench/grid_cpu.py --db postgres --seed-only)
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=cg.out \
        python bench/grid_cpu.py --url "$URL" --pages 100 --callgrind

The person, registry and history are bench_grid.py's (60 apps, six favourites, 3,000 of their
own launches among 100,000). Each page goes through the whole ASGI app: request id, metrics,
GZip (no ``Accept-Encoding``, as wrk sends), security headers, CSRF guard, session, the grid.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from bench_grid import _database, _drop, registry_yaml, seed
from bench_import import _process_cpu
from bench_launch import ISSUER, SECRET, _mint_cookie, database_backends

BASE = "http://127.0.0.1:8000"
LAST_PAGE: list[bytes] = []
BACKENDS: list[int] = []  # on a local PostgreSQL: the server processes of the app's connections
DATABASE: list[str] = []  # its URL, to list them
SERVER_CPU: list[float] = []  # their CPU seconds over the timed pages


def _backends(url: str) -> list[int]:
    """The server processes of the other connections to this PostgreSQL database; none on
    SQLite. Their CPU is _process_cpu's, on a local server."""
    if not url.startswith("postgresql"):
        return []
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        found = database_backends(conn)
    engine.dispose()
    return found


def _server_cpu() -> float:
    return sum(_process_cpu(pid) for pid in BACKENDS)


async def _pages(app: Any, cookie: str, count: int) -> list[float]:
    """``count`` pages of ``GET /``; the CPU time of each (thread time of this process)."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"cookie", cookie.encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    status: list[int] = []
    body: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    times = []
    LAST_PAGE.clear()
    for _ in range(count):
        status.clear()
        body.clear()
        start = time.process_time()
        await app(dict(scope, state={}), receive, send)
        times.append(time.process_time() - start)
        if status != [200] or b'class="tile' not in b"".join(body):
            raise SystemExit(f"grid_cpu: not the signed-in grid ({status})")
    LAST_PAGE.append(b"".join(body))
    return times


def _instrument(on: bool) -> None:
    """Callgrind's instrumentation of this process on or off (valgrind --instr-atstart=no)."""
    flag = "on" if on else "off"
    subprocess.run(["callgrind_control", "-i", flag, str(os.getpid())], check=True, timeout=600)


async def _run(
    app: Any, cookie: str, pages: int, profile: bool, callgrind: bool = False
) -> list[float]:
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})
    life = asyncio.create_task(app({"type": "lifespan", "state": {}}, events.get, answers.put))
    started = await answers.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        await _pages(app, cookie, 20)  # warm: the grid's pieces, the pool, the templates
        BACKENDS[:] = _backends(DATABASE[0])  # the engine's and the event loop's connections
        # thread CPU time, not wall-clock: a busy machine does not move the figures
        profiler = cProfile.Profile(time.thread_time) if profile else None
        if profiler:
            profiler.enable()
        if callgrind:
            _instrument(True)
        server = _server_cpu()
        times = await _pages(app, cookie, pages)
        SERVER_CPU.append(_server_cpu() - server)
        if callgrind:
            _instrument(False)
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return times
    finally:
        await events.put({"type": "lifespan.shutdown"})
        await life


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--save", type=Path, help="write the last page's bytes here")
    parser.add_argument("--callgrind", action="store_true", help="count the pages only")
    parser.add_argument("--url", help="a database bench_grid's seed filled (--seed-only) before")
    parser.add_argument("--seed-only", action="store_true", help="seed, print the URL, keep it")
    args = parser.parse_args()

    from launcher.app import create_app
    from launcher.auth.user import pseudonym
    from launcher.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="launcher-grid-cpu-"))
    apps_file = tmp / "apps.yaml"
    apps_file.write_text(registry_yaml(), encoding="utf-8")
    url, dropped = (args.url, None) if args.url else _database(args.db, tmp)
    if args.seed_only:
        dropped = None
    try:
        settings = load_settings(
            secret_key=SECRET,
            base_url=BASE,
            oidc_issuer=ISSUER,
            oidc_client_id="bench",
            database_url=url,
            apps_file=apps_file,
            spool_dir=tmp / "spool",
        )
        if not args.url:
            seed(url, pseudonym(settings.pseudonym_secret(), ISSUER, "bench-user"))
        if args.seed_only:
            print(url)
            return 0
        DATABASE.append(url)
        app = create_app(settings, writer="thread")
        times = asyncio.run(_run(app, _mint_cookie(BASE), args.pages, args.profile, args.callgrind))
    finally:
        if dropped:
            _drop(dropped)
        if not (args.seed_only and args.db == "sqlite"):  # a seeded SQLite file is the output
            shutil.rmtree(tmp, ignore_errors=True)
    if args.save:
        args.save.write_bytes(LAST_PAGE[-1])
    times.sort()
    load = os.getloadavg()[0]
    server = f", PostgreSQL's server {SERVER_CPU[0] / args.pages * 1000:.2f} ms" if BACKENDS else ""
    print(
        f"{args.db}: {args.pages} pages, CPU per page: median {times[len(times) // 2] * 1000:.2f}"
        f" ms, best {times[0] * 1000:.2f} ms, mean {sum(times) / len(times) * 1000:.2f} ms{server}"
        f" (load average {load:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

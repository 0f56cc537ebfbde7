"""Grid page throughput: the portal's ``GET /`` against a bare Starlette page of the same bytes.

A person signed in (a minted session cookie), a registry of 60 apps, six favourites in their
order, 3,000 launches of their own in the last 90 days among 100,000 of other people: the page
is what such a person gets. ``launcher serve --workers 2`` serves it; ``bare_page.py`` serves
the very bytes the portal answered, with the same uvicorn options and 2 workers. ``wrk`` loads
them alternately in the same run, at 1 and at 64 connections, so the ratio portal/bare says what
building the page costs, whatever the machine.

    python bench/bench_grid.py [--db sqlite|postgres] [--rounds 2] [--duration 8]

Targets: ratio >= 0.1 and portal p99 <= 100 ms at 64 connections. Exit 1 when an answer was
not 200 or the page is not the signed-in grid; the ratio and p99 are reported, not enforced
(they depend on a quiet machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml
from bench_launch import (
    COUNT_SCRIPT,
    INSTALL_WRK,
    ISSUER,
    ROOT,
    SECRET,
    Server,
    _free_port,
    _mint_cookie,
    _ms,
    _start,
)

APPS = 60
FAVOURITES = 6
OWN_LAUNCHES = 3_000  # the person's, in the last 90 days
OTHER_LAUNCHES = 100_000  # everyone else's, so that the recent-apps query has to pick
PG_URL = os.environ.get(
    "LAUNCHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CATEGORIES = [
    ("communication", "Communication", "Communicatie"),
    ("care", "Care", "Zorg"),
    ("planning", "Planning and HR", "Planning en HR"),
    ("documents", "Documents and knowledge", "Documenten en kennis"),
    ("finance", "Finance", "Financiën"),
    ("support", "Help and learning", "Hulp en leren"),
]
ICONS = ["teams.svg", "outlook.svg", "ehr.svg", "rooster.svg", "sharepoint.svg", "servicedesk.svg"]
WORDS = [
    "dossier",
    "rooster",
    "verlof",
    "declaratie",
    "melding",
    "protocol",
    "leren",
    "kennis",
    "mail",
    "chat",
    "planning",
]


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]


def registry_yaml() -> str:
    """60 apps over six categories, every one visible to group staff; some with an icon, the
    rest with a monogram; descriptions and keywords in both languages, as a real one has."""
    rng = random.Random(60)
    apps = []
    for i in range(APPS):
        category = CATEGORIES[i % len(CATEGORIES)][0]
        app: dict[str, object] = {
            "id": f"app-{i:02d}",
            "name": f"{rng.choice(WORDS).title()} {category.title()} {i:02d}",
            "url": f"https://app{i:02d}.example.org/?login_hint={{email}}",
            "description": {
                "en": f"What app {i} is for, in a line of English",
                "nl": f"Waar app {i} voor is, in een regel Nederlands",
            },
            "category": category,
            "keywords": rng.sample(WORDS, 3),
        }
        if i % 3 == 0:
            app["icon"] = ICONS[i % len(ICONS)]
        if i % 4 == 0:
            app["groups"] = ["staff", "clinicians"]
        if i % 10 == 0:
            app["new_until"] = "2099-12-31"
        apps.append(app)
    doc = {
        "portal": {"title": "Zorggroep Bench", "default_language": "nl"},
        "categories": [
            {"id": c, "name": {"en": en, "nl": nl}, "order": n * 10}
            for n, (c, en, nl) in enumerate(CATEGORIES)
        ],
        "apps": apps,
    }
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def seed(url: str, user_id: str) -> None:
    """The person's favourites and launches, and everyone else's launches."""
    from launcher import db, personal
    from launcher.models import Favourite, LaunchEvent, table

    engine = db.make_engine(url)
    db.upgrade(engine)
    rng = random.Random(3000)
    now = dt.datetime.now(dt.UTC)
    ids = [f"app-{i:02d}" for i in range(APPS)]

    def launch(user: str) -> dict[str, object]:
        return {
            "ts": now - dt.timedelta(seconds=rng.uniform(60, 90 * 86400)),
            "app_id": rng.choice(ids),
            "user_id": user,
            "source": "tile",
        }

    launches = table(LaunchEvent)
    columns = {c.name for c in launches.columns}
    rows = [launch(user_id) for _ in range(OWN_LAUNCHES)]
    others = [f"other-{n:05d}" for n in range(2_000)]
    rows += [launch(rng.choice(others)) for _ in range(OTHER_LAUNCHES)]
    rows = [{k: v for k, v in r.items() if k in columns} for r in rows]
    with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(sa.insert(launches), rows[start : start + 10_000])
        conn.execute(
            sa.insert(table(Favourite)),
            [
                {"user_id": user_id, "app_id": ids[n * 7], "created_at": now, "position": n}
                for n in range(FAVOURITES)
            ],
        )
    with engine.begin() as conn:  # as the flushes of these launches would have kept it
        personal.rebuild_recent(conn)
    if engine.dialect.name == "postgresql":
        from zoneinfo import ZoneInfo

        from launcher import partitions

        # the months' partitions the portal's start-up would move these launches into, then
        # as autovacuum would have by now: statistics, and the visibility map that lets
        # "recently used" read the index alone (it is set by VACUUM, not by ANALYZE)
        partitions.ensure(engine, ZoneInfo("Europe/Amsterdam"))  # the registry's default
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
    engine.dispose()


def wrk(url: str, cookie: str, connections: int, seconds: float, script: Path) -> Run:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    cmd += ["-H", f"Cookie: {cookie}", url]
    text = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout

    def find(pattern: str) -> str:
        match = re.search(pattern, text, re.M)
        assert match, f"no {pattern!r} in wrk's output:\n{text}"
        return match[1]

    return Run(
        rps=float(find(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)")),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)")),
        statuses={int(s): int(n) for s, n in re.findall(r"^STATUS (\d+) (\d+)$", text, re.M)},
    )


def portal_env(base_url: str, database_url: str, apps_file: Path, tmp: Path) -> dict[str, str]:
    """The environment of a ``launcher serve`` of the bench's portal (and none of ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAUNCHER_")}
    env.update(
        LAUNCHER_BASE_URL=base_url,
        LAUNCHER_SECRET_KEY=SECRET,
        LAUNCHER_DATABASE_URL=database_url,
        LAUNCHER_APPS_FILE=str(apps_file),
        LAUNCHER_SPOOL_DIR=str(tmp / "spool"),
        LAUNCHER_OIDC_ISSUER=ISSUER,
        LAUNCHER_OIDC_CLIENT_ID="bench",
        LAUNCHER_OIDC_CLIENT_SECRET="bench-client-secret",
    )
    return env


def _database(kind: str, tmp: Path) -> tuple[str, str | None]:
    """(URL, database to drop afterwards)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'launcher.db'}", None
    # a prefix of one's own on a server that others use too (their databases left alone)
    name = f"{os.environ.get('BENCH_DB_PREFIX', 'launcher_bench_')}{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False), name


def _drop(name: str) -> None:
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description="Grid page throughput: portal vs bare page.")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(f"bench: wrk is not installed. Install it with:\n    {INSTALL_WRK}", file=sys.stderr)
        return 2

    from launcher.auth.user import pseudonym
    from launcher.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="launcher-bench-grid-"))
    script = tmp / "count.lua"
    script.write_text(COUNT_SCRIPT)
    apps_file = tmp / "apps.yaml"
    apps_file.write_text(registry_yaml(), encoding="utf-8")
    portal_base = f"http://127.0.0.1:{_free_port()}"
    bare_base = f"http://127.0.0.1:{_free_port()}"
    url, dropped = _database(args.db, tmp)
    settings = load_settings(secret_key=SECRET, base_url=portal_base, oidc_issuer=ISSUER)
    user_id = pseudonym(settings.pseudonym_secret(), ISSUER, "bench-user")
    seed(url, user_id)
    env = portal_env(portal_base, url, apps_file, tmp)
    env["BENCH_PAGE_FILE"] = str(tmp / "page.html")
    py = sys.executable
    servers: list[Server] = []
    portal_port, bare_port = portal_base.rsplit(":", 1)[1], bare_base.rsplit(":", 1)[1]
    try:
        portal = _start(
            "portal",
            [py, "-m", "launcher", "serve", "--port", portal_port, "--workers", str(args.workers)],
            f"{portal_base}/",
            f"{portal_base}/healthz",
            env,
            tmp,
        )
        servers.append(portal)
        cookie = _mint_cookie(portal_base)
        page = httpx.get(portal.url, headers={"Cookie": cookie}, timeout=10)
        tiles = len(re.findall('class="tile( later)?"', page.text))
        if page.status_code != 200 or tiles < APPS or "cat-favourites" not in page.text:
            print(f"bench: not the signed-in grid ({page.status_code})", file=sys.stderr)
            return 2
        (tmp / "page.html").write_bytes(page.content)
        argv = [py, str(ROOT / "bench" / "bare_page.py"), "--port", bare_port]
        bare = _start(
            "bare",
            [*argv, "--workers", str(args.workers)],
            f"{bare_base}/",
            f"{bare_base}/",
            env,
            tmp,
        )
        servers.append(bare)

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        size, zipped = len(page.content), len(gzip.compress(page.content))
        print(
            f"GET / signed in: {APPS} apps ({tiles} tiles with favourites and recent), "
            f"{size / 1024:.0f} KiB ({zipped / 1024:.0f} KiB gzipped); {args.db}; "
            f"{args.workers} workers each; {os.cpu_count()} CPUs, load average {load:.1f}"
        )
        results: dict[int, tuple[list[Run], list[Run]]] = {}
        not_200: dict[int, int] = {}
        for conns in args.connections:
            wrk(bare.url, cookie, conns, args.warmup, script)
            wrk(portal.url, _mint_cookie(portal_base), conns, args.warmup, script)
            bare_runs, portal_runs = [], []
            for i in range(1, args.rounds + 1):
                b = wrk(bare.url, cookie, conns, args.duration, script)
                # a fresh cookie per run: the portal re-issues one a minute old on every page
                p = wrk(portal.url, _mint_cookie(portal_base), conns, args.duration, script)
                for s, n in (*b.statuses.items(), *p.statuses.items()):
                    if s != 200:
                        not_200[s] = not_200.get(s, 0) + n
                bare_runs.append(b)
                portal_runs.append(p)
                print(
                    f"  {conns:3d} conn, round {i}: bare {b.rps:6.0f} req/s p99 {b.p99_ms:5.1f} ms"
                    f"  portal {p.rps:5.0f} req/s p99 {p.p99_ms:6.1f} ms  ratio {p.rps / b.rps:.3f}"
                )
            results[conns] = (bare_runs, portal_runs)
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.proc.terminate()
        for server in servers:
            try:
                server.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
        if dropped:
            _drop(dropped)

    print()
    checks = []
    for conns, (bare_runs, portal_runs) in results.items():
        b_rps = statistics.median(r.rps for r in bare_runs)
        p_rps = statistics.median(r.rps for r in portal_runs)
        p50 = statistics.median(r.p50_ms for r in portal_runs)
        p99 = statistics.median(r.p99_ms for r in portal_runs)
        print(
            f"{conns:3d} connections: bare {b_rps:7.0f} req/s   portal {p_rps:6.0f} req/s   "
            f"ratio {p_rps / b_rps:.3f}   portal p50 {p50:.1f} ms p99 {p99:.1f} ms   "
            f"({1000 / p_rps * args.workers:.1f} ms of a worker per page)   (medians)"
        )
        if conns == 64:
            checks.append((p_rps / b_rps >= 0.1, f"ratio at 64 connections {p_rps / b_rps:.3f}"))
            checks.append((p99 <= 100, f"portal p99 at 64 connections {p99:.1f} ms (<= 100)"))
    other = ", ".join(f"{n} x {s}" for s, n in sorted(not_200.items())) or "none"
    print(f"answers other than 200: {other}")
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if not_200:
        print(f"bench: logs kept in {tmp}", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Importing sign-in logs: records per second against bare ``json`` parsing, and peak memory.

Generates an Entra ID export (Microsoft Graph ``signIn`` objects of a realistic size, as JSON
lines), then in the same run times:

- the baseline: ``json.loads`` of every line of the file, nothing else;
- ``launcher.signins.importer.import_files`` on SQLite and on PostgreSQL (a fresh database on
  ``LAUNCHER_TEST_POSTGRES``, default the local server), into a database that already holds
  launches of the same people in the same weeks, so that the join's probes run too.

Records come in time order, as Graph returns them (``--shuffled``: in random order, which
costs the database more). Each import runs in a child process of its own, so that its peak
resident memory (``VmHWM``) is the import's. Target: at least 50,000 records/s; memory
independent of the file's size, at most 200 MB: ``--memory 500000,1000000,2000000`` imports
the first 0.5, 1 and 2 million records of one file (2 M records are about 2.2 GB) into a fresh
database each and prints the peak resident memory of each.

On a shared machine the wall-clock ratio follows the other processes' load; the CPU ratio
does much less: bare ``json.loads``'s CPU seconds against the import's, all its threads, its
reading process and, on a local PostgreSQL, its server process (read from /proc). The peak
resident memory printed is the import's process's plus its reading process's.

    python bench/bench_import.py [--records 500000] [--launches 100000] [--no-postgres]
    python bench/bench_import.py --memory 500000,1000000,2000000
    python bench/bench_import.py --against /tmp/old --rounds 3   # A/B against another tree

``--against DIR`` imports the same file alternately with this tree's code and with the
``launcher`` package of ``DIR`` (e.g. ``git archive main launcher | tar -x -C DIR``), each
into a fresh database seeded alike, ``--rounds`` times each, in one run: on a shared machine
before and after can only be compared under the same load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from launcher import db
from launcher.auth.user import pseudonym
from launcher.settings import load_settings
from launcher.signins import importer

PREFIX = os.environ.get("BENCH_DB_PREFIX", "launcher_bench")  # fresh databases' names
PG_URL = os.environ.get(
    "LAUNCHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ADMIN = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
ISSUER = "https://login.microsoftonline.com/tenant/v2.0"
SECRET = "bench-secret-key-that-is-long-enough-0123456789"
APPS = [str(uuid.UUID(int=i + 1)) for i in range(12)]  # the last two have no tile
MAPPING = {app: f"app{i}" for i, app in enumerate(APPS[:10])}
USERS = 5000
START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
DAYS = 30


def _record(rnd: random.Random, i: int, at: dt.datetime) -> dict[str, object]:
    user = rnd.randrange(USERS)
    app = rnd.choice(APPS)
    return {
        "id": str(uuid.UUID(int=rnd.getrandbits(128))),
        "createdDateTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "userDisplayName": f"Employee {user}",
        "userPrincipalName": f"employee{user}@example.org",
        "userId": str(uuid.UUID(int=user + 10**6)),
        "appId": app,
        "appDisplayName": f"App {APPS.index(app)}",
        "ipAddress": f"10.{i % 250}.{user % 250}.{rnd.randrange(250)}",
        "clientAppUsed": "Browser",
        "correlationId": str(uuid.UUID(int=rnd.getrandbits(128))),
        "conditionalAccessStatus": "success",
        "isInteractive": rnd.random() < 0.8,
        "riskDetail": "none",
        "riskLevelAggregated": "none",
        "riskLevelDuringSignIn": "none",
        "riskState": "none",
        "riskEventTypes_v2": [],
        "resourceDisplayName": "Microsoft Graph",
        "resourceId": "00000003-0000-0000-c000-000000000000",
        "status": {
            "errorCode": 0 if rnd.random() < 0.95 else 50126,
            "failureReason": "Other.",
            "additionalDetails": None,
        },
        "deviceDetail": {
            "deviceId": "",
            "displayName": "",
            "operatingSystem": "Windows 10",
            "browser": "Edge 120.0.0",
            "isCompliant": False,
            "isManaged": False,
            "trustType": "",
        },
        "location": {
            "city": "Groningen",
            "state": "Groningen",
            "countryOrRegion": "NL",
            "geoCoordinates": {"altitude": None, "latitude": 53.2, "longitude": 6.56},
        },
        "appliedConditionalAccessPolicies": [],
    }


def generate(path: Path, n: int, shuffled: bool = False) -> None:
    rnd = random.Random(1)
    with path.open("w") as f:
        for i in range(n):
            second = rnd.randrange(DAYS * 86400) if shuffled else i * DAYS * 86400 // n
            f.write(json.dumps(_record(rnd, i, START + dt.timedelta(seconds=second))) + "\n")


def head(path: Path, n: int, into: Path) -> None:
    """The first ``n`` lines of ``path``."""
    with path.open("rb") as src, into.open("wb") as out:
        for _, line in zip(range(n), src, strict=False):
            out.write(line)


def seed_launches(url: str, n: int) -> None:
    """Launches of the same people and apps in the same weeks, and their departments."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    rnd = random.Random(2)
    sqlite = db.is_sqlite(engine)
    rows = []
    key = _key()
    for _ in range(n):
        user = pseudonym(key, ISSUER, str(uuid.UUID(int=rnd.randrange(USERS) + 10**6)))
        at = START + dt.timedelta(seconds=rnd.randrange(DAYS * 86400))
        ts = at.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else at
        rows.append((ts, f"app{rnd.randrange(10)}", user, "nursing", "portal"))
    with engine.begin() as conn:
        db.insert_rows(
            conn, "INSERT INTO launch_event (ts, app_id, user_id, department, source)", rows
        )
        first = {r[2]: r for r in rows}
        db.insert_rows(
            conn,
            "INSERT INTO user_first (user_id, first_day, department)",
            [(u, "2025-03-01" if sqlite else START.date(), "nursing") for u in first],
        )
    engine.dispose()


def _key() -> bytes:
    return load_settings(secret_key=SECRET, oidc_issuer=ISSUER).pseudonym_secret()


def child(url: str, path: Path) -> None:
    """Run one import and print its seconds and peak resident memory as JSON."""
    settings = load_settings(secret_key=SECRET, oidc_issuer=ISSUER, database_url=url)
    engine = db.make_engine(url)
    backends = backend_pids(engine)  # PostgreSQL: the server processes the import runs in
    started, cpu = time.perf_counter(), _cpu()
    summary = importer.import_files(engine, settings, MAPPING, "entra", [path])
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    server = sum(_process_cpu(pid) for pid in backends)
    # the import's own peak and its reading process's (a process of its own since
    # 2026-12-02; 0 for older code): their sum bounds the peak of the two together
    reader_mb = getattr(summary, "reader_kb", 0) / 1024
    peak_mb = _peak_rss_kb() / 1024 + reader_mb
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu + server,
                "client": cpu,
                "server": server,
                "peak_mb": peak_mb,
                "reader_mb": reader_mb,
                "summary": str(summary),
            }
        )
    )


def backend_pids(target: Any) -> list[int]:
    """The PostgreSQL server processes behind the connections ``target`` (an engine, or
    ``sa.engine.Engine`` for every engine) opens from now on, listed as they connect; none on
    SQLite. Their CPU is :func:`_process_cpu`'s, on a local server."""
    pids: list[int] = []

    def note(dbapi_connection: Any, _record: Any) -> None:
        if "psycopg" in type(dbapi_connection).__module__:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.append(cursor.fetchone()[0])
            dbapi_connection.rollback()  # hand it on outside a transaction, as it came

    sa.event.listen(target, "connect", note)
    return pids


def _cpu() -> float:
    """This process's CPU seconds, all its threads, and its children's that have ended (the
    import's reading process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _process_cpu(pid: int) -> float:
    """A local process's CPU seconds (/proc), 0 when it cannot be read (a remote server)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_kb() -> int:
    """The process's peak resident memory since exec: /proc's VmHWM (``ru_maxrss`` would
    include the benchmark's own memory, which Linux carries over into the child)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: an upper bound


def bare(path: Path) -> tuple[float, float]:
    """Seconds and CPU seconds of json.loads of every line of the file."""
    started, cpu = time.perf_counter(), _cpu()
    with path.open() as f:
        for line in f:
            json.loads(line)
    return time.perf_counter() - started, _cpu() - cpu


def run_child(url: str, path: Path, tree: str | None = None) -> dict[str, object]:
    """One import in a child process; ``tree``: with the launcher package found there."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(path)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def _databases(tmp: Path, postgres: bool) -> Iterator[tuple[str, Callable[[], str]]]:
    """(label, a function making a fresh database and returning its URL) per database."""
    made = itertools.count()
    yield "SQLite", lambda: f"sqlite:///{tmp}/import-{next(made)}.db"
    if postgres:
        names: list[str] = []

        def fresh() -> str:
            name = f"{PREFIX}_{uuid.uuid4().hex[:8]}"
            with ADMIN.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            names.append(name)
            return sa.make_url(PG_URL).set(database=name).render_as_string()

        try:
            yield "PostgreSQL", fresh
        finally:
            with ADMIN.connect() as conn:
                for name in names:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def speed(tmp: Path, args: argparse.Namespace) -> None:
    path = tmp / "signins.jsonl"
    generate(path, args.records, args.shuffled)
    size_mb = path.stat().st_size / 2**20
    order = "in random order" if args.shuffled else "in time order"
    print(f"{args.records:,} Entra sign-in records {order}, {size_mb:,.0f} MiB of JSON lines")
    for label, fresh in _databases(tmp, not args.no_postgres):
        url = fresh()
        seed_launches(url, args.launches)
        before = bare(path)  # just before and after: the machine's load changes
        r = run_child(url, path)
        after = bare(path)
        base, base_cpu = min(before[0], after[0]), min(before[1], after[1])
        rate = args.records / float(r["seconds"])  # type: ignore[arg-type]
        cpu = float(r["cpu"])  # type: ignore[arg-type]
        print(
            f"import {label + ':':<12}{rate:>9,.0f} records/s, bare json.loads "
            f"{args.records / base:>9,.0f} records/s: ratio {rate * base / args.records:.2f}; "
            f"CPU {cpu:.1f} s against json.loads {base_cpu:.1f} s: ratio {base_cpu / cpu:.2f}; "
            f"peak RSS {r['peak_mb']:.0f} MB (reading {r['reader_mb']:.0f}); "
            f"load {os.getloadavg()[0]:.1f}  ({r['summary']})",
            flush=True,
        )


def against(tmp: Path, args: argparse.Namespace) -> None:
    """The same file imported alternately by another tree's code and this one's."""
    path = tmp / "signins.jsonl"
    generate(path, args.records, args.shuffled)
    here = str(Path(__file__).resolve().parent.parent)
    trees = [("before", str(Path(args.against).resolve())), ("after", here)]
    print(f"{args.records:,} Entra sign-in records; before: {trees[0][1]}, after: {here}")
    for label, fresh in _databases(tmp, not args.no_postgres):
        for round_ in range(args.rounds):
            for name, tree in trees if round_ % 2 == 0 else trees[::-1]:
                url = fresh()
                seed_launches(url, args.launches)
                base = bare(path)
                load = os.getloadavg()[0]
                r = run_child(url, path, tree)
                rate = args.records / float(r["seconds"])  # type: ignore[arg-type]
                print(
                    f"{label:<11}{name:<7}{rate:>9,.0f} records/s (json.loads "
                    f"{args.records / base[0]:>9,.0f}: ratio {rate * base[0] / args.records:.2f}); "
                    f"CPU {float(r['cpu']):5.1f} s = client {float(r['client']):5.1f} "  # type: ignore[arg-type]
                    f"+ server {float(r['server']):5.1f} (json.loads {base[1]:.1f}: ratio "  # type: ignore[arg-type]
                    f"{base[1] / float(r['cpu']):.2f}); peak RSS {r['peak_mb']:.0f} MB "  # type: ignore[arg-type]
                    f"(reading {r['reader_mb']:.0f}); "
                    f"load {load:.1f}",
                    flush=True,
                )
                if url.startswith("sqlite"):
                    Path(url.removeprefix("sqlite:///")).unlink()


def memory(tmp: Path, args: argparse.Namespace) -> None:
    sizes = sorted(int(n) for n in args.memory.split(","))
    full = tmp / "signins-full.jsonl"
    generate(full, sizes[-1], args.shuffled)
    for label, fresh in _databases(tmp, not args.no_postgres):
        for n in sizes:
            path = full if n == sizes[-1] else tmp / f"signins-{n}.jsonl"
            if not path.exists():
                head(full, n, path)
            url = fresh()
            seed_launches(url, args.launches)
            r = run_child(url, path)
            rate = n / float(r["seconds"])  # type: ignore[arg-type]
            print(
                f"{label + ':':<12}{n:>10,} records, {path.stat().st_size / 2**30:5.2f} GiB: "
                f"peak RSS {r['peak_mb']:4.0f} MB (reading {r['reader_mb']:.0f}), "
                f"{rate:,.0f} records/s",
                flush=True,
            )
            if path != full:
                path.unlink()
            if url.startswith("sqlite"):
                Path(url.removeprefix("sqlite:///")).unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--launches", type=int, default=100_000)
    parser.add_argument("--shuffled", action="store_true", help="records in random time order")
    parser.add_argument("--memory", help="comma list of record counts: peak memory of each")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--against", help="another tree: its code and this one's, alternately")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each with --against")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    tmp = Path(tempfile.mkdtemp())
    try:
        (memory if args.memory else against if args.against else speed)(tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        ADMIN.dispose()


if __name__ == "__main__":
    main()

"""Importing sign-in logs: records per second against bare ``json`` parsing, and peak memory.

Generates an Entra ID export (Microsoft Graph ``signIn`` objects of a realistic size, as JSON
lines), then in the same run times:

- the baseline: ``json.loads`` of every line of the file, nothing else;
- ``launcher.signins.importer.import_files`` on SQLite and on PostgreSQL (a fresh database on
  ``LAUNCHER_TEST_POSTGRES``, default the local server), into a database that already holds
  launches of the same people in the same weeks, so that the join's probes run too.

Each import runs in a child process of its own, so that its peak resident memory (``ru_maxrss``)
is the import's. Target: at least 50,000 records/s; memory independent of the file's size.

    python bench/bench_import.py [--records 500000] [--launches 100000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from launcher import db
from launcher.auth.user import pseudonym
from launcher.settings import load_settings
from launcher.signins import importer

PG_URL = os.environ.get(
    "LAUNCHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ISSUER = "https://login.microsoftonline.com/tenant/v2.0"
SECRET = "bench-secret-key-that-is-long-enough-0123456789"
APPS = [str(uuid.UUID(int=i + 1)) for i in range(12)]  # the last two have no tile
MAPPING = {app: f"app{i}" for i, app in enumerate(APPS[:10])}
USERS = 5000
START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
DAYS = 30


def _record(rnd: random.Random, i: int) -> dict[str, object]:
    user = rnd.randrange(USERS)
    at = START + dt.timedelta(seconds=rnd.randrange(DAYS * 86400))
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


def generate(path: Path, n: int) -> None:
    rnd = random.Random(1)
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps(_record(rnd, i)) + "\n")


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
    started = time.perf_counter()
    summary = importer.import_files(engine, settings, MAPPING, "entra", [path])
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "summary": str(summary)}))


def bare(path: Path) -> float:
    started = time.perf_counter()
    with path.open() as f:
        for line in f:
            json.loads(line)
    return time.perf_counter() - started


def run_child(url: str, path: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--launches", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "signins.jsonl"
    generate(path, args.records)
    size_mb = path.stat().st_size / 2**20
    print(f"{args.records:,} Entra sign-in records, {size_mb:,.0f} MiB of JSON lines")
    base = min(bare(path) for _ in range(2))
    print(f"bare json.loads:  {args.records / base:>9,.0f} records/s")

    targets = [("SQLite", f"sqlite:///{tmp}/import.db")]
    admin = None
    if not args.no_postgres:
        name = f"launcher_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        targets.append(("PostgreSQL", sa.make_url(PG_URL).set(database=name).render_as_string()))
    try:
        for label, url in targets:
            seed_launches(url, args.launches)
            r = run_child(url, path)
            seconds = float(r["seconds"])  # type: ignore[arg-type]
            rate = args.records / seconds
            print(
                f"import {label + ':':<12}{rate:>9,.0f} records/s  ratio to bare json "
                f"{rate * base / args.records:.2f}  peak RSS {r['peak_mb']:.0f} MB  "
                f"({r['summary']})"
            )
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()

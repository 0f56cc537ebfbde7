"""What rollup upkeep adds to writing a batch of launches, measured in the same run.

The event writer (launcher/events/writer.py) inserts each batch of raw events and folds it into
the report rollups in the same transaction. This times the writer alone (CPU seconds per event)
with and without the rollups, for batches of one user, of fifty users and of 700 people new
that day (each makes today's bitmaps of who was active grow), and prints the
difference and its share of the server CPU a launch costs (pass that figure from
bench_launch.py).

Launches by source (launcher/reports/sources.py ``apply``) ride on the same flush too: the
``without sources`` line times the rollups with that step left out, so the difference is its
share.

The front-door join rides on the same flush (launcher/signins/join.py ``on_flush``). It is
timed with 100,000 imported sign-ins in the database: ``imported, before`` when they end
before the batch's launches (the usual case: logs are imported a day late; the flush then
costs two index probes), and ``imported, now`` when they cover the batch's launches and its
people (a launch replayed from the spool after an import: every launch is probed, and some
sign-ins are marked as through the portal and counted).

    python bench/bench_upkeep.py [--launch-cpu-us 140]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import db
from launcher.events import BatchWriter, Launch
from launcher.reports import rollups, sources
from launcher.signins import join

TZ = ZoneInfo("Europe/Amsterdam")
BATCH = 700  # about 100 ms of launches at 7,000 per second
BATCHES = 30
APPS = ("teams", "outlook", "ehr", "rooster", "intranet", "hr", "lms", "wiki")
DEPTS = ("nursing", "medical", "it", "hr", "support", "youth", "")


IMPORTED = 100_000


def _seed_imported(engine: sa.Engine, users: int, at: str) -> None:
    """``IMPORTED`` imported sign-ins to teams, of the batch's people among others: over the
    30 days before an hour ago (``before``) or in the last minutes (``now``)."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    for i in range(IMPORTED):
        if at == "before":
            ts = now - dt.timedelta(hours=1, seconds=i * 30 * 86400 // IMPORTED)
        else:
            ts = now - dt.timedelta(seconds=i % 300)
        user = f"user{i % (users * 4):05d}"  # a quarter of them the batch's people
        rows.append(
            (
                "entra",
                f"r{i}",
                ts.replace(tzinfo=None).isoformat(" ", "microseconds"),
                user,
                "teams",
                "x",
                "",
                "",
                0,
            )
        )
    with engine.begin() as conn:
        db.insert_rows(
            conn,
            "INSERT INTO imported_signin (provider, record_id, ts, user_id, app_id, "
            "provider_app_id, provider_app, department, via_portal)",
            rows,
        )
        join.fold(conn, "1 = 1", {})
        join.spans(conn, (now - dt.timedelta(days=40)).date())


def _cpu_per_event(
    with_rollups: bool, users: int, imported: str = "", by_source: bool = True
) -> float:
    """The least of three runs: the machine's other work only ever adds."""
    kept = sources.apply
    if not by_source:  # rollups.apply calls it through the module: leave it out for this run
        sources.apply = lambda conn, per_user, person_keys: None
    try:
        return min(_run(with_rollups, users, imported) for _ in range(3))
    finally:
        sources.apply = kept


def _run(with_rollups: bool, users: int, imported: str) -> float:
    tmp = Path(tempfile.mkdtemp())
    engine = db.make_engine(f"sqlite:///{tmp}/upkeep.db")
    db.upgrade(engine)
    if imported:
        _seed_imported(engine, users, imported)
    writer = BatchWriter(engine, tmp / "spool", on_flush=rollups.apply if with_rollups else None)
    batches = iter(range(10**9))

    def batch() -> list[Launch]:
        now = dt.datetime.now(dt.UTC)
        if users == 0:  # every launch by someone not seen today: every bitmap of today grows
            n = next(batches)
            return [
                Launch(now, APPS[i % len(APPS)], f"new{n:04d}-{i:03d}", DEPTS[i % 7], "portal")
                for i in range(BATCH)
            ]
        return [
            Launch(now, "teams", f"user{i % users:05d}", "nursing", "portal") for i in range(BATCH)
        ]

    for _ in range(3):  # warm up
        writer.write(f"bench-{next(batches)}", batch(), [], TZ)
    started = time.process_time()
    for _ in range(BATCHES):
        writer.write(f"bench-{next(batches)}", batch(), [], TZ)
    engine.dispose()
    seconds = time.process_time() - started
    shutil.rmtree(tmp, ignore_errors=True)
    return seconds / (BATCH * BATCHES) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch-cpu-us", type=float, default=140.0, help="server CPU per launch")
    args = parser.parse_args()
    raw, full = _cpu_per_event(False, 0), _cpu_per_event(True, 0)
    share = (full - raw) / args.launch_cpu_us
    print(
        f"{BATCH} new people per batch (8 apps, 7 departments): raw insert {raw:.1f} us/event, "
        f"with rollups {full:.1f} us/event: upkeep {full - raw:.1f} us = {share:.1%} of a launch"
    )
    for users in (1, 50):
        raw, full = _cpu_per_event(False, users), _cpu_per_event(True, users)
        share = (full - raw) / args.launch_cpu_us
        print(
            f"{users:>3} user(s) per batch: raw insert {raw:.1f} us/event, with rollups "
            f"{full:.1f} us/event: upkeep {full - raw:.1f} us = {share:.1%} of a launch "
            f"({'PASS' if share <= 0.10 else 'FAIL'}, target <= 10 %)"
        )
        bare = _cpu_per_event(True, users, by_source=False)
        print(
            f"    without sources {bare:.1f} us/event: launches by source add "
            f"{full - bare:+.1f} us = {(full - bare) / args.launch_cpu_us:+.1%} of a launch"
        )
        for at in ("before", "now"):
            joined = _cpu_per_event(True, users, at)
            extra = (joined - full) / args.launch_cpu_us
            print(
                f"    {IMPORTED:,} imported sign-ins, {at + ':':<7} with rollups and the "
                f"join {joined:.1f} us/event: the join adds {joined - full:+.1f} us = "
                f"{extra:+.1%} of a launch"
            )


if __name__ == "__main__":
    main()

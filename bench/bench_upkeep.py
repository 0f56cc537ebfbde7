"""What rollup upkeep adds to writing a batch of launches, measured in the same run.

The event writer (launcher/events/writer.py) inserts each batch of raw events and folds it into
the report rollups in the same transaction. This times the writer alone (CPU seconds per event)
with and without the rollups, for batches of one user and of fifty users, and prints the
difference and its share of the server CPU a launch costs (pass that figure from
bench_launch.py).

    python bench/bench_upkeep.py [--launch-cpu-us 140]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from launcher import db
from launcher.events import BatchWriter, Launch
from launcher.reports import rollups

TZ = ZoneInfo("Europe/Amsterdam")
BATCH = 700  # about 100 ms of launches at 7,000 per second
BATCHES = 30


def _cpu_per_event(with_rollups: bool, users: int) -> float:
    tmp = Path(tempfile.mkdtemp())
    engine = db.make_engine(f"sqlite:///{tmp}/upkeep.db")
    db.upgrade(engine)
    writer = BatchWriter(engine, tmp / "spool", on_flush=rollups.apply if with_rollups else None)
    batches = iter(range(10**9))

    def batch() -> list[Launch]:
        now = dt.datetime.now(dt.UTC)
        return [
            Launch(now, "teams", f"user{i % users:05d}", "nursing", "portal") for i in range(BATCH)
        ]

    for _ in range(3):  # warm up
        writer.write(f"bench-{next(batches)}", batch(), [], TZ)
    started = time.process_time()
    for _ in range(BATCHES):
        writer.write(f"bench-{next(batches)}", batch(), [], TZ)
    engine.dispose()
    return (time.process_time() - started) / (BATCH * BATCHES) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch-cpu-us", type=float, default=140.0, help="server CPU per launch")
    args = parser.parse_args()
    for users in (1, 50):
        raw, full = _cpu_per_event(False, users), _cpu_per_event(True, users)
        share = (full - raw) / args.launch_cpu_us
        print(
            f"{users:>3} user(s) per batch: raw insert {raw:.1f} us/event, with rollups "
            f"{full:.1f} us/event: upkeep {full - raw:.1f} us = {share:.1%} of a launch "
            f"({'PASS' if share <= 0.10 else 'FAIL'}, target <= 10 %)"
        )


if __name__ == "__main__":
    main()

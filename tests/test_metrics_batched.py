"""launcher/metrics.py in multiprocess mode: launches and request times are counted in the
worker and added to the shared files by Metrics.flush, with the same result as adding each one
as it happens. Multiprocess mode is chosen when prometheus-client is imported, so each side
runs in a fresh interpreter with PROMETHEUS_MULTIPROC_DIR set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys
from launcher import metrics
m = metrics.Metrics()
assert m.batched, "not in multiprocess mode"
m.batched = sys.argv[1] == "batched"
# on each bucket's bound, between bounds, past the last one, and zero
times = [0.0, 0.001, 0.0011, 0.0025, 0.7, 10.0, 12.5, 0.004] * 3
for i, seconds in enumerate(times):
    m.observe("/launch/{app_id}" if i % 2 else "/", seconds)  # odd: the launch route
    m.count_launch("teams" if i % 3 else "outlook")
before = m.exposition(metrics.Path(sys.argv[2])).decode()
m.flush()
m.flush()  # a second flush adds nothing
after = m.exposition(metrics.Path(sys.argv[2])).decode()
keep = lambda text: sorted(
    line for line in text.splitlines()
    if line.startswith(("launcher_request_duration_seconds", "launcher_launches_total"))
)
print(json.dumps({"before": keep(before), "after": keep(after)}))
"""


def _run(mode: str, tmp_path: Path) -> dict[str, list[str]]:
    directory = tmp_path / mode
    directory.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_flushed_counts_are_the_counts_added_one_by_one(tmp_path: Path) -> None:
    batched = _run("batched", tmp_path)
    direct = _run("direct", tmp_path)
    assert batched["after"] == direct["after"]
    assert 'launcher_launches_total{app="teams"} 16.0' in direct["after"]
    assert 'launcher_request_duration_seconds_bucket{le="0.001",route="/"} 3.0' in direct["after"]
    assert (
        'launcher_request_duration_seconds_count{route="/launch/{app_id}"} 12.0'
        in (direct["after"])
    )
    # until the flush a scrape shows none of the worker's counts; then all of them
    assert not any(line.startswith("launcher_launches_total") for line in batched["before"])
    assert direct["before"] == direct["after"]

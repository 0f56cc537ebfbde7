"""Prometheus metrics of the portal: one process, or every worker of a host.

One worker (``launcher serve``, the tests): the metrics live in a registry of this
:class:`Metrics` (no global state) and ``/metrics`` shows them.

Several workers (``launcher serve --workers N``): a scrape reaches one worker, so each would
show only its share. ``serve`` then points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start (launcher/serve.py); prometheus-client, imported afresh in each worker,
keeps every value in a memory-mapped file per process there, and the answering worker sums the
files of all (:func:`exposition`). Counters and histograms of a worker that died stay in the sum
(a counter must not go down); its gauges go (``serve`` marks the process dead). Each gauge says
how the workers' values combine (``multiprocess_mode``): events waiting add up, the oldest wait
is the largest, the registry is valid when it is valid in every worker.

Spool depth is read from the spool directory when scraped: the directory belongs to the host,
not to a worker.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# seconds: a launch takes about a millisecond, a report page up to a few hundred
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OTHER_ROUTE = "other"  # a path no route matched: never the raw path (unbounded label values)


def multiprocess_mode() -> bool:
    """True when this process writes its values to PROMETHEUS_MULTIPROC_DIR: the variable was
    set before prometheus-client was imported (it picks its value class then)."""
    return bool(os.environ.get(MULTIPROC_ENV)) and values.ValueClass is not values.MutexValue


class Metrics:
    """The portal's metrics. In multiprocess mode a second instance in one process (tests that
    build several apps) shares the first one's values, as prometheus-client keys them by name."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.launches = Counter("launcher_launches", "Launches answered", ["app"], registry=r)
        self._launch_children: dict[str, Any] = {}
        self.signins = Counter("launcher_signins", "Completed sign-ins", registry=r)
        self.login_failures = Counter(
            "launcher_login_failures", "Failed sign-ins by reason", ["reason"], registry=r
        )
        self.latency = Histogram(
            "launcher_request_duration_seconds",
            "Time to answer a request, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._latency_children: dict[str, Any] = {}
        # in multiprocess mode, counted here and added to the shared files by flush()
        self.batched = multiprocess_mode()
        self._pending_launches: dict[str, int] = {}
        self._pending_latency: dict[str, list[float]] = {}
        self.pending = Gauge(
            "launcher_events_pending",
            "Events answered and not yet written or spooled",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.batch_age = Gauge(
            "launcher_events_oldest_pending_seconds",
            "How long the oldest event not yet written or spooled has waited",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.spooled = Gauge(
            "launcher_events_spooled",
            "Events spooled to disk since the worker started",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.registry_ok = Gauge(
            "launcher_registry_valid",
            "1 when apps.yaml on disk is valid",
            registry=r,
            multiprocess_mode="livemin",
        )
        # every worker reads the same app_status table (launcher/status.py), so with several
        # workers the most recent value of a live one is the answer
        self.app_up = Gauge(
            "launcher_app_up",
            "1 when the app's status_url answered 2xx/3xx at its last check, 0 when not",
            ["app"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )

    def launch_counter(self, app_id: str) -> Any:
        """The launch counter of one app; labels() is too slow to call on every launch."""
        child = self._launch_children.get(app_id)
        if child is None:
            child = self._launch_children[app_id] = self.launches.labels(app_id)
        return child

    def count_launch(self, app_id: str) -> None:
        """One launch of ``app_id`` answered (in multiprocess mode added at the next flush)."""
        if not self.batched:
            self.launch_counter(app_id).inc()
            return
        pending = self._pending_launches
        pending[app_id] = pending.get(app_id, 0) + 1

    def observe(self, route: str, seconds: float) -> None:
        """One request's time; ``route`` is a template (``/launch/{app_id}``), never a path.
        In multiprocess mode it is added to the histogram at the next flush."""
        if not self.batched:
            self._latency_child(route).observe(seconds)
            return
        pending = self._pending_latency.get(route)
        if pending is None:  # a count per bucket (the last one +Inf's), then the sum
            pending = self._pending_latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        # the first bucket whose bound is >= seconds: prometheus-client's "amount <= bound"
        pending[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        pending[-1] += seconds

    def flush(self) -> None:
        """Add this worker's launches and request times since the last flush to the shared
        values (multiprocess mode; every GAUGES_EVERY, before a scrape this worker answers and
        when it stops). Called from the event loop, as count_launch and observe are.

        Written one by one, each launch's two updates of the memory-mapped files cost a worker
        15 µs of a launch's ~95 µs under load (bench/README.md, bench_scale.py): the file's
        lock, its process-id check and its pages, dirtied and written back, faulting again.
        The price: a scrape sees another worker's counts up to a second late, and a worker
        killed outright takes its last second of counts with it (its launches are written)."""
        launches, self._pending_launches = self._pending_launches, {}
        for app_id, n in launches.items():
            self.launch_counter(app_id).inc(n)
        latency, self._pending_latency = self._pending_latency, {}
        for route, pending in latency.items():
            _add_observations(self._latency_child(route), pending)

    def _latency_child(self, route: str) -> Any:
        child = self._latency_children.get(route)
        if child is None:
            child = self._latency_children[route] = self.latency.labels(route)
        return child

    def events(self, pending: int, oldest: float | None, spooled: int) -> None:
        """This worker's event store, as of now (set every second and at each scrape)."""
        self.pending.set(pending)
        self.batch_age.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
        self.spooled.set(spooled)

    def exposition(self, spool_dir: Path) -> bytes:
        """The text a scrape gets: every worker's values when in multiprocess mode."""
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        spool = SpoolDepth(spool_dir)
        registry.register(spool)
        try:
            return bytes(generate_latest(registry))
        finally:
            registry.unregister(spool)


def _add_observations(child: Any, pending: list[float]) -> None:
    """Add many observations to a histogram's child at once: ``pending`` holds a count per
    bucket (in LATENCY_BUCKETS' order, then +Inf) and their sum. prometheus-client has no call
    for it, so this adds to the child's own values as its observe() does, one bucket each
    (``_sum`` and ``_buckets``, the same in every release since 0.4);
    tests/test_metrics_batched.py holds the exposition equal to observing one by one."""
    counts, total = pending[:-1], pending[-1]
    child._sum.inc(total)
    for bucket, n in zip(child._buckets, counts, strict=True):
        if n:
            bucket.inc(n)


class SpoolDepth(Collector):
    """Batches and events waiting in LAUNCHER_SPOOL_DIR, counted when scraped."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        files = events = 0
        for path in self.directory.glob("events-*.jsonl*"):  # waiting, or claimed by a writer
            if path.suffix in (".bad", ".tmp"):  # set aside, or half written
                continue
            try:
                with path.open("rb") as file:
                    events += sum(1 for line in file if line.strip())
                files += 1
            except OSError:  # replayed and removed while we looked
                continue
        yield GaugeMetricFamily(
            "launcher_spool_files", "Batches waiting in the spool directory", value=files
        )
        yield GaugeMetricFamily(
            "launcher_spool_events", "Events waiting in the spool directory", value=events
        )

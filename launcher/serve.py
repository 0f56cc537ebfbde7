"""``launcher serve``: the production portal under uvicorn.

The command checks what it can before any worker starts (settings, the registry, the
database's migrations), so a bad start fails once with a clear message instead of once per
worker; the workers then build the app from the same environment (:func:`build_serve_app`).
With several workers it sets up the directory where their metrics meet (:class:`_MetricsDir`).
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from launcher import db, logs
from launcher.errors import LauncherError
from launcher.metrics import MULTIPROC_ENV
from launcher.registry import load_registry
from launcher.settings import load_settings

GRACEFUL_SHUTDOWN = 5  # seconds for requests in flight; then the last flush (< 4 s): exit < 10 s
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
REAP_EVERY = 5.0  # seconds between looks for workers that died (their metric files)


def build_serve_app() -> object:
    """Factory for uvicorn workers: each process reads the same environment."""
    from launcher.app import create_app

    settings = load_settings()
    settings.require_production()
    app = create_app(settings)
    # What exists now lives as long as the worker: keep it out of the collector's full passes,
    # which would otherwise walk every module and model object while all requests wait.
    gc.collect()
    gc.freeze()
    return app


def _exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(host: str, port: int, workers: int) -> None:
    """Check the configuration and the database, then serve until SIGTERM or SIGINT."""
    import uvicorn

    settings = load_settings()
    settings.require_production()
    load_registry(settings.apps_file)  # a portal with no valid registry has nothing to serve
    engine = db.make_engine(settings.database_url)
    if db.is_sqlite(engine):
        db.upgrade(engine)  # once, before the workers start, so they never race on it
    elif db.pending_migrations(engine):
        raise LauncherError("the database needs migrating: run 'launcher db upgrade' first")
    engine.dispose()
    metrics_dir = _metrics_dir(settings.spool_dir, workers)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so one worker would end as
    # "killed by signal" (143) where --workers N exits 0: a finished shutdown exits 0 in both.
    previous = {sig: signal.signal(sig, _exit_after_shutdown) for sig in _STOP_SIGNALS}
    try:
        uvicorn.run(
            "launcher.serve:build_serve_app",
            factory=True,
            **uvicorn_options(
                host, port, workers, access_log=settings.access_log, log_format=settings.log_format
            ),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_dir is not None:
            metrics_dir.close()


class _MetricsDir:
    """The directory where every worker keeps its metric values (launcher/metrics.py), and
    a thread that tells prometheus-client about workers that died (uvicorn starts new ones):
    their gauges must leave the sums, their counters stay."""

    def __init__(self, path: Path, created: bool) -> None:
        self.path = path
        self.created = created
        self.stopping = threading.Event()
        self.dead: set[int] = set()
        self.thread = threading.Thread(target=self._reap, name="metrics-reaper", daemon=True)
        self.thread.start()

    def _reap(self) -> None:
        from prometheus_client import multiprocess

        while not self.stopping.wait(REAP_EVERY):
            for pid in self.pids() - self.dead:
                if not _alive(pid):
                    multiprocess.mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]
                    self.dead.add(pid)

    def pids(self) -> set[int]:
        """The processes with files here (``counter_1234.db``, ``gauge_livesum_1234.db``)."""
        found = set()
        for file in self.path.glob("*.db"):
            tail = file.stem.rpartition("_")[2]
            if tail.isdigit():
                found.add(int(tail))
        return found

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=REAP_EVERY + 1)
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now has the number: ours is gone
        return False
    return True


def _metrics_dir(spool_dir: Path, workers: int) -> _MetricsDir | None:
    """With several workers, a fresh PROMETHEUS_MULTIPROC_DIR under the spool directory (the
    host's own writable place, an emptyDir on Kubernetes), set before the workers start so that
    each imports prometheus-client in multiprocess mode. One given in the environment is used
    as it is, emptied of an earlier run's files (prometheus-client's rule). One worker needs
    none: its own registry is the whole host."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
        return _MetricsDir(path, created=False)
    if workers <= 1:
        return None
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="metrics-", dir=spool_dir))
    os.environ[MULTIPROC_ENV] = str(path)  # the workers are spawned: they inherit it
    return _MetricsDir(path, created=True)


def uvicorn_options(
    host: str, port: int, workers: int = 1, *, access_log: bool = False, log_format: str = "text"
) -> dict[str, Any]:
    """How ``serve`` runs uvicorn; bench/bare_redirect.py serves its baseline the same way."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
        "proxy_headers": True,
        "server_header": False,
        "log_level": "info",
        "access_log": access_log,  # LAUNCHER_ACCESS_LOG
        # our handler and format for uvicorn's loggers too, applied in every worker process
        "log_config": logs.dict_config(log_format),  # LAUNCHER_LOG_FORMAT
    }

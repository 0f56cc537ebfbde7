"""``launcher serve``: the production portal under uvicorn.

The command checks what it can before any worker starts (settings, the registry, the
database's migrations), so a bad start fails once with a clear message instead of once per
worker; the workers then build the app from the same environment (:func:`build_serve_app`).
"""

from __future__ import annotations

import gc
import signal
from typing import Any

from launcher import db, logs
from launcher.errors import LauncherError
from launcher.registry import load_registry
from launcher.settings import load_settings

GRACEFUL_SHUTDOWN = 5  # seconds for requests in flight; then the last flush (< 4 s): exit < 10 s
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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

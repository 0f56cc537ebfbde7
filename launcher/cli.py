"""The ``launcher`` command. It builds Settings and calls create_app or a domain function."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from launcher import __version__, db
from launcher.errors import LauncherError, RegistryError
from launcher.registry import json_schema, load_registry
from launcher.settings import Settings, load_settings

log = logging.getLogger("launcher")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEMO_CLIENT_ID = "launcher-demo"
GRACEFUL_SHUTDOWN = 8  # seconds; DESIGN.md: on SIGTERM the portal exits within 10 s


def build_parser() -> argparse.ArgumentParser:
    """The ``launcher`` command line; docs/CLI.md shows its ``--help`` (tests/test_cli.py)."""
    parser = argparse.ArgumentParser(
        prog="launcher", description="Single sign-on app launcher portal."
    )
    parser.add_argument("--version", action="version", version=f"launcher {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
    ) -> argparse.ArgumentParser:
        # the same text in the list of commands and atop the command's own --help
        return parent.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")

    serve = command(sub, "serve", "serve the portal")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (%(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (%(default)s)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (%(default)s)")

    demo = command(
        sub, "demo", "the portal with a development identity provider (never for production)"
    )
    demo.add_argument("--host", default="127.0.0.1", help="a loopback address only (%(default)s)")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (%(default)s)")

    check = command(sub, "check-config", "validate an app registry (exit 0 valid, 1 invalid)")
    check.add_argument(
        "path", nargs="?", type=Path, help="registry file (default: LAUNCHER_APPS_FILE)"
    )
    check.add_argument("--schema", action="store_true", help="print the JSON Schema of the format")

    database = command(sub, "db", "database maintenance")
    db_sub = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    command(db_sub, "upgrade", "apply pending migrations")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "db":
            settings = load_settings()
            db.upgrade(db.make_engine(settings.database_url))
            print(f"database at {_redacted(settings.database_url)} is up to date")
            return 0
    except RegistryError as exc:
        print(f"launcher: error: the app registry is invalid:\n{exc}", file=sys.stderr)
        return 1
    except LauncherError as exc:
        print(f"launcher: error: {exc}", file=sys.stderr)
        return 1
    except sa.exc.SQLAlchemyError as exc:  # e.g. the database is unreachable: no traceback
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"launcher: error: database: {reason}", file=sys.stderr)
        return 1
    return 2


def _redacted(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def _check_config(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    path = args.path or load_settings().apps_file
    try:
        registry = load_registry(path)
    except RegistryError as exc:
        print(str(exc), file=sys.stderr)
        print(f"{path}: invalid ({len(exc.problems)} problem(s))", file=sys.stderr)
        return 1
    hidden = sum(app.hidden for app in registry.apps)
    print(
        f"{path}: valid: {len(registry.apps)} apps ({hidden} hidden) in "
        f"{len(registry.categories)} categories"
    )
    return 0


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


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve(args: argparse.Namespace) -> int:
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
            "launcher.cli:build_serve_app",
            factory=True,
            **uvicorn_options(args.host, args.port, args.workers),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def uvicorn_options(host: str, port: int, workers: int = 1) -> dict[str, Any]:
    """How ``serve`` runs uvicorn; bench/bare_redirect.py serves its baseline the same way."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
        "proxy_headers": True,
        "server_header": False,
        "log_level": "info",
    }


def demo_settings(host: str, port: int, var: Path = Path("var"), **overrides: object) -> Settings:
    """Settings for ``launcher demo``: SQLite under var/, the development provider, a saved key."""
    var.mkdir(parents=True, exist_ok=True)
    key_file = var / "demo-secret"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    base = f"http://{'[::1]' if host == '::1' else host}:{port}"
    values: dict[str, object] = {
        "demo": True,
        "base_url": base,
        "secret_key": key_file.read_text().strip(),
        "oidc_issuer": f"{base}/_devidp",
        "oidc_client_id": DEMO_CLIENT_ID,
        "oidc_client_secret": "demo-secret-" + key_file.read_text().strip()[:16],
    }
    if "LAUNCHER_DATABASE_URL" not in os.environ:
        values["database_url"] = f"sqlite:///{var}/demo.db"
    return load_settings(**{**values, **overrides})


def build_demo_app(settings: Settings, var: Path = Path("var")) -> object:
    """The portal with the development provider mounted at /_devidp."""
    from starlette.routing import Mount

    from launcher.app import create_app
    from launcher.auth.devidp import DevClient, create_devidp

    assert settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret
    idp = create_devidp(
        settings.oidc_issuer,
        [
            DevClient(
                client_id=settings.oidc_client_id,
                client_secret=settings.oidc_client_secret.get_secret_value(),
                redirect_uris=(settings.redirect_uri,),
                post_logout_redirect_uris=(f"{settings.base_url}/signed-out",),
            )
        ],
        key_file=var / "devidp-key.json",
    )
    return create_app(settings, extra_routes=[Mount("/_devidp", app=idp)], migrate=True)


def _demo(args: argparse.Namespace) -> int:
    import uvicorn

    if args.host not in LOOPBACK:
        raise LauncherError("the demo serves only on a loopback address (127.0.0.1, ::1)")
    settings = demo_settings(args.host, args.port)
    app = build_demo_app(settings)
    print(
        f"\n  Launcher demo on {settings.base_url}\n"
        "  Sign in as one of the demo users on the development provider's page:\n"
        "    Sanne de Vries (staff) · Daan Jansen (clinician) · "
        "Fatima El Amrani (reviewer) · Pieter Bakker (admin)\n"
        "  Never use the demo in production.\n",
        flush=True,
    )
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        server_header=False,
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

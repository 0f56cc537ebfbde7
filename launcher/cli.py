"""The ``launcher`` command. It builds Settings and calls create_app or a domain function."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import __version__, db, demodata
from launcher.errors import LauncherError, RegistryError
from launcher.registry import json_schema, load_registry
from launcher.reports import periods, queries, rebuild, tables
from launcher.reports.tables import TABLE_NAMES
from launcher.settings import Settings, load_settings

log = logging.getLogger("launcher")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEMO_CLIENT_ID = "launcher-demo"
GRACEFUL_SHUTDOWN = 5  # seconds for requests in flight; then the last flush (< 4 s): exit < 10 s


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
    command(db_sub, "rebuild-rollups", "recompute the report tables from the raw events")
    command(db_sub, "purge", "delete raw events older than LAUNCHER_RAW_RETENTION_DAYS")

    data = command(sub, "demo-data", "generate realistic launch history into the database")
    data.add_argument("--months", type=int, default=14, help="months of history (%(default)s)")
    data.add_argument("--employees", type=int, default=2000, help="employees (%(default)s)")
    data.add_argument("--seed", type=int, default=2025, help="random seed (%(default)s)")

    report = command(sub, "report", "the reviewer figures in the terminal")
    report.add_argument("--from", dest="start", help="first day, YYYY-MM-DD (30 days ago)")
    report.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (today)")
    report.add_argument(
        "--by",
        choices=["app", "category", "department", "day", "month"],
        default="app",
        help="launches broken down by (%(default)s)",
    )
    report.add_argument(
        "--table",
        choices=["launches", *TABLE_NAMES],
        default="launches",
        help="a table of the /reports page instead of launches (%(default)s)",
    )
    report.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="(%(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is noise
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "db":
            return _db(args)
        if args.command == "demo-data":
            return _demo_data(args)
        if args.command == "report":
            return _report(args)
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


def _db(args: argparse.Namespace) -> int:
    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    if args.db_command == "upgrade":
        print(f"database at {_redacted(settings.database_url)} is up to date")
    elif args.db_command == "rebuild-rollups":
        events = rebuild.rebuild(
            engine, ZoneInfo(load_registry(settings.apps_file).portal.timezone)
        )
        print(f"rollups rebuilt from {events:,} raw events")
    elif args.db_command == "purge":
        tz = ZoneInfo(load_registry(settings.apps_file).portal.timezone)
        deleted = rebuild.purge_raw(engine, settings.raw_retention_days, tz)
        print(f"deleted {deleted:,} raw events older than {settings.raw_retention_days} days")
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    settings = load_settings()
    registry = load_registry(settings.apps_file)
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    key = settings.pseudonym_secret() if settings.secret_key or settings.pseudonym_key else b""
    print(f"generating {args.months} months for {args.employees} employees …", file=sys.stderr)
    started = time.monotonic()
    events = demodata.generate(
        engine,
        registry,
        months=args.months,
        employees=args.employees,
        pseudonym_key=key or secrets.token_bytes(32),
        seed=args.seed,
        progress=demodata.progress_bar,
    )
    print(f"{events:,} events written in {time.monotonic() - started:.0f} s")
    return 0


def _report(args: argparse.Namespace) -> int:
    settings = load_settings()
    registry = load_registry(settings.apps_file)
    engine = db.make_engine(settings.database_url)
    today = dt.datetime.now(dt.UTC).date()
    period = periods.parse_period(args.start, args.end, today)
    if args.table == "launches":
        rows = queries.launches(engine, registry, period, args.by, settings.report_min_group)
        body: Any = {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "by": args.by,
            "rows": rows,
        }
        table = tables.Table(
            "launches",
            f"Launches by {args.by}",
            (args.by, "launches", "users"),
            [
                (
                    r["key"],
                    *(
                        (f"< {settings.report_min_group}",) * 2
                        if r.get("suppressed")
                        else (r["launches"], r["users"])
                    ),
                )
                for r in rows
            ],
        )
    else:
        report = tables.build(engine, registry, period, today, settings.report_min_group)
        table = report.tables[args.table]
        body = {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "table": table.name,
            "columns": list(table.columns),
            "rows": [list(r) for r in table.rows],
        }
    if args.format == "json":
        print(json.dumps(body, indent=2, default=str))
    elif args.format == "csv":
        sys.stdout.write(table.csv())
    else:
        print(f"{table.title}, {period.start} to {period.end} (UTC)")
        print(tables.as_text(table))
    return 0


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
            **uvicorn_options(args.host, args.port, args.workers, access_log=settings.access_log),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def uvicorn_options(
    host: str, port: int, workers: int = 1, *, access_log: bool = False
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


def _demo_history(settings: Settings) -> None:
    """On the demo's first start, 14 months of history so that every chart has a story."""
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        empty = conn.execute(sa.text("SELECT 1 FROM launch_event LIMIT 1")).first() is None
    if empty:
        registry = load_registry(settings.apps_file)
        months = 14
        go_live = registry.portal.go_live
        today = dt.datetime.now(dt.UTC).date()
        if go_live and go_live < today:  # cover go-live, so "vs. go-live" has its baseline
            months = max(months, (today.year - go_live.year) * 12 + today.month - go_live.month + 1)
        print(f"  First start: generating {months} months of launch history …", file=sys.stderr)
        demodata.generate(
            engine,
            registry,
            months=months,
            employees=2000,
            pseudonym_key=settings.pseudonym_secret(),
            progress=demodata.progress_bar,
        )
    engine.dispose()


def _demo(args: argparse.Namespace) -> int:
    import uvicorn

    if args.host not in LOOPBACK:
        raise LauncherError("the demo serves only on a loopback address (127.0.0.1, ::1)")
    settings = demo_settings(args.host, args.port)
    _demo_history(settings)
    app = build_demo_app(settings)
    from launcher.auth.devidp import DEMO_USERS

    users = "\n".join(f"    {u.name} ({', '.join(u.groups)})" for u in DEMO_USERS)
    print(
        f"\n  Launcher demo on {settings.base_url}\n"
        f"  Sign in as one of the demo users on the development provider's page:\n{users}\n"
        "  The reviewer sees /reports; the admin sees /admin. Never use the demo in production.\n",
        flush=True,
    )
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        server_header=False,
        log_level="info",
        access_log=settings.access_log,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

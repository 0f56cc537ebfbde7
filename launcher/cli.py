"""The ``launcher`` command: it parses the arguments and calls the function that does the work."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import __version__, db, jobs, logs, partitions
from launcher.audit import audit
from launcher.demo import command as demo_command
from launcher.demo import data as demo_data
from launcher.demo.signins import FILE as DEMO_SIGNINS
from launcher.engage import digest
from launcher.errors import LauncherError, RegistryError
from launcher.registry import json_schema, load_registry
from launcher.reports import output, periods, rebuild
from launcher.reports.tables import TABLE_NAMES
from launcher.serve import serve
from launcher.settings import Settings, load_settings
from launcher.signins import importer
from launcher.signins import progress as import_progress


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

    signins = command(
        sub, "import-signins", "import the identity provider's sign-in logs (the front door)"
    )
    signins.add_argument(
        "--format",
        required=True,
        choices=["entra", "keycloak", "okta"],
        help="Entra ID signIn objects, Keycloak admin events, or Okta System Log events",
    )
    signins.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="export files (.gz too)"
    )
    signins.add_argument(
        "--dry-run", action="store_true", help="read and check the files; store nothing"
    )

    digest = command(sub, "send-digest", "send the weekly digest to those who opted in")
    digest.add_argument(
        "--dry-run", action="store_true", help="print who would get what; send nothing"
    )

    report = command(sub, "report", "the reviewer figures in the terminal")
    report.add_argument("--from", dest="start", help="first day, YYYY-MM-DD (30 days ago)")
    report.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (today)")
    report.add_argument(
        "--by",
        choices=["app", "category", "department", "day", "month"],
        default="app",
        help="launches broken down by; app or department for --table decline (%(default)s)",
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
    report.add_argument(
        "--lang",
        choices=["nl", "en"],
        help="language of titles, headers and numbers (the registry's portal.default_language)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure_from_environment()  # LAUNCHER_LOG_FORMAT
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
        if args.command == "send-digest":
            return _send_digest(args)
        if args.command == "import-signins":
            return _import_signins(args)
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


def _import_signins(args: argparse.Namespace) -> int:
    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        return _import_into(engine, settings, args)
    finally:
        engine.dispose()  # the commands run in tests too: no connection left for the collector


def _import_into(engine: sa.Engine, settings: Settings, args: argparse.Namespace) -> int:
    db.upgrade(engine)
    registry = load_registry(settings.apps_file)
    progress = import_progress.Bar() if sys.stderr.isatty() else None
    try:
        summary = importer.import_files(
            engine,
            settings,
            registry.signin_map(),
            args.format,
            args.files,
            dry_run=args.dry_run,
            progress=progress,
            retained_from=rebuild.purge_cutoff(
                dt.datetime.now(dt.UTC),
                settings.raw_retention_days,
                ZoneInfo(registry.portal.timezone),
            ),
        )
    except LauncherError as exc:
        if progress is not None:
            progress.close()
        audit(
            "signins_imported",
            format=args.format,
            files=len(args.files),
            dry_run=args.dry_run,
            outcome="refused",
            error=str(exc),
        )
        raise
    audit(
        "signins_imported",
        format=args.format,
        files=summary.files,
        read=summary.read,
        new=summary.new,
        known=summary.already,
        skipped=sum(summary.skipped.values()),
        unregistered=len(summary.unregistered),
        dry_run=args.dry_run,
        outcome="ok",
    )
    if progress is not None:
        progress.close()
    print(summary)
    return 0


def _send_digest(args: argparse.Namespace) -> int:
    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    registry = load_registry(settings.apps_file)
    # one run at a time in the cluster (launcher/jobs.py): a second would mail the same people
    try:
        with jobs.run_once(engine, jobs.DIGEST) as mine:
            if not mine:
                print(f"digest: {jobs.BUSY}; nothing sent")
                return 0
            report = digest.send_digest(engine, settings, registry, dry_run=args.dry_run)
    finally:
        engine.dispose()  # the commands run in tests too: no connection left for the collector
    for line in report.lines():
        print(line)
    return 1 if report.failed else 0


def _db(args: argparse.Namespace) -> int:
    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        return _db_command(args, settings, engine)
    finally:
        engine.dispose()


def _db_command(args: argparse.Namespace, settings: Settings, engine: sa.Engine) -> int:
    if args.db_command == "upgrade":
        # the portal's time zone places the month partitions' edges (migration 0013)
        tz = _timezone(settings.apps_file)
        db.upgrade(engine, timezone=tz.key)
        partitions.ensure(engine, tz)
    else:
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
        deleted = jobs.purge(engine, settings.raw_retention_days, tz)
        if deleted is None:
            print(f"purge: {jobs.BUSY}; nothing deleted")
        else:
            print(f"deleted {deleted:,} raw events older than {settings.raw_retention_days} days")
    return 0


def _timezone(apps_file: Path) -> ZoneInfo:
    """The registry's time zone; UTC when there is no valid registry (a migration job need
    not mount it: the partitions are then cut in UTC, and the purge deletes the slivers)."""
    try:
        return ZoneInfo(load_registry(apps_file).portal.timezone)
    except (RegistryError, OSError):
        return ZoneInfo("UTC")


def _demo_data(args: argparse.Namespace) -> int:
    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        return _demo_data_into(engine, settings, args)
    finally:
        engine.dispose()


def _demo_data_into(engine: sa.Engine, settings: Settings, args: argparse.Namespace) -> int:
    registry = load_registry(settings.apps_file)
    db.upgrade(engine)
    key = settings.pseudonym_secret() if settings.secret_key or settings.pseudonym_key else b""
    print(f"generating {args.months} months for {args.employees} employees …", file=sys.stderr)
    started = time.monotonic()
    events = demo_data.generate(
        engine,
        registry,
        months=args.months,
        employees=args.employees,
        pseudonym_key=key or secrets.token_bytes(32),
        seed=args.seed,
        progress=demo_data.progress_bar,
        signins=Path("var") / DEMO_SIGNINS,  # the provider's log too, imported (README)
    )
    print(f"{events:,} events written in {time.monotonic() - started:.0f} s")
    return 0


def _report(args: argparse.Namespace) -> int:
    settings = load_settings()
    registry = load_registry(settings.apps_file)
    today = dt.datetime.now(dt.UTC).date()
    period = periods.parse_period(args.start, args.end, today)
    engine = db.make_engine(settings.database_url)
    try:
        text = output.report_text(
            engine,
            registry,
            period,
            today,
            by=args.by,
            table=args.table,
            fmt=args.format,
            min_group=settings.report_min_group,
            lang=args.lang or registry.portal.default_language,
        )
    finally:
        engine.dispose()
    sys.stdout.write(text)
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


def _serve(args: argparse.Namespace) -> int:
    serve(args.host, args.port, args.workers)
    return 0


def _demo(args: argparse.Namespace) -> int:
    demo_command.run_demo(args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

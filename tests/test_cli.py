"""The ``launcher`` command, in-process through ``main`` and once as ``python -m launcher``.

Run as a script, this module regenerates the generated docs::

    .venv/bin/python -m tests.test_cli
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import uvicorn

from launcher import __version__
from launcher.cli import build_parser, main
from launcher.registry import json_schema, load_registry
from tests.conftest import EXAMPLE_APPS, ROOT, SECRET

CLI_MD = ROOT / "docs" / "CLI.md"
SCHEMA_JSON = ROOT / "docs" / "apps.schema.json"
REGENERATE = ".venv/bin/python -m tests.test_cli"
PRODUCTION = {
    "LAUNCHER_SECRET_KEY": SECRET,
    "LAUNCHER_OIDC_ISSUER": "https://login.example/realms/zorg",
    "LAUNCHER_OIDC_CLIENT_ID": "launcher",
    "LAUNCHER_OIDC_CLIENT_SECRET": "client-secret",
}


# --- generated docs ---------------------------------------------------------------------


def _commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*words, name))


def cli_reference() -> str:
    """docs/CLI.md: the ``--help`` of every command, formatted the same on every terminal."""
    fixed = {"COLUMNS": "100", "PYTHON_COLORS": "0", "NO_COLOR": "1"}
    with mock.patch.dict(os.environ, fixed):
        sections = [
            f"## `{' '.join(('launcher', *words))}`\n\n```text\n{parser.format_help()}```\n"
            for words, parser in _commands(build_parser())
        ]
    return (
        "# Command line\n\n"
        f"<!-- Generated from launcher/cli.py; do not edit. Regenerate: {REGENERATE} -->\n\n"
        "Every command also runs as `python -m launcher …`.\n"
        "Exit status: 0 success; 1 error, with the reason on stderr; 2 a usage error.\n\n"
        + "\n".join(sections)
    )


def schema_text() -> str:
    """docs/apps.schema.json, as ``launcher check-config --schema`` prints it."""
    return json.dumps(json_schema(), indent=2) + "\n"


def test_cli_reference_is_current_and_complete() -> None:
    expected = cli_reference()
    actual = CLI_MD.read_text(encoding="utf-8") if CLI_MD.exists() else ""
    undocumented = [
        " ".join(words)
        for words, _ in _commands(build_parser())
        if f"## `{' '.join(('launcher', *words))}`" not in actual
    ]
    assert not undocumented, f"docs/CLI.md lacks {undocumented}; regenerate: {REGENERATE}"
    assert actual == expected, f"docs/CLI.md is stale; regenerate: {REGENERATE}"


def test_cli_reference_covers_every_command() -> None:
    reference = cli_reference()
    for command in ("serve", "demo", "check-config", "db", "db upgrade"):
        assert f"## `launcher {command}`" in reference
    assert "usage: launcher db upgrade [-h]" in reference
    assert "\x1b[" not in reference  # no colours, whatever the terminal


def test_schema_file_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text()
    current = SCHEMA_JSON.read_text(encoding="utf-8") if SCHEMA_JSON.exists() else ""
    assert current == printed, (
        "docs/apps.schema.json is stale; regenerate: "
        f"{REGENERATE} (or launcher check-config --schema > docs/apps.schema.json)"
    )


def test_example_registry_points_editors_at_the_schema() -> None:
    first_line = EXAMPLE_APPS.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=../docs/apps.schema.json"
    assert (EXAMPLE_APPS.parent / "../docs/apps.schema.json").resolve() == SCHEMA_JSON


# --- check-config -----------------------------------------------------------------------


def test_check_config_valid(capsys: pytest.CaptureFixture[str]) -> None:
    registry = load_registry(EXAMPLE_APPS)
    hidden = sum(app.hidden for app in registry.apps)
    assert main(["check-config", str(EXAMPLE_APPS)]) == 0
    out, err = capsys.readouterr()
    assert out == (
        f"{EXAMPLE_APPS}: valid: {len(registry.apps)} apps ({hidden} hidden) "
        f"in {len(registry.categories)} categories\n"
    )
    assert err == ""


def test_check_config_defaults_to_launcher_apps_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAUNCHER_APPS_FILE", str(EXAMPLE_APPS))
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out.startswith(f"{EXAMPLE_APPS}: valid: ")


def test_check_config_invalid_lists_each_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "apps.yaml"
    path.write_text(
        "apps:\n"
        "  - id: teams\n"
        "    name: Teams\n"
        "    url: http://teams.example/\n"
        "  - id: teams\n"
        "    name: Teams again\n"
        "    url: https://teams.example/\n"
        "    colour: red\n"
    )
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:4: apps[0] (id: teams).url: must be an https:// URL, got 'http://teams.example/'",
        f"{path}:5: apps[1] (id: teams).id: duplicate id 'teams' (first defined on line 2)",
        f"{path}:8: apps[1] (id: teams).colour: unknown key",
        f"{path}: invalid (3 problem(s))",
    ]


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'nope.yaml'}:1: (file): cannot read it: ")


def test_check_config_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {"portal", "categories", "departments", "apps", "displays"}
    assert "url" in schema["$defs"]["App"]["required"]


# --- serve and demo never start a server on bad input -----------------------------------


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records uvicorn.run calls instead of serving."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    return calls


def test_serve_without_settings_names_them_and_does_not_start(
    no_server: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("launcher: error: cannot start: missing LAUNCHER_SECRET_KEY")
    for variable in PRODUCTION:
        assert variable in err
    assert no_server == []


def test_serve_with_only_the_key_names_the_oidc_variables(
    monkeypatch: pytest.MonkeyPatch,
    no_server: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", SECRET)
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "LAUNCHER_SECRET_KEY" not in err
    for variable in (
        "LAUNCHER_OIDC_ISSUER",
        "LAUNCHER_OIDC_CLIENT_ID",
        "LAUNCHER_OIDC_CLIENT_SECRET",
    ):
        assert variable in err
    assert no_server == []


def _production_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, apps: Path) -> Path:
    for variable, value in PRODUCTION.items():
        monkeypatch.setenv(variable, value)
    database = tmp_path / "serve.db"
    monkeypatch.setenv("LAUNCHER_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("LAUNCHER_APPS_FILE", str(apps))
    return database


def test_serve_refuses_an_invalid_registry(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    no_server: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    apps = tmp_path / "apps.yaml"
    apps.write_text("apps:\n  - {id: a, name: A, url: 'http://a.example/'}\n")
    _production_env(monkeypatch, tmp_path, apps)
    assert main(["serve"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "launcher: error: the app registry is invalid:",
        f"{apps}:2: apps[0] (id: a).url: must be an https:// URL, got 'http://a.example/'",
    ]
    assert no_server == []


def test_serve_migrates_sqlite_then_runs_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_server: list[dict[str, Any]]
) -> None:
    database = _production_env(monkeypatch, tmp_path, EXAMPLE_APPS)
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123", "--workers", "2"]) == 0
    assert "launch_event" in _tables(database)
    [call] = no_server
    assert call["app"] == "launcher.serve:build_serve_app" and call["factory"] is True
    assert (call["host"], call["port"], call["workers"]) == ("0.0.0.0", 8123, 2)
    assert call["timeout_graceful_shutdown"] < 10  # README: exits within 10 s of SIGTERM


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "portal.example"])
def test_demo_serves_on_loopback_only(
    host: str, tmp_path: Path, no_server: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--host", host]) == 1
    assert "loopback" in capsys.readouterr().err
    assert no_server == []
    assert not (tmp_path / "var").exists()  # refused before anything was written


# --- db upgrade -------------------------------------------------------------------------


def _query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute(sql).fetchall()


def _tables(database: Path) -> set[str]:
    return {name for (name,) in _query(database, "SELECT name FROM sqlite_master")}


def _version(database: Path) -> list[tuple[Any, ...]]:
    return _query(database, "SELECT version_num FROM alembic_version")


def test_db_upgrade_creates_the_tables_and_is_idempotent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "sub" / "launcher.db"
    monkeypatch.setenv("LAUNCHER_DATABASE_URL", f"sqlite:///{database}")
    assert main(["db", "upgrade"]) == 0
    tables = _tables(database)
    assert {"alembic_version", "launch_event", "revocation"} <= tables
    version = _version(database)
    assert len(version) == 1
    assert capsys.readouterr().out == f"database at sqlite:///{database} is up to date\n"

    assert main(["db", "upgrade"]) == 0
    assert _tables(database) == tables
    assert _version(database) == version


def test_db_upgrade_hides_the_password_and_reports_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "LAUNCHER_DATABASE_URL", "postgresql+psycopg://launcher:hunter2@127.0.0.1:1/launcher"
    )
    assert main(["db", "upgrade"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("launcher: error: database: ")
    assert "Traceback" not in err and "hunter2" not in out + err


# --- usage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["frobnicate"], [], ["db"], ["db", "downgrade"], ["serve", "--port", "eighty"]]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: launcher" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"launcher {__version__}\n"


def test_python_dash_m_launcher(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "launcher", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    valid = run("check-config", str(EXAMPLE_APPS))
    assert (valid.returncode, valid.stderr) == (0, "")
    assert valid.stdout.startswith(f"{EXAMPLE_APPS}: valid: ")

    unknown = run("frobnicate")
    assert unknown.returncode == 2
    assert "invalid choice: 'frobnicate'" in unknown.stderr


if __name__ == "__main__":
    CLI_MD.parent.mkdir(exist_ok=True)
    CLI_MD.write_text(cli_reference(), encoding="utf-8")
    SCHEMA_JSON.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {CLI_MD.relative_to(ROOT)} and {SCHEMA_JSON.relative_to(ROOT)}")

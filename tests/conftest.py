"""Shared fixtures: settings, databases (SQLite and the real PostgreSQL), portals in process
and live servers (tests/helpers.py has the helpers behind them).

PostgreSQL tests run against ``LAUNCHER_TEST_POSTGRES`` (default: the local server). When it
is unreachable they are skipped locally, but fail under CI (``CI=true``), so that CI can never
pass without them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.routing import BaseRoute

from launcher.settings import Settings, load_settings
from tests.helpers import (
    DEMO_USERS,
    EXAMPLE_APPS,
    ROOT,
    SECRET,
    DemoUser,
    InProcess,
    LiveServer,
    demo_app,
    demo_settings,
    free_port,
    in_process,
    sign_in,
)
from tests.hostile_idp import HostileIdP

# Older tests import these from here; tests/helpers.py is where they live.
__all__ = ["EXAMPLE_APPS", "ROOT", "SECRET", "LiveServer", "free_port", "sign_in"]

# What `make check` leaves to `make test`: live servers over real HTTP and writer processes.
LIVE_FIXTURES = frozenset({"demo_server", "demo_server_sqlite", "idp_server"})
# The tests' history is from 2025; a portal's daily purge (60-600 s after start) that ran on
# the shared PostgreSQL database during a later test would delete that test's rows. Tests of
# the purge pass their retention to the purge itself.
NO_PURGE = 100 * 366

SLOW_FILES = frozenset({"test_shutdown.py"})
SLOW_TESTS = frozenset(
    {
        "test_python_dash_m_launcher",
        # the wire or a build is the point of these: the whole suite runs them, not `make check`
        "test_built_wheel_renders_the_grid",
        "test_broken_edit_keeps_the_last_good_registry_and_admin_sees_why",
        "test_the_demo_server_logs_json_with_request_ids_over_real_http",
        "test_uvicorn_answers_413_without_reading_the_body",
        "test_demo_data_then_report_agrees_with_the_queries",
        "test_copied_cookie_is_refused_after_logout_in_another_worker_too",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` what starts a live server or an event writer process, so that the fast
    suite (`make check`) is the in-process one. Tests that build a LiveServer themselves are
    marked where they are written."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        name = item.name.partition("[")[0]
        writer_process = item.path.name.startswith("test_events_") and "[thread" not in item.name
        if (
            fixtures & LIVE_FIXTURES
            or item.path.name in SLOW_FILES
            or name in SLOW_TESTS
            or writer_process
        ):
            item.add_marker(pytest.mark.slow)


PG_URL = os.environ.get(
    "LAUNCHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No LAUNCHER_* variable or .env file of the developer's leaks into a test, and none a
    test sets leaks into the next: ``launcher serve --workers N`` points the process's
    PROMETHEUS_MULTIPROC_DIR at a folder under the test's own, relative, spool directory."""
    for name in list(os.environ):
        if name.startswith("LAUNCHER_") and name != "LAUNCHER_TEST_POSTGRES":
            monkeypatch.delenv(name)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # undone (removed) after the test
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    monkeypatch.chdir(tmp_path)
    yield


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; dropped at the end."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {PG_URL}")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL} (runs in CI)")
    name = f"launcher_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset(url: str) -> None:
    """An empty, fully migrated database at ``url``."""
    from launcher import db

    engine = db.make_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    with engine.begin() as conn:
        for table in reversed(md.sorted_tables):
            # IF EXISTS: a month partition goes with its table (launcher/partitions.py)
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table.name}"'))
    db.upgrade(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (migrating takes a while)."""
    path = tmp_path_factory.mktemp("template") / "launcher.db"
    _reset(f"sqlite:///{path}")
    return path


def _fresh_sqlite(template: Path, tmp_path: Path) -> str:
    target = tmp_path / "launcher.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path) -> str:
    """Each test using this runs twice: on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return _fresh_sqlite(_sqlite_template, tmp_path)
    url: str = request.getfixturevalue("postgres_server")
    _reset(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    return _fresh_sqlite(_sqlite_template, tmp_path)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "secret_key": SECRET,
            "base_url": "http://127.0.0.1:8000",
            "oidc_issuer": "http://127.0.0.1:8000/_devidp",
            "oidc_client_id": "launcher-demo",
            "oidc_client_secret": "demo-client-secret",
            "database_url": f"sqlite:///{tmp_path}/launcher.db",
            "apps_file": EXAMPLE_APPS,
            "spool_dir": tmp_path / "spool",
            "raw_retention_days": NO_PURGE,
        }
        values.update(overrides)
        return load_settings(**values)

    return factory


@pytest.fixture(scope="module")
def hostile_idp_server() -> Iterator[HostileIdP]:
    """The hostile provider of tests/hostile_idp.py over real HTTP, one per test module; each
    module's ``idp`` fixture resets it to good behaviour for every test."""
    port = free_port()
    provider = HostileIdP(f"http://127.0.0.1:{port}")
    with LiveServer(provider.app, port):
        yield provider


@pytest.fixture(scope="session")
def devidp_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signing key for every in-process development provider of the session."""
    return tmp_path_factory.mktemp("devidp") / "key.json"


@pytest.fixture
def demo_server(
    tmp_path: Path, database_url: str, devidp_key: Path
) -> Iterator[tuple[LiveServer, Settings]]:
    """The demo portal (portal + development provider) over real HTTP, on both databases."""
    yield from _demo_server(tmp_path, database_url, devidp_key)


@pytest.fixture
def demo_server_sqlite(
    tmp_path: Path, sqlite_url: str, devidp_key: Path
) -> Iterator[tuple[LiveServer, Settings]]:
    yield from _demo_server(tmp_path, sqlite_url, devidp_key)


def _demo_server(tmp_path: Path, url: str, key_file: Path) -> Iterator[tuple[LiveServer, Settings]]:
    port = free_port()
    settings = demo_settings(
        "127.0.0.1",
        port,
        var=tmp_path / "var",
        database_url=url,
        apps_file=EXAMPLE_APPS,
        spool_dir=tmp_path / "spool",
        raw_retention_days=NO_PURGE,
    )
    app = demo_app(settings, key_file=key_file)
    with LiveServer(app, port) as server:
        yield server, settings


MakePortal = Callable[..., InProcess]


@pytest.fixture
def make_portal(
    make_settings: Callable[..., Settings], sqlite_url: str, devidp_key: Path
) -> Iterator[MakePortal]:
    """``make_portal(users=..., extra_routes=..., **settings)``: a portal in process (see
    tests/helpers.py, InProcess), on SQLite unless ``database_url`` is given."""
    with contextlib.ExitStack() as stack:

        def factory(
            *,
            users: Sequence[DemoUser] = DEMO_USERS,
            extra_routes: Sequence[BaseRoute] = (),
            **overrides: Any,
        ) -> InProcess:
            settings = make_settings(**{"database_url": sqlite_url, **overrides})
            return stack.enter_context(
                in_process(
                    settings,
                    users=users,
                    extra_routes=extra_routes,
                    key_file=devidp_key,
                    migrate=False,  # the database fixtures migrate
                )
            )

        yield factory


@pytest.fixture
def portal(make_portal: MakePortal) -> InProcess:
    """The portal with the development provider, in process on SQLite: for handler tests.
    ``portal.get(path, STAFF)`` asks as a signed-in user (a minted session cookie)."""
    return make_portal()


@pytest.fixture
def portal_any_db(make_portal: MakePortal, database_url: str) -> InProcess:
    """``portal`` on SQLite and on the real PostgreSQL."""
    return make_portal(database_url=database_url)

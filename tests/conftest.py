"""Shared fixtures: settings, databases (SQLite and the real PostgreSQL), live servers.

PostgreSQL tests run against ``LAUNCHER_TEST_POSTGRES`` (default: the local server). When it
is unreachable they are skipped locally, but fail under CI (``CI=true``), so that CI can never
pass without them.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from launcher.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_APPS = ROOT / "config" / "apps.yaml"
PG_URL = os.environ.get(
    "LAUNCHER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SECRET = "test-secret-key-that-is-long-enough-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LAUNCHER_* variable or .env file of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("LAUNCHER_") and name != "LAUNCHER_TEST_POSTGRES":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


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
            conn.execute(sa.text(f'DROP TABLE "{table.name}"'))
    db.upgrade(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/launcher.db"
    else:
        url = request.getfixturevalue("postgres_server")
    _reset(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/launcher.db"
    _reset(url)
    return url


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
        }
        values.update(overrides)
        return load_settings(**values)

    return factory


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def demo_server(tmp_path: Path, database_url: str) -> Iterator[tuple[LiveServer, Settings]]:
    """The demo portal (portal + development provider) over real HTTP, on both databases."""
    yield from _demo_server(tmp_path, database_url)


@pytest.fixture
def demo_server_sqlite(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[LiveServer, Settings]]:
    yield from _demo_server(tmp_path, sqlite_url)


def _demo_server(tmp_path: Path, url: str) -> Iterator[tuple[LiveServer, Settings]]:
    from launcher.demo.command import build_demo_app, demo_settings

    port = free_port()
    settings = demo_settings(
        "127.0.0.1",
        port,
        var=tmp_path / "var",
        database_url=url,
        apps_file=EXAMPLE_APPS,
        spool_dir=tmp_path / "spool",
    )
    app = build_demo_app(settings, var=tmp_path / "var")
    with LiveServer(app, port) as server:
        yield server, settings


def sign_in(client: httpx.Client, base: str, user_sub: str, next_path: str = "/") -> httpx.Response:
    """Walk the whole authorization code flow through the development provider's page."""
    resp = client.get(f"{base}/login", params={"next": next_path})
    assert resp.status_code in (302, 303), resp.text
    authorize = client.get(resp.headers["location"])
    assert authorize.status_code == 200, authorize.text
    fields = dict(
        re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', authorize.text)
    )
    fields = {k: _unescape(v) for k, v in fields.items()}
    fields["user"] = user_sub
    granted = client.post(
        str(authorize.url), data=fields, headers={"Origin": _origin(authorize.url)}
    )
    assert granted.status_code == 302, granted.text
    return client.get(granted.headers["location"])


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode()}"


def _unescape(value: str) -> str:
    import html

    return html.unescape(value)

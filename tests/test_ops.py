"""Liveness, readiness, metrics, and the registry reloading under a running portal."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest

from launcher.app import create_app
from launcher.auth.devidp import DEMO_USERS
from tests.conftest import EXAMPLE_APPS, LiveServer, free_port, sign_in

ADMIN = next(u for u in DEMO_USERS if "launcher-admins" in u.groups)
METRICS_TOKEN = "metrics-token-for-the-test-0123456789"


@pytest.fixture
def metrics_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set before the demo server starts (list it first): /metrics needs the bearer token."""
    monkeypatch.setenv("LAUNCHER_METRICS_TOKEN", METRICS_TOKEN)
    return METRICS_TOKEN


def test_readyz_reports_an_unreachable_provider_and_the_portal_still_starts(
    make_settings,
    sqlite_url: str,  # type: ignore[no-untyped-def]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    port = free_port()
    settings = make_settings(
        oidc_issuer=dead, database_url=sqlite_url, base_url=f"http://127.0.0.1:{port}"
    )
    with LiveServer(create_app(settings), port) as server, httpx.Client() as client:
        assert client.get(f"{server.url}/healthz").text == "ok"
        ready = client.get(f"{server.url}/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"] == "ok" and checks["registry"] == "ok"
        assert checks["provider"].startswith("error")
        login = client.get(f"{server.url}/login")
        assert login.status_code == 502
        assert "Traceback" not in login.text and "could not be reached" in login.text


def test_readyz_ok_and_metrics_count_launches(metrics_token, demo_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server, _ = demo_server_sqlite
    with httpx.Client(follow_redirects=False) as client:
        assert client.get(f"{server.url}/readyz").json() == {
            "ready": True,
            "checks": {"database": "ok", "registry": "ok", "provider": "ok"},
        }
        sign_in(client, server.url, DEMO_USERS[0].sub)
        assert client.get(f"{server.url}/launch/teams").status_code == 303
        auth = {"Authorization": f"Bearer {metrics_token}"}
        metrics = client.get(f"{server.url}/metrics", headers=auth).text
    assert 'launcher_launches_total{app="teams"} 1.0' in metrics
    assert "launcher_signins_total 1.0" in metrics


def test_broken_edit_keeps_the_last_good_registry_and_admin_sees_why(
    make_settings,
    tmp_path: Path,
    sqlite_url: str,  # type: ignore[no-untyped-def]
) -> None:
    from launcher.cli import build_demo_app, demo_settings

    apps = tmp_path / "apps.yaml"
    shutil.copy(EXAMPLE_APPS, apps)
    port = free_port()
    settings = demo_settings(
        "127.0.0.1", port, var=tmp_path / "var", database_url=sqlite_url, apps_file=apps
    )
    app = build_demo_app(settings, var=tmp_path / "var")
    with LiveServer(app, port) as server, httpx.Client(follow_redirects=False) as client:
        sign_in(client, server.url, ADMIN.sub)
        text = apps.read_text()
        apps.write_text(text.replace("  - id: outlook\n", "  - id: teams\n", 1))
        deadline = time.monotonic() + 10
        while "duplicate id" not in (page := client.get(f"{server.url}/admin").text):
            assert time.monotonic() < deadline, "the broken edit was never noticed"
            time.sleep(0.2)
        assert "apps.yaml:" in page  # file:line is shown to the admin
        grid = client.get(f"{server.url}/").text
        assert 'href="/launch/outlook"' in grid  # the last good registry is still in use

        apps.write_text(text.replace("name: Outlook", "name: Outlook Web"))
        deadline = time.monotonic() + 10
        while "Outlook Web" not in client.get(f"{server.url}/").text:
            assert time.monotonic() < deadline, "the fixed edit was never loaded"
            time.sleep(0.2)
        assert "duplicate id" not in client.get(f"{server.url}/admin").text

"""Liveness, readiness, metrics, and the registry reloading under a running portal."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from launcher.app import create_app
from launcher.settings import Settings
from tests.conftest import MakePortal
from tests.helpers import (
    ADMIN,
    DEMO_USERS,
    EXAMPLE_APPS,
    LiveServer,
    TestClient,
    free_port,
    sign_in,
    wait_until,
)

METRICS_TOKEN = "metrics-token-for-the-test-0123456789"


@pytest.fixture
def metrics_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set before the demo server starts (list it first): /metrics needs the bearer token."""
    monkeypatch.setenv("LAUNCHER_METRICS_TOKEN", METRICS_TOKEN)
    return METRICS_TOKEN


def test_readyz_reports_an_unreachable_provider_and_the_portal_still_starts(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    """In process; the portal's own HTTP client finds nothing at the provider's address."""
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    settings = make_settings(oidc_issuer=dead, database_url=sqlite_url)
    app = create_app(settings, writer="thread")
    with TestClient(app, base_url=settings.base_url, follow_redirects=False) as client:
        assert client.get("/healthz").text == "ok"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"] == "ok" and checks["registry"] == "ok"
        assert checks["provider"].startswith("error")
        login = client.get("/login")
        assert login.status_code == 502
        assert "Traceback" not in login.text and "could not be reached" in login.text


def test_readyz_ok_and_metrics_count_launches(
    metrics_token: str, demo_server_sqlite: tuple[LiveServer, Settings]
) -> None:
    """Over HTTP: the sign-in counted is a real one, through the provider."""
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
    make_portal: MakePortal, tmp_path: Path
) -> None:
    apps = tmp_path / "apps.yaml"
    shutil.copy(EXAMPLE_APPS, apps)
    portal = make_portal(apps_file=apps)
    admin = portal.cookie(ADMIN)
    text = apps.read_text()
    apps.write_text(text.replace("  - id: outlook\n", "  - id: teams\n", 1))
    noticed = wait_until(lambda: "duplicate id" in portal.get("/admin", admin).text, 10, 0.2)
    assert noticed, "the broken edit was never noticed"
    page = portal.get("/admin", admin).text
    assert "apps.yaml:" in page  # file:line is shown to the admin
    grid = portal.get("/", admin).text
    assert 'href="/launch/outlook"' in grid  # the last good registry is still in use

    apps.write_text(text.replace("name: Outlook", "name: Outlook Web"))
    loaded = wait_until(lambda: "Outlook Web" in portal.get("/", admin).text, 10, 0.2)
    assert loaded, "the fixed edit was never loaded"
    assert "duplicate id" not in portal.get("/admin", admin).text

"""``launcher demo``'s wiring (launcher/demo/command.py): settings under var/, the provider."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from launcher.demo.command import DEMO_CLIENT_ID, build_demo_app, demo_settings, run_demo
from launcher.errors import LauncherError
from tests.conftest import EXAMPLE_APPS


def _settings(var: Path, port: int = 8000) -> tuple[str, str]:
    settings = demo_settings("127.0.0.1", port, var=var, database_url=f"sqlite:///{var}/d.db")
    assert settings.secret_key is not None and settings.oidc_client_secret is not None
    return settings.secret_key.get_secret_value(), settings.oidc_client_secret.get_secret_value()


def test_the_session_key_is_kept_in_var_and_reused(tmp_path: Path) -> None:
    first_key, _ = _settings(tmp_path / "var")
    second_key, _ = _settings(tmp_path / "var")
    assert first_key == second_key == (tmp_path / "var" / "demo-secret").read_text().strip()
    assert (tmp_path / "var" / "demo-secret").stat().st_mode & 0o777 == 0o600


def test_the_client_secret_is_random_per_start_and_not_derived_from_the_key(
    tmp_path: Path,
) -> None:
    key, first = _settings(tmp_path / "var")
    same_key, second = _settings(tmp_path / "var")
    assert key == same_key
    assert first != second  # so it cannot be a function of the key
    assert len(first) >= 43  # 32 random bytes, url-safe base64
    for guess in (
        key,
        key[:16],
        "demo-secret-" + key[:16],
        hmac.new(key.encode(), DEMO_CLIENT_ID.encode(), hashlib.sha256).hexdigest(),
    ):
        assert guess not in first and guess not in second
    assert key[:8] not in first


def test_the_provider_knows_the_portal_by_the_same_secret(tmp_path: Path) -> None:
    var = tmp_path / "var"
    settings = demo_settings(
        "127.0.0.1", 8123, var=var, database_url=f"sqlite:///{var}/d.db", apps_file=EXAMPLE_APPS
    )
    app = build_demo_app(settings, var=var)
    assert isinstance(app, Starlette)
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/_devidp")
    client = mount.app.state.devidp.clients[DEMO_CLIENT_ID]  # type: ignore[attr-defined]
    assert settings.oidc_client_secret is not None
    assert client.client_secret == settings.oidc_client_secret.get_secret_value()
    assert client.redirect_uris == ("http://127.0.0.1:8123/auth/callback",)
    assert settings.oidc_issuer == "http://127.0.0.1:8123/_devidp"
    assert (var / "devidp-key.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5"])
def test_the_demo_refuses_a_host_that_is_not_loopback(
    host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LauncherError, match="loopback"):
        run_demo(host, 8000)
    assert list(tmp_path.iterdir()) == []  # refused before var/ was made

"""``/metrics`` answers only Prometheus with its bearer token; ``/readyz`` keeps its reasons from
anonymous callers. In-process, over ``httpx.ASGITransport``: no lifespan, so the registry is not
loaded and the provider is unreachable, which gives ``/readyz`` failures with reasons to hide."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from launcher.app import create_app
from launcher.auth.user import User
from launcher.errors import ConfigError
from launcher.settings import Settings, load_settings

TOKEN = "prometheus-scrape-token-0123456789abcdef"


def _client(settings: Settings) -> tuple[httpx.AsyncClient, object]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=settings.base_url), app


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no header"),
        pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong token"),
        pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, id="token minus a character"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="other scheme"),
    ],
)
async def test_metrics_without_the_token_is_401(
    make_settings: Callable[..., Settings], sqlite_url: str, headers: dict[str, str]
) -> None:
    client, _ = _client(make_settings(metrics_token=TOKEN, database_url=sqlite_url))
    async with client:
        resp = await client.get("/metrics", headers=headers)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert "launcher_launches" not in resp.text
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert "launcher_signins_total" in ok.text
    assert ok.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_metrics_is_404_without_a_configured_token(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    client, _ = _client(make_settings(database_url=sqlite_url))
    async with client:
        resp = await client.get("/metrics", headers={"Authorization": "Bearer "})
    assert resp.status_code == 404
    assert "launcher_" not in resp.text


def test_short_metrics_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="LAUNCHER_METRICS_TOKEN: must be at least 32"):
        load_settings(metrics_token="short")


@pytest.mark.anyio
async def test_readyz_keeps_reasons_from_anonymous_callers(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = make_settings(
        metrics_token=TOKEN, database_url=sqlite_url, oidc_issuer="http://127.0.0.1:9/nowhere"
    )
    client, app = _client(settings)
    async with client:
        anonymous = await client.get("/readyz")
        assert anonymous.status_code == 503
        assert anonymous.json() == {
            "ready": False,
            "checks": {"database": "ok", "registry": "error", "provider": "error"},
        }
        with_token = await client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
        assert with_token.json()["checks"]["provider"].startswith("error: ")
        assert len(with_token.json()["checks"]["provider"]) > len("error: ")
        # a signed-in admin sees the reasons too; any other signed-in user does not
        p = app.state.context  # type: ignore[attr-defined]
        for groups, detailed in ((("launcher-admins",), True), (("staff",), False)):
            user = User("u1", "sub-1", "Someone", groups=groups)
            cookie = p.sessions.dumps(p.sessions.new(user, None))
            client.cookies.set(settings.session_cookie, cookie)
            checks = (await client.get("/readyz")).json()["checks"]
            assert (checks["provider"] != "error") is detailed

"""The provider's logouts and single-use values, against the hostile provider over real HTTP, on
SQLite and PostgreSQL, with two portal workers sharing one database:

- a back-channel logout token is used once (its ``jti`` remembered in every worker), must be
  fresh and carry ``exp``, and be typed ``logout+jwt`` or untyped;
- a logout token with ``sub`` and a ``sid`` we never saw ends that user's sessions that carry no
  provider session id, keyed on the raw ``sub`` whatever the stored user id is made of;
- front-channel logout (``GET /auth/frontchannel-logout``) ends the provider session's sessions
  and is the one page the provider may frame;
- a sign-in ``state`` causes at most one token-endpoint call, ever, in any worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from launcher.app import create_app
from launcher.settings import Settings
from tests.conftest import LiveServer, free_port
from tests.helpers import InProcess
from tests.hostile_idp import CLIENT_ID, REMOVE, HostileIdP, Now, Scenario
from tests.test_oidc_security import (
    SESSION_COOKIE,
    authorize,
    home_status,
    set_cookies,
    soon,
    start,
)
from tests.test_oidc_security import _client as browser_client

OTHER_ISSUER = "http://127.0.0.1:9/other-idp"


@pytest.fixture
def idp(hostile_idp_server: HostileIdP) -> HostileIdP:
    hostile_idp_server.reset()
    return hostile_idp_server


@pytest.fixture
def settings(
    idp: HostileIdP, make_settings: Callable[..., Settings], database_url: str
) -> Settings:
    return make_settings(
        oidc_issuer=idp.issuer,
        oidc_client_id=CLIENT_ID,
        base_url=f"http://127.0.0.1:{free_port()}",
        database_url=database_url,
    )


@pytest.fixture
def workers(settings: Settings) -> Iterator[tuple[str, str]]:
    """Two workers of one portal: the same settings and database, each its own memory."""
    port = httpx.URL(settings.base_url).port
    assert port is not None
    with (
        LiveServer(create_app(settings), port) as first,
        LiveServer(create_app(settings), free_port()) as second,
    ):
        yield first.url, second.url


def _session(idp: HostileIdP, portal: str, sub: str = "alice", **claims: Any) -> tuple[str, str]:
    """A new browser session for ``sub``: (session cookie, the provider's sid)."""
    idp.scenario = Scenario(sub=sub, claims=claims)
    with browser_client() as client:
        resp = client.get(authorize(client, portal, start(client, portal)))
        assert resp.status_code == 303, resp.text
        cookie = set_cookies(resp)[SESSION_COOKIE][0]
    assert home_status(portal, cookie) == 200
    return cookie, idp.seen.id_tokens[-1].get("sid", "")


def _backchannel(portal: str, token: str) -> httpx.Response:
    with browser_client() as provider:
        return provider.post(f"{portal}/auth/backchannel-logout", data={"logout_token": token})


# --- back-channel logout tokens ------------------------------------------------------------
def test_replayed_logout_token_is_refused_in_every_worker(
    idp: HostileIdP, workers: tuple[str, str]
) -> None:
    first, second = workers
    cookie, sid = _session(idp, first)
    token = idp.logout_token(sid=sid, sub="alice")
    assert _backchannel(first, token).status_code == 200
    assert soon(lambda: home_status(second, cookie) == 303)
    for worker in (first, second):  # the same worker, and one that never saw the token
        replay = _backchannel(worker, token)
        assert replay.status_code == 400, replay.text
        assert replay.json() == {"error": "invalid_request"}
    # a new token from the provider (a new jti) is of course accepted
    assert _backchannel(second, idp.logout_token(sid=sid, sub="alice")).status_code == 200


REFUSED = [
    pytest.param({"iat": Now(-600), "exp": Now(120)}, id="issued 10 minutes ago"),
    pytest.param({"iat": Now(-86_400), "exp": Now(86_400)}, id="a day old, long exp"),
    pytest.param({"exp": REMOVE}, id="exp missing"),
    pytest.param({"typ": "JWT"}, id="typ JWT"),
    pytest.param({"typ": "at+jwt"}, id="typ of an access token"),
]


@pytest.mark.parametrize("change", REFUSED)
def test_stale_untimed_or_mistyped_logout_token_is_refused(
    idp: HostileIdP, workers: tuple[str, str], change: dict[str, Any]
) -> None:
    first, _ = workers
    cookie, sid = _session(idp, first)
    resp = _backchannel(first, idp.logout_token(**{"sid": sid, "sub": "alice", **change}))
    assert resp.status_code == 400, resp.text
    assert home_status(first, cookie) == 200  # the session lives on


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"typ": None}, id="untyped"),
        pytest.param({"typ": "logout+jwt"}, id="typ logout+jwt"),
        pytest.param({"iat": Now(-200)}, id="issued 200 s ago"),
    ],
)
def test_acceptable_logout_token(
    idp: HostileIdP, workers: tuple[str, str], change: dict[str, Any]
) -> None:
    first, _ = workers
    cookie, sid = _session(idp, first)
    resp = _backchannel(first, idp.logout_token(**{"sid": sid, "sub": "alice", **change}))
    assert resp.status_code == 200, resp.text
    assert home_status(first, cookie) == 303


def test_unknown_sid_with_sub_ends_that_users_sessions_without_a_provider_session(
    idp: HostileIdP, workers: tuple[str, str]
) -> None:
    first, second = workers
    bare, no_sid = _session(idp, first, sid=REMOVE)  # the ID token carried no sid
    assert no_sid == ""
    keeps, _ = _session(idp, first)  # alice in a provider session of its own
    bob, _ = _session(idp, first, sub="bob", sid=REMOVE)
    resp = _backchannel(first, idp.logout_token(sid="op-session-we-never-saw", sub="alice"))
    assert resp.status_code == 200, resp.text
    assert home_status(first, bare) == 303
    assert soon(lambda: home_status(second, bare) == 303)
    assert home_status(second, keeps) == 200  # another provider session: not this logout
    assert home_status(second, bob) == 200


@pytest.mark.anyio
async def test_logout_by_sub_keys_on_the_raw_sub_not_the_stored_user_id(
    idp: HostileIdP, settings: Settings
) -> None:
    """The stored user id may come from another claim (Entra's ``oid``): a session whose user id
    is no pseudonym of its ``sub`` still ends when the provider logs that ``sub`` out."""
    portal = InProcess(settings)
    session = portal.session(sub="alice")  # user_id "id-alice": not derived from the sub
    other = portal.session(sub="bob")
    async with portal.aclient() as client:
        resp = await client.post(
            "/auth/backchannel-logout", data={"logout_token": idp.logout_token(sub="alice")}
        )
        assert resp.status_code == 200, resp.text
    await portal.aclose()
    codec = portal.context.sessions
    assert codec.loads(codec.dumps(session)) is None
    assert codec.loads(codec.dumps(other)) is not None


# --- front-channel logout ------------------------------------------------------------------
def _frontchannel(portal: str, cookie: str | None = None, **params: str) -> httpx.Response:
    with browser_client() as frame:
        if cookie is not None:
            frame.cookies.set(SESSION_COOKIE, cookie)
        return frame.get(f"{portal}/auth/frontchannel-logout", params=params)


def test_frontchannel_logout_ends_that_provider_session_everywhere(
    idp: HostileIdP, workers: tuple[str, str]
) -> None:
    first, second = workers
    ended, sid = _session(idp, first)
    other, _ = _session(idp, first)
    resp = _frontchannel(first, iss=idp.issuer, sid=sid)  # an iframe: no cookie of ours
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    csp = resp.headers["content-security-policy"]
    assert f"frame-ancestors {idp.issuer}" in csp  # the issuer's origin (its path is "")
    assert "frame-ancestors 'none'" not in csp
    assert resp.headers.get("x-frame-options", "").upper() != "DENY"
    assert "<script" not in resp.text
    assert home_status(first, ended) == 303
    assert soon(lambda: home_status(second, ended) == 303)
    assert home_status(second, other) == 200
    # every other page still forbids framing
    home = httpx.get(f"{first}/signed-out")
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    assert home.headers["x-frame-options"] == "DENY"


def test_frontchannel_logout_ends_the_browsers_own_session_and_clears_the_cookie(
    idp: HostileIdP, workers: tuple[str, str]
) -> None:
    first, _ = workers
    bare, _ = _session(idp, first, sid=REMOVE)
    resp = _frontchannel(first, cookie=bare)  # Entra ID without the sid claim: no parameters
    assert resp.status_code == 200
    cleared = set_cookies(resp)[SESSION_COOKIE]
    assert cleared[0] == "" or cleared[1].get("max-age") == "0"
    assert home_status(first, bare) == 303
    # a browser session of another provider session survives a logout of this one
    mine, _ = _session(idp, first)
    resp = _frontchannel(first, cookie=mine, iss=idp.issuer, sid="op-session-of-someone-else")
    assert resp.status_code == 200
    assert SESSION_COOKIE not in set_cookies(resp)
    assert home_status(first, mine) == 200


def test_frontchannel_logout_from_another_issuer_is_refused(
    idp: HostileIdP, workers: tuple[str, str]
) -> None:
    first, _ = workers
    cookie, sid = _session(idp, first)
    resp = _frontchannel(first, cookie=cookie, iss=OTHER_ISSUER, sid=sid)
    assert resp.status_code == 400
    assert home_status(first, cookie) == 200
    assert resp.headers["x-frame-options"] == "DENY"  # and not framable by anyone


# --- sign-in state -------------------------------------------------------------------------
def test_replayed_state_never_reaches_the_token_endpoint_again(
    idp: HostileIdP, workers: tuple[str, str]
) -> None:
    """An attacker keeps the login cookie and the callback URL of a sign-in and sends them
    again and again, to each worker: the portal calls the token endpoint once."""
    first, second = workers
    with browser_client() as browser:
        started = start(browser, first)
        login_cookies = dict(browser.cookies)
        callback = authorize(browser, first, started)
        assert browser.get(callback).status_code == 303  # the genuine sign-in
    assert len(idp.seen.token) == 1
    for worker in (first, second, first, second):
        with browser_client() as attacker:
            for name, value in login_cookies.items():
                attacker.cookies.set(name, value)
            replay = attacker.get(callback.replace(first, worker))
            assert replay.status_code == 400, replay.text
            assert "expired or was already used" in replay.text
    assert len(idp.seen.token) == 1

"""Every OIDC rule of the README's Security section, proved over real HTTP against a bad provider.

Each test runs a fresh portal (empty JWKS and metadata caches) against the module's
:class:`tests.hostile_idp.HostileIdP`, reset to good behaviour, sets the one thing the provider
gets wrong, and walks the authorization code flow as a browser would: ``/login`` -> the
provider's ``/authorize`` -> the portal's ``/auth/callback``.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from launcher.app import create_app
from launcher.settings import Settings
from tests.helpers import LiveServer, free_port, wait_until
from tests.hostile_idp import (
    BACKCHANNEL_EVENT,
    CLIENT_ID,
    REMOVE,
    HostileIdP,
    Now,
    Scenario,
    s256,
)

SESSION_COOKIE = "launcher_session"
LOGIN_COOKIE = "launcher_login"
OTHER_ISSUER = "http://127.0.0.1:9/other-idp"


# --- fixtures and helpers ------------------------------------------------------------------
@pytest.fixture
def idp(hostile_idp_server: HostileIdP) -> HostileIdP:
    """The provider, well-behaved again; each test's portal starts with empty caches."""
    hostile_idp_server.reset()
    return hostile_idp_server


@pytest.fixture
def settings(idp: HostileIdP, make_settings: Callable[..., Settings], sqlite_url: str) -> Settings:
    return make_settings(
        oidc_issuer=idp.issuer,
        oidc_client_id=CLIENT_ID,
        base_url=f"http://127.0.0.1:{free_port()}",
        database_url=sqlite_url,
    )


@pytest.fixture
def portal(settings: Settings) -> Iterator[str]:
    port = httpx.URL(settings.base_url).port
    assert port is not None
    with LiveServer(create_app(settings, writer="thread"), port) as server:
        yield server.url


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with _client() as client:
        yield client


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # unused on loopback http; built once, as it is slow


def _client() -> httpx.Client:
    """A browser (or the provider's back channel): its own cookie jar, redirects not followed."""
    return httpx.Client(
        follow_redirects=False, timeout=10, verify=_tls(), headers={"Accept-Language": "en"}
    )


@dataclass
class Started:
    """A login started at the portal: the authorization request it sent us to."""

    response: httpx.Response
    url: httpx.URL

    @property
    def params(self) -> dict[str, str]:
        return dict(self.url.params)


def start(client: httpx.Client, portal: str, next_path: str = "/") -> Started:
    resp = client.get(f"{portal}/login", params={"next": next_path})
    assert resp.status_code in (302, 303), resp.text
    return Started(resp, httpx.URL(resp.headers["location"]))


def authorize(client: httpx.Client, portal: str, started: Started) -> str:
    """The provider's redirect back to the portal (the callback URL with code and state)."""
    resp = client.get(started.url)
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith(f"{portal}/auth/callback?"), location
    return location


def sign_in(client: httpx.Client, portal: str, next_path: str = "/") -> httpx.Response:
    started = start(client, portal, next_path)
    return client.get(authorize(client, portal, started))


def set_cookies(resp: httpx.Response) -> dict[str, tuple[str, dict[str, str]]]:
    """Each Set-Cookie of ``resp``: name -> (value, attributes with lower-case names)."""
    cookies = {}
    for header in resp.headers.get_list("set-cookie"):
        pair, *attrs = (part.strip() for part in header.split(";"))
        name, _, value = pair.partition("=")
        parsed = {}
        for attr in attrs:
            key, _, val = attr.partition("=")
            parsed[key.lower()] = val
        cookies[name] = (value.strip('"'), parsed)
    return cookies


def assert_signed_in(client: httpx.Client, portal: str, resp: httpx.Response) -> str:
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == "/"
    value, _ = set_cookies(resp)[SESSION_COOKIE]
    assert value
    home = client.get(f"{portal}/")
    assert home.status_code == 200, home.text
    assert "Alice Hostile" in home.text
    return value


def assert_refused(
    client: httpx.Client, portal: str, resp: httpx.Response, status: int, words: str
) -> None:
    """An HTML page in plain words with ``status``, no session, and the browser still anonymous."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert words in resp.text
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    assert "id_token" not in resp.text  # technical reasons go to the log, not the page
    assert "<h1>" in resp.text  # the error page, not a bare framework message
    session = set_cookies(resp).get(SESSION_COOKIE)
    assert session is None or session[0] == "", f"a session cookie was set: {session}"
    home = client.get(f"{portal}/")
    assert home.status_code == 303
    assert home.headers["location"].startswith("/login")


def soon(predicate: Callable[[], bool], timeout: float = 2.5) -> bool:
    """True once ``predicate`` holds; workers see revocations within about a second."""
    return wait_until(predicate, timeout)


def home_status(portal: str, session_cookie: str) -> int:
    """What GET / answers to a browser holding only ``session_cookie``: 200, or 303 to login."""
    with _client() as client:
        client.cookies.set(SESSION_COOKIE, session_cookie)
        resp = client.get(f"{portal}/")
    assert resp.status_code == 200 or resp.headers["location"].startswith("/login"), resp
    return resp.status_code


# --- the control case ----------------------------------------------------------------------
def test_good_provider_signs_in(idp: HostileIdP, portal: str, browser: httpx.Client) -> None:
    assert_signed_in(browser, portal, sign_in(browser, portal))
    assert idp.seen.userinfo == 1  # the portal fetched the profile and its sub matched
    assert len(idp.seen.token) == 1 and idp.seen.token[0]["pkce_ok"]
    # email and groups come from userinfo only (as with many providers): they were merged
    grid = browser.get(f"{portal}/")
    assert 'href="/launch/google-workspace"' in grid.text  # groups: [staff]
    launched = browser.get(f"{portal}/launch/teams")
    assert launched.status_code == 303
    assert launched.headers["location"].endswith("login_hint=alice%40hostile.example")


# --- ID-token validation: each case breaks exactly one rule --------------------------------
CHECKS = "did not pass our checks"
REFUSED_ID_TOKENS = [
    pytest.param({"signing": "rogue"}, "failed its signature check", id="bad signature"),
    pytest.param(
        {"signing": "none", "algs_supported": ["RS256", "none"]},
        "not signed in a way we accept",
        id="alg none",
    ),
    pytest.param(
        {"signing": "hs256", "algs_supported": ["RS256", "HS256"]},
        "not signed in a way we accept",
        id="HS256 with the client secret",
    ),
    pytest.param(
        {"signing": "stranger-kid"},
        "signed with a key the service does not publish",
        id="unknown kid",
    ),
    pytest.param(
        {"signing": "jku"},
        "signed with a key the service does not publish",
        id="jku header pointing at other keys",
    ),
    pytest.param({"claims": {"iss": OTHER_ISSUER}}, CHECKS, id="wrong iss"),
    pytest.param({"claims": {"iss": REMOVE}}, CHECKS, id="iss missing"),
    pytest.param({"claims": {"aud": "other-client"}}, CHECKS, id="wrong aud"),
    pytest.param({"claims": {"aud": REMOVE}}, CHECKS, id="aud missing"),
    pytest.param(
        {"claims": {"aud": ["other-client", CLIENT_ID]}}, CHECKS, id="several aud without azp"
    ),
    pytest.param(
        {"claims": {"aud": ["other-client", CLIENT_ID], "azp": "other-client"}},
        CHECKS,
        id="several aud with azp of another client",
    ),
    pytest.param(
        {"claims": {"aud": "other-client", "azp": CLIENT_ID}},
        CHECKS,
        id="aud of another client with our azp",
    ),
    pytest.param({"claims": {"exp": Now(-180)}}, CHECKS, id="expired beyond leeway"),
    pytest.param({"claims": {"exp": REMOVE}}, CHECKS, id="exp missing"),
    pytest.param({"claims": {"iat": REMOVE}}, CHECKS, id="iat missing"),
    pytest.param({"claims": {"iat": Now(180)}}, CHECKS, id="iat in the future beyond leeway"),
    pytest.param({"claims": {"sub": REMOVE}}, CHECKS, id="sub missing"),
    pytest.param({"claims": {"sub": ""}}, CHECKS, id="sub empty"),
    pytest.param({"claims": {"nonce": REMOVE}}, CHECKS, id="nonce missing"),
    pytest.param({"claims": {"nonce": "not-the-nonce-we-sent"}}, CHECKS, id="nonce wrong"),
    pytest.param({"omit_id_token": True}, "did not confirm who you are", id="no id_token"),
    pytest.param(
        {"userinfo_sub": "mallory"}, "conflicting answers about who you are", id="userinfo sub"
    ),
    pytest.param(
        {"callback_iss": OTHER_ISSUER}, "came from the wrong service", id="callback iss mix-up"
    ),
    pytest.param(
        {"callback_iss": None, "advertise_iss_parameter": True},
        "did not say which service sent it",
        id="callback without the iss its provider promises",
    ),
]


@pytest.mark.parametrize(("scenario", "words"), REFUSED_ID_TOKENS)
def test_bad_sign_in_answer_is_refused(
    idp: HostileIdP, portal: str, browser: httpx.Client, scenario: dict[str, Any], words: str
) -> None:
    idp.scenario = Scenario(**scenario)
    resp = sign_in(browser, portal)
    assert_refused(browser, portal, resp, 400, words)
    if "callback_iss" in scenario:  # an iss problem is caught before the code is exchanged
        assert idp.seen.token == []  # refused before the code went anywhere
    assert idp.seen.attacker_jwks_fetches == 0  # keys come from the discovery's jwks_uri only


ACCEPTED = [
    pytest.param({"claims": {"exp": Now(-60)}}, id="expired 60 s ago, inside leeway"),
    pytest.param({"claims": {"iat": Now(60)}}, id="iat 60 s ahead, inside leeway"),
    pytest.param(
        {"claims": {"aud": [CLIENT_ID, "other-client"], "azp": CLIENT_ID}},
        id="several aud with our azp",
    ),
    pytest.param({"claims": {"aud": [CLIENT_ID]}}, id="aud as a one-element list"),
    pytest.param(
        {"callback_iss": None, "advertise_iss_parameter": False},
        id="no iss on the callback from a provider that never sends it",
    ),
]


@pytest.mark.parametrize("scenario", ACCEPTED)
def test_acceptable_sign_in_answer(
    idp: HostileIdP, portal: str, browser: httpx.Client, scenario: dict[str, Any]
) -> None:
    idp.scenario = Scenario(**scenario)
    assert_signed_in(browser, portal, sign_in(browser, portal))


# --- a provider that fails -----------------------------------------------------------------
FAILING_PROVIDER = [
    pytest.param({"token_failure": "500"}, "complete the sign-in", id="token endpoint 500"),
    pytest.param(
        {"token_endpoint": "unreachable"},
        "could not be reached",
        id="token endpoint unreachable",
    ),
    pytest.param(
        {"token_failure": "invalid_grant"},
        "refused to complete the sign-in",
        id="token endpoint invalid_grant",
    ),
]


@pytest.mark.parametrize(("scenario", "words"), FAILING_PROVIDER)
def test_failing_provider_answers_502(
    idp: HostileIdP, portal: str, browser: httpx.Client, scenario: dict[str, Any], words: str
) -> None:
    unreachable = scenario.get("token_endpoint") == "unreachable"
    if unreachable:  # a port nobody listens on, right now
        scenario = {"token_endpoint": f"http://127.0.0.1:{free_port()}/token"}
    idp.scenario = Scenario(**scenario)
    assert_refused(browser, portal, sign_in(browser, portal), 502, words)
    assert len(idp.seen.token) == (0 if unreachable else 1)


@pytest.mark.parametrize(
    ("scenario", "words"),
    [
        pytest.param(
            {"discovery_issuer": OTHER_ISSUER},
            "identifies itself differently than configured",
            id="discovery issuer mismatch",
        ),
        pytest.param(
            {"auth_methods": ["private_key_jwt"]},
            "supports no client authentication we can use",
            id="no usable client authentication",
        ),
    ],
)
def test_unusable_discovery_document(
    idp: HostileIdP, portal: str, browser: httpx.Client, scenario: dict[str, Any], words: str
) -> None:
    idp.scenario = Scenario(**scenario)
    resp = browser.get(f"{portal}/login")
    assert_refused(browser, portal, resp, 502, words)
    assert idp.seen.discovery_fetches >= 1
    assert idp.seen.authorize == [] and idp.seen.token == []


@pytest.mark.parametrize(
    ("scenario", "status", "words"),
    [
        pytest.param(
            {"authorize_error": "access_denied"}, 400, "sign-in was refused", id="access_denied"
        ),
        pytest.param(
            {"authorize_error": "access_denied", "authorize_error_description": "You said no"},
            400,
            "You said no",
            id="access_denied with a description",
        ),
        pytest.param(
            {"authorize_error": "temporarily_unavailable"},
            502,
            "try again in a moment",
            id="temporarily_unavailable",
        ),
        pytest.param(
            {"authorize_error": "server_error"}, 502, "try again in a moment", id="server_error"
        ),
        pytest.param(
            {
                "authorize_error": "access_denied",
                "authorize_error_description": "Call +1 555 0100 to unlock your account",
                "callback_iss": OTHER_ISSUER,
            },
            400,
            "came from the wrong service",
            id="error from another issuer",
        ),
    ],
)
def test_provider_authorization_error(
    idp: HostileIdP,
    portal: str,
    browser: httpx.Client,
    scenario: dict[str, Any],
    status: int,
    words: str,
) -> None:
    idp.scenario = Scenario(**scenario)
    resp = sign_in(browser, portal)
    assert_refused(browser, portal, resp, status, words)
    assert scenario["authorize_error"] not in resp.text  # words, not a protocol code
    if scenario.get("callback_iss"):
        assert "555" not in resp.text  # another provider's words are not shown
    assert 'href="/login?next=/"' in resp.text  # offers to sign in again
    assert idp.seen.token == []  # nothing to exchange


# --- keys ----------------------------------------------------------------------------------
def test_key_rotation_refetches_jwks(idp: HostileIdP, portal: str) -> None:
    with _client() as first:
        assert_signed_in(first, portal, sign_in(first, portal))
    assert idp.seen.jwks_fetches == 1  # cached now
    idp.rotate()
    with _client() as second:
        assert_signed_in(second, portal, sign_in(second, portal))
    assert idp.seen.jwks_fetches == 2  # the unknown kid made the portal look again
    assert idp.seen.id_tokens[-1]["sub"] == "alice"


def test_unknown_kid_is_refused_after_one_refetch(idp: HostileIdP, portal: str) -> None:
    with _client() as first:
        assert_signed_in(first, portal, sign_in(first, portal))
    assert idp.seen.jwks_fetches == 1
    idp.scenario = Scenario(signing="stranger-kid")
    words = "signed with a key the service does not publish"
    with _client() as second:
        assert_refused(second, portal, sign_in(second, portal), 400, words)
    assert idp.seen.jwks_fetches == 2  # refetched once: the kid really is unknown
    with _client() as third:
        assert_refused(third, portal, sign_in(third, portal), 400, words)
    assert idp.seen.jwks_fetches == 2  # cooldown: a made-up kid cannot make us hammer the JWKS


# --- PKCE and client authentication --------------------------------------------------------
def test_pkce_s256(idp: HostileIdP, portal: str, browser: httpx.Client) -> None:
    started = start(browser, portal)
    params = started.params
    assert params["code_challenge_method"] == "S256"
    assert params["response_type"] == "code"
    assert "openid" in params["scope"].split()
    assert params["state"] and params["nonce"]
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256 digest
    assert_signed_in(browser, portal, browser.get(authorize(browser, portal, started)))
    (token_request,) = idp.seen.token
    verifier = token_request["form"]["code_verifier"]
    assert 43 <= len(verifier) <= 128
    assert s256(verifier) == params["code_challenge"]
    assert verifier != params["code_challenge"]  # not "plain"
    assert idp.seen.id_tokens[0]["nonce"] == params["nonce"]


@pytest.mark.parametrize(
    ("advertised", "expected"),
    [
        pytest.param(["client_secret_post"], "client_secret_post", id="only post"),
        pytest.param(["client_secret_basic"], "client_secret_basic", id="only basic"),
        pytest.param(None, "client_secret_basic", id="not advertised means basic"),
    ],
)
def test_client_authentication_as_advertised(
    idp: HostileIdP,
    portal: str,
    browser: httpx.Client,
    advertised: list[str] | None,
    expected: str,
) -> None:
    idp.scenario = Scenario(auth_methods=advertised)
    assert_signed_in(browser, portal, sign_in(browser, portal))
    (token_request,) = idp.seen.token
    assert token_request["auth_method"] == expected
    if expected == "client_secret_basic":
        assert "client_secret" not in token_request["form"]


# --- state: bound to this login attempt in this browser ------------------------------------
def _with_state(callback: str, state: str) -> str:
    url = httpx.URL(callback)
    return str(url.copy_set_param("state", state))


def test_state_never_issued_is_refused(idp: HostileIdP, portal: str, browser: httpx.Client) -> None:
    started = start(browser, portal)
    callback = authorize(browser, portal, started)
    forged = browser.get(_with_state(callback, "a-state-we-never-issued"))
    assert_refused(browser, portal, forged, 400, "expired or was already used")
    assert idp.seen.token == []  # refused before the code was spent
    # the genuine answer still completes: only the state was wrong above
    assert_signed_in(browser, portal, browser.get(callback))


def test_state_of_another_browser_is_refused(idp: HostileIdP, portal: str) -> None:
    with _client() as attacker, _client() as victim:
        callback = authorize(attacker, portal, start(attacker, portal))
        victim.get(f"{portal}/login")  # the victim has a login attempt of its own
        resp = victim.get(callback)
        assert_refused(victim, portal, resp, 400, "expired or was already used")
    assert idp.seen.token == []


def test_state_replay_is_refused(idp: HostileIdP, portal: str, browser: httpx.Client) -> None:
    callback = authorize(browser, portal, start(browser, portal))
    first_session = assert_signed_in(browser, portal, browser.get(callback))
    replay = browser.get(callback)
    # signed in already (an old tab finishing late): back to the grid, nothing exchanged
    assert replay.status_code == 303 and replay.headers["location"] == "/"
    assert SESSION_COOKIE not in set_cookies(replay)  # no new session
    assert browser.cookies.get(SESSION_COOKIE) == first_session
    browser.cookies.delete(SESSION_COOKIE)  # the same browser, signed out meanwhile
    assert_refused(browser, portal, browser.get(callback), 400, "expired or was already used")
    assert len(idp.seen.token) == 1  # the code was never presented twice


def test_second_tab_gets_a_fresh_login(idp: HostileIdP, portal: str, browser: httpx.Client) -> None:
    tab1 = start(browser, portal)
    tab2 = start(browser, portal)
    assert tab1.params["state"] != tab2.params["state"]
    assert tab1.params["nonce"] != tab2.params["nonce"]
    callback1 = authorize(browser, portal, tab1)
    callback2 = authorize(browser, portal, tab2)
    first = assert_signed_in(browser, portal, browser.get(callback1))
    second = assert_signed_in(browser, portal, browser.get(callback2))
    assert second != first  # a new session at every sign-in
    assert home_status(portal, first) == 303  # ... and the previous one is over
    assert home_status(portal, second) == 200


def test_tabs_starting_logins_at_the_same_moment_both_finish(idp: HostileIdP, portal: str) -> None:
    """A restored browser session: two tabs hit /login before either response has set a
    cookie. Neither attempt may overwrite the other's."""
    with _client() as tab1, _client() as tab2, _client() as browser:
        started1, started2 = start(tab1, portal), start(tab2, portal)  # same (empty) jar
        for tab in (tab1, tab2):
            browser.cookies.update(tab.cookies)  # both responses reach the one browser
        first = assert_signed_in(browser, portal, browser.get(authorize(browser, portal, started1)))
        second = browser.get(authorize(browser, portal, started2))
        assert second.status_code == 303 and second.headers["location"] == "/"
        assert set_cookies(second)[SESSION_COOKIE][0] != first  # its own, fresh session


def test_cookie_attributes_on_http(idp: HostileIdP, portal: str, browser: httpx.Client) -> None:
    started = start(browser, portal)
    (login_value, login), *others = [
        v for k, v in set_cookies(started.response).items() if k.startswith(LOGIN_COOKIE + "-")
    ]
    assert not others  # one cookie per login attempt
    assert login_value
    assert "httponly" in login
    assert login.get("samesite", "").lower() == "lax"
    assert "secure" not in login
    assert login.get("path") == "/"
    done = browser.get(authorize(browser, portal, started))
    _, session = set_cookies(done)[SESSION_COOKIE]
    assert "httponly" in session
    assert session.get("samesite", "").lower() == "lax"
    assert "secure" not in session
    assert len(browser.cookies.get(SESSION_COOKIE) or "") < 4096


# --- back-channel logout -------------------------------------------------------------------
def _backchannel(portal: str, token: str) -> httpx.Response:
    with _client() as provider:
        return provider.post(f"{portal}/auth/backchannel-logout", data={"logout_token": token})


def _signed_in_session(idp: HostileIdP, portal: str, sub: str = "alice") -> tuple[str, str]:
    """A new browser session for ``sub``: (session cookie, the provider's sid)."""
    idp.scenario = Scenario(sub=sub)
    with _client() as client:
        resp = sign_in(client, portal)
        assert resp.status_code == 303, resp.text
        cookie = set_cookies(resp)[SESSION_COOKIE][0]
    assert home_status(portal, cookie) == 200
    return cookie, idp.seen.id_tokens[-1]["sid"]


def test_backchannel_logout_by_sid(idp: HostileIdP, portal: str, settings: Settings) -> None:
    ended, sid = _signed_in_session(idp, portal)
    other, _ = _signed_in_session(idp, portal)  # same user, another provider session
    # a second worker process of the same portal (same database): it learns of the logout
    # only through the revocation table it polls
    port = free_port()
    with LiveServer(create_app(settings, writer="thread"), port) as worker:
        assert home_status(worker.url, ended) == 200
        resp = _backchannel(portal, idp.logout_token(sid=sid, sub="alice"))
        assert resp.status_code == 200, resp.text
        assert home_status(portal, ended) == 303
        assert soon(lambda: home_status(worker.url, ended) == 303)
        assert home_status(worker.url, other) == 200  # only that provider session ended
    assert home_status(portal, other) == 200


def test_backchannel_logout_by_sub_ends_all_of_that_user(idp: HostileIdP, portal: str) -> None:
    alice1, _ = _signed_in_session(idp, portal)
    alice2, _ = _signed_in_session(idp, portal)
    bob, _ = _signed_in_session(idp, portal, sub="bob")
    resp = _backchannel(portal, idp.logout_token(sub="alice"))
    assert resp.status_code == 200, resp.text
    assert soon(lambda: home_status(portal, alice1) == 303)
    assert soon(lambda: home_status(portal, alice2) == 303)
    assert home_status(portal, bob) == 200


INVALID_LOGOUT_TOKENS = [
    pytest.param({"signing": "rogue"}, id="bad signature"),
    pytest.param({"signing": "none"}, id="alg none"),
    pytest.param({"events": REMOVE}, id="events claim missing"),
    pytest.param({"events": {"http://example.com/other-event": {}}}, id="wrong event"),
    pytest.param({"nonce": "n-0S6_WzA2Mj"}, id="with a nonce"),
    pytest.param({"aud": "other-client"}, id="wrong aud"),
    pytest.param({"iss": OTHER_ISSUER}, id="wrong iss"),
    pytest.param({"iat": REMOVE}, id="iat missing"),
    pytest.param({"exp": Now(-600)}, id="expired"),
    pytest.param({"sub": REMOVE, "sid": REMOVE}, id="neither sub nor sid"),
]


@pytest.mark.parametrize("change", INVALID_LOGOUT_TOKENS)
def test_invalid_logout_token_is_refused(
    idp: HostileIdP, portal: str, change: dict[str, Any]
) -> None:
    cookie, sid = _signed_in_session(idp, portal)
    token = idp.logout_token(**{"sid": sid, "sub": "alice", **change})
    resp = _backchannel(portal, token)
    assert resp.status_code == 400, resp.text
    assert resp.json() == {"error": "invalid_request"}
    assert home_status(portal, cookie) == 200  # the session lives on
    # the same request with a valid token does end it: the check above could have failed
    assert _backchannel(portal, idp.logout_token(sid=sid, sub="alice")).status_code == 200
    assert soon(lambda: home_status(portal, cookie) == 303)


def test_logout_token_claims_are_what_the_spec_says(idp: HostileIdP) -> None:
    """Guards the fixture itself: the valid logout token is a well-formed one."""
    token = idp.logout_token(sid="s", sub="alice")
    published: list[Any] = list(idp.published)
    claims = jwt.decode(token, KeySet(published), algorithms=["RS256"]).claims
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert claims["aud"] == CLIENT_ID and claims["iss"] == idp.issuer
    assert "nonce" not in claims and claims["jti"]

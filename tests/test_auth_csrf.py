"""CSRF and state changes (launcher/auth/csrf.py and the views that post): both layers, the
back-channel logout's exemption, and token functions called directly. In process."""

from __future__ import annotations

import time

import pytest
from joserfc.jwk import RSAKey
from starlette.datastructures import Headers

from launcher.auth import csrf
from launcher.errors import CsrfFailed
from tests.helpers import STAFF, InProcess, devidp_of
from tests.web import audit, csrf_of, logout_token, post_paths

ORIGIN = "http://127.0.0.1:8000"  # the portal's origin in tests/conftest.py's make_settings


# --- the token functions --------------------------------------------------------------------
def test_token_is_bound_to_the_secret_and_the_session() -> None:
    token = csrf.token_for("secret", "sid-1")
    assert token == csrf.token_for("secret", "sid-1")
    assert len(token) == 32 and all(c in "0123456789abcdef" for c in token)
    assert token != csrf.token_for("secret", "sid-2")
    assert token != csrf.token_for("other secret", "sid-1")


def test_check_token_accepts_exactly_the_right_token() -> None:
    csrf.check_token("secret", "sid", csrf.token_for("secret", "sid"))


@pytest.mark.parametrize(
    "submitted",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("0" * 32, id="wrong"),
        pytest.param(csrf.token_for("secret", "other-sid"), id="another session's"),
        pytest.param(csrf.token_for("secret", "sid").upper(), id="upper case"),
        pytest.param(csrf.token_for("secret", "sid")[:-1], id="cut short"),
        pytest.param(123, id="not a string"),
    ],
)
def test_check_token_refuses_anything_else(submitted: object) -> None:
    with pytest.raises(CsrfFailed):
        csrf.check_token("secret", "sid", submitted)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({}, None, id="no headers"),
        pytest.param({"Sec-Fetch-Site": "same-origin"}, None, id="same-origin"),
        pytest.param({"Sec-Fetch-Site": "none"}, None, id="typed by the user"),
        pytest.param({"Origin": ORIGIN}, None, id="our Origin"),
        pytest.param(
            {"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site", id="cross-site"
        ),
        pytest.param({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site", id="same-site"),
        pytest.param({"Origin": "null"}, "Origin: null", id="Origin null"),
        pytest.param(
            {"Origin": f"{ORIGIN}.evil.example", "Sec-Fetch-Site": "same-origin"},
            f"Origin: {ORIGIN}.evil.example",
            id="foreign Origin, same-origin fetch",
        ),
    ],
)
def test_cross_origin_reason(headers: dict[str, str], reason: str | None) -> None:
    assert csrf.cross_origin_reason(Headers(headers), ORIGIN) == reason


# --- logout ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "headers"),
    [
        pytest.param(None, {"Sec-Fetch-Site": "same-origin"}, id="no token"),
        pytest.param("0" * 32, {"Sec-Fetch-Site": "same-origin"}, id="wrong token"),
        pytest.param("", {}, id="empty token"),
        pytest.param("right", {"Sec-Fetch-Site": "cross-site"}, id="cross-site"),
        pytest.param("right", {"Sec-Fetch-Site": "same-site"}, id="same-site subdomain"),
        pytest.param("right", {"Origin": "https://evil.example"}, id="foreign Origin"),
        pytest.param("right", {"Origin": "null"}, id="Origin null"),
        pytest.param(
            "right",
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
            id="foreign Origin, same-origin fetch",
        ),
    ],
)
def test_logout_refuses_forged_requests(
    portal: InProcess, token: str | None, headers: dict[str, str]
) -> None:
    cookie = portal.cookie(STAFF)
    grid = portal.get("/", cookie)
    data = (
        {} if token is None else {"csrf_token": csrf_of(grid.text) if token == "right" else token}
    )
    refused = portal.post("/logout", cookie, data=data, headers=headers)
    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    assert audit(refused.text) == []
    assert portal.get("/", cookie).status_code == 200, "the session must survive"


def test_logout_token_of_another_session_is_refused(portal: InProcess) -> None:
    victim, attacker = portal.cookie(STAFF), portal.cookie(STAFF)
    attackers_token = csrf_of(portal.get("/", attacker).text)
    refused = portal.post("/logout", victim, data={"csrf_token": attackers_token})
    assert refused.status_code == 403
    assert portal.get("/", victim).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "{origin}", "Sec-Fetch-Site": "same-origin"}, id="modern browser"),
        pytest.param({}, id="no fetch metadata (the token alone)"),
    ],
)
def test_logout_with_the_right_token_from_our_own_pages(
    portal: InProcess, headers: dict[str, str]
) -> None:
    settings = portal.settings
    cookie = portal.cookie(STAFF)
    grid = portal.get("/", cookie)
    sent = {k: v.format(origin=settings.base_url) for k, v in headers.items()}
    out = portal.post("/logout", cookie, data={"csrf_token": csrf_of(grid.text)}, headers=sent)
    assert out.status_code == 303
    assert out.headers["location"].startswith(f"{settings.oidc_issuer}/end-session?")
    assert settings.session_cookie in out.headers["set-cookie"]
    assert portal.get("/", cookie).status_code == 303


def test_every_post_refuses_cross_site_requests(portal: InProcess) -> None:
    paths = sorted(set(post_paths(portal.app.routes)))
    assert {"/logout", "/auth/backchannel-logout", "/_devidp/authorize"} <= set(paths)
    forged = [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ]
    cookie = portal.cookie(STAFF)
    token = csrf_of(portal.get("/", cookie).text)
    for path in paths:
        for headers in forged:
            resp = portal.post(path, cookie, data={"csrf_token": token}, headers=headers)
            if path == "/auth/backchannel-logout":  # exempt: carries its own proof
                assert resp.status_code == 400, (path, headers)
            elif path.startswith("/unsubscribe/"):  # exempt too: the signed token is
                assert resp.status_code == 404, (path, headers)  # the proof (RFC 8058)
            else:
                assert resp.status_code == 403, (path, headers, resp.status_code)
    assert portal.get("/", cookie).status_code == 200


def test_backchannel_logout_is_exempt_from_the_origin_check_but_needs_a_valid_token(
    portal: InProcess,
) -> None:
    settings = portal.settings
    cross = {"Sec-Fetch-Site": "cross-site", "Origin": "https://idp.example"}
    url = "/auth/backchannel-logout"
    idp = devidp_of(portal.app)
    stranger = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)
    cookie = portal.cookie(STAFF)
    bad = {
        "no token": {},
        "bogus token": {"logout_token": "not-a-jwt"},
        "unknown key": {"logout_token": logout_token(stranger, settings, sub=STAFF.sub)},
        "no events": {
            "logout_token": logout_token(idp.keys[0], settings, sub=STAFF.sub, events={})
        },
        "other audience": {
            "logout_token": logout_token(idp.keys[0], settings, sub=STAFF.sub, aud="x")
        },
    }
    for what, data in bad.items():
        resp = portal.post(url, data=data, headers=cross)
        assert resp.status_code == 400, what
        assert resp.json() == {"error": "invalid_request"}, what
    assert portal.get("/", cookie).status_code == 200

    good = logout_token(idp.keys[0], settings, sub=STAFF.sub)
    assert portal.post(url, data={"logout_token": good}, headers=cross).status_code == 200
    assert portal.get("/", cookie).status_code == 303
    # a later sign-in of the same user is a new session, not caught by the logout
    time.sleep(0.01)  # sessions carry their start in milliseconds
    assert portal.get("/", portal.cookie(STAFF)).status_code == 200


def test_get_logout_changes_nothing(portal: InProcess) -> None:
    cookie = portal.cookie(STAFF)
    resp = portal.get("/logout", cookie)
    assert resp.status_code == 405
    assert "set-cookie" not in resp.headers
    assert portal.get("/", cookie).status_code == 200

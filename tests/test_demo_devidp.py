"""The development OpenID Provider, driven over HTTP as the portal drives it."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import stat
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import Mount

with warnings.catch_warnings():
    # Starlette 1.x warns at import that it prefers httpx2 over the httpx we have installed;
    # the client works the same, and warnings are errors in this suite.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from launcher.demo.devidp import DEMO_USERS, DemoUser, DevClient, create_devidp

ISSUER = "http://testserver/_devidp"
REDIRECT = "http://testserver/auth/callback"
AFTER_LOGOUT = "http://testserver/signed-out"
PORTAL = DevClient("launcher", "portal-secret+/=", (REDIRECT,), (AFTER_LOGOUT,))
OTHER = DevClient("other", "other-secret", ("http://other.test/cb",))
USER = DEMO_USERS[1]  # the clinician: two groups


class Idp:
    """A portal-shaped app with the dev IdP mounted under /_devidp, and helpers to drive it."""

    def __init__(self, users: Sequence[DemoUser] = DEMO_USERS, key_file: Path | None = None):
        self.app = create_devidp(ISSUER, [PORTAL, OTHER], users=users, key_file=key_file)
        portal = Starlette(routes=[Mount("/_devidp", app=self.app)])
        self.http = TestClient(portal, follow_redirects=False)
        self.verifier = secrets.token_urlsafe(48)
        self.nonce = secrets.token_urlsafe(16)
        self.state = secrets.token_urlsafe(16)

    def params(self, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "client_id": PORTAL.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid profile email",
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": challenge(self.verifier),
            "code_challenge_method": "S256",
            **overrides,
        }
        return {k: v for k, v in params.items() if v is not None}

    def login(self, user: DemoUser = USER, **overrides: str | None) -> str:
        data = {**self.params(**overrides), "user": user.sub}
        resp: httpx.Response = self.http.post("/_devidp/authorize", data=data)
        assert resp.status_code == 302, resp.text
        query = query_of(resp)
        assert query["state"] == [self.state]
        return query["code"][0]

    def exchange(
        self,
        code: str,
        *,
        verifier: str | None = None,
        auth: str = "basic",
        client: DevClient = PORTAL,
        secret: str | None = None,
    ) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier or self.verifier,
        }
        secret = client.client_secret if secret is None else secret
        resp: httpx.Response
        if auth == "basic":
            resp = self.http.post("/_devidp/token", data=data, auth=(client.client_id, secret))
        else:
            data |= {"client_id": client.client_id, "client_secret": secret}
            resp = self.http.post("/_devidp/token", data=data)
        return resp

    def tokens(self, user: DemoUser = USER) -> dict[str, Any]:
        resp = self.exchange(self.login(user))
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def verify(self, id_token: str) -> jwt.Token:
        keys = KeySet.import_key_set(self.http.get("/_devidp/jwks").json())
        return jwt.decode(id_token, keys, algorithms=["RS256"])


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(resp: httpx.Response) -> dict[str, list[str]]:
    return parse_qs(urlsplit(resp.headers["location"]).query)


@pytest.fixture
def idp() -> Iterator[Idp]:
    helper = Idp()
    with helper.http:
        yield helper


def test_discovery_document(idp: Idp) -> None:
    doc = idp.http.get("/_devidp/.well-known/openid-configuration").json()
    assert doc["issuer"] == ISSUER
    for key, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/end-session"),
    ]:
        assert doc[key] == ISSUER + path
    assert doc["response_types_supported"] == ["code"]
    assert doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["grant_types_supported"] == ["authorization_code"]
    assert "openid" in doc["scopes_supported"]
    assert {"groups", "department", "nonce", "sid"} <= set(doc["claims_supported"])


def test_jwks_publishes_only_the_public_signing_key(idp: Idp) -> None:
    keys = idp.http.get("/_devidp/jwks").json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA" and keys[0]["use"] == "sig" and keys[0]["alg"] == "RS256"
    assert keys[0]["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])


def test_demo_users_cover_the_roles() -> None:
    groups = {u.groups for u in DEMO_USERS}
    assert groups == {
        ("staff",),
        ("staff", "clinicians"),
        ("staff", "launcher-reviewers"),
        ("staff", "launcher-admins"),
        ("staff", "launcher-editors"),
    }
    assert all(u.email.endswith("@zorggroep-noord.example") for u in DEMO_USERS)
    assert len({u.sub for u in DEMO_USERS}) == 5


def test_authorize_page_offers_every_demo_user(idp: Idp) -> None:
    resp = idp.http.get("/_devidp/authorize", params=idp.params(login_hint="someone"))
    assert resp.status_code == 200
    page = resp.text
    assert '<form method="post" action="http://testserver/_devidp/authorize">' in page
    for user in DEMO_USERS:
        assert f'name="user" value="{user.sub}"' in page
        assert user.name in page and user.department in page
        assert ", ".join(user.groups) in page
    for name, value in idp.params().items():
        assert f'<input type="hidden" name="{name}" value="{value}">' in page
    assert "<script" not in page
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self' http://testserver" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_code_flow_with_pkce(idp: Idp, auth: str) -> None:
    resp = idp.http.post("/_devidp/authorize", data={**idp.params(), "user": USER.sub})
    assert resp.status_code == 302
    location = resp.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = query_of(resp)
    assert query["state"] == [idp.state] and query["iss"] == [ISSUER]

    resp = idp.exchange(query["code"][0], auth=auth)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["access_token"] and body["scope"] == "openid profile email"

    token = idp.verify(body["id_token"])
    assert token.header["alg"] == "RS256" and token.header["kid"]
    claims = token.claims
    assert claims["iss"] == ISSUER and claims["aud"] == PORTAL.client_id
    assert claims["sub"] == USER.sub and claims["nonce"] == idp.nonce
    assert claims["groups"] == ["staff", "clinicians"]
    assert claims["department"] == "medical"
    assert claims["preferred_username"] == USER.upn and claims["email"] == USER.email
    assert claims["exp"] - claims["iat"] == 3600 and claims["auth_time"] <= claims["iat"]
    assert claims["sid"]


def test_each_sign_in_gets_its_own_session_id(idp: Idp) -> None:
    first = idp.verify(idp.tokens()["id_token"]).claims["sid"]
    second = idp.verify(idp.tokens()["id_token"]).claims["sid"]
    assert first != second


def test_wrong_pkce_verifier_is_refused(idp: Idp) -> None:
    resp = idp.exchange(idp.login(), verifier=secrets.token_urlsafe(48))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


def test_code_is_single_use_and_a_replay_revokes_its_token(idp: Idp) -> None:
    code = idp.login()
    first = idp.exchange(code)
    assert first.status_code == 200
    access = {"authorization": f"Bearer {first.json()['access_token']}"}
    assert idp.http.get("/_devidp/userinfo", headers=access).status_code == 200

    again = idp.exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert idp.http.get("/_devidp/userinfo", headers=access).status_code == 401


def test_code_expires_after_a_minute(idp: Idp) -> None:
    code = idp.login()
    provider = idp.app.state.devidp
    later = provider.clock() + 61
    provider.clock = lambda: later
    resp = idp.exchange(code)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"redirect_uri": REDIRECT + "?x=1"}, "invalid_grant", id="redirect_uri"),
        pytest.param({"code_verifier": None}, "invalid_request", id="verifier missing"),
        pytest.param({"grant_type": "password"}, "unsupported_grant_type", id="grant_type"),
    ],
)
def test_token_request_must_match_the_authorization(
    idp: Idp, change: dict[str, str | None], error: str
) -> None:
    data = {
        "grant_type": "authorization_code",
        "code": idp.login(),
        "redirect_uri": REDIRECT,
        "code_verifier": idp.verifier,
        **change,
    }
    data = {k: v for k, v in data.items() if v is not None}
    resp = idp.http.post("/_devidp/token", data=data, auth=(PORTAL.client_id, PORTAL.client_secret))
    assert resp.status_code == 400 and resp.json()["error"] == error


def test_code_is_bound_to_its_client(idp: Idp) -> None:
    resp = idp.exchange(idp.login(), client=OTHER)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("auth", ["basic", "post"])
@pytest.mark.parametrize("secret", ["wrong", "", PORTAL.client_secret + "x"])
def test_wrong_client_secret_is_refused(idp: Idp, auth: str, secret: str) -> None:
    code = idp.login()
    resp = idp.exchange(code, auth=auth, secret=secret)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert resp.headers["www-authenticate"].startswith("Basic")
    # an unauthenticated caller cannot use up (or learn anything about) the code
    assert idp.exchange(code).status_code == 200


def test_client_must_authenticate(idp: Idp) -> None:
    data = {"grant_type": "authorization_code", "code": idp.login(), "client_id": "launcher"}
    resp = idp.http.post("/_devidp/token", data=data)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "override",
    [
        pytest.param({"redirect_uri": "http://evil.example/cb"}, id="foreign redirect_uri"),
        pytest.param({"redirect_uri": REDIRECT + "/"}, id="near-miss redirect_uri"),
        pytest.param({"redirect_uri": None}, id="redirect_uri missing"),
        pytest.param({"client_id": "nobody"}, id="unknown client"),
        pytest.param({"redirect_uri": OTHER.redirect_uris[0]}, id="another client's uri"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_client_or_redirect_uri_shows_a_page_and_never_redirects(
    idp: Idp, override: dict[str, str | None], method: str
) -> None:
    params = idp.params(**override)
    if method == "GET":
        resp = idp.http.get("/_devidp/authorize", params=params)
    else:
        resp = idp.http.post("/_devidp/authorize", data={**params, "user": USER.sub})
    assert resp.status_code == 400
    assert "location" not in resp.headers
    assert resp.headers["content-type"].startswith("text/html")
    assert "not registered" in resp.text


@pytest.mark.parametrize(
    ("override", "error"),
    [
        pytest.param({"code_challenge": None}, "invalid_request", id="no PKCE"),
        pytest.param({"code_challenge_method": "plain"}, "invalid_request", id="PKCE plain"),
        pytest.param({"code_challenge": "short"}, "invalid_request", id="bad challenge"),
        pytest.param({"nonce": None}, "invalid_request", id="nonce missing"),
        pytest.param({"scope": "profile email"}, "invalid_scope", id="no openid scope"),
        pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit"),
        pytest.param({"prompt": "none"}, "login_required", id="prompt none"),
    ],
)
def test_invalid_authorization_requests_go_back_with_an_error(
    idp: Idp, override: dict[str, str | None], error: str
) -> None:
    resp = idp.http.get("/_devidp/authorize", params=idp.params(**override))
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(REDIRECT + "?")
    query = query_of(resp)
    assert query["error"] == [error]
    assert query["state"] == [idp.state] and query["iss"] == [ISSUER]
    assert "code" not in query


def test_state_is_required(idp: Idp) -> None:
    resp = idp.http.get("/_devidp/authorize", params=idp.params(state=None))
    assert resp.status_code == 302
    assert query_of(resp)["error"] == ["invalid_request"]


def test_unknown_user_and_cancel(idp: Idp) -> None:
    resp = idp.http.post("/_devidp/authorize", data={**idp.params(), "user": "nobody"})
    assert resp.status_code == 400 and "location" not in resp.headers
    resp = idp.http.post("/_devidp/authorize", data={**idp.params(), "cancel": "1"})
    assert resp.status_code == 302 and query_of(resp)["error"] == ["access_denied"]


def test_userinfo(idp: Idp) -> None:
    access = idp.tokens()["access_token"]
    for method in ("GET", "POST"):
        resp = idp.http.request(
            method, "/_devidp/userinfo", headers={"authorization": f"Bearer {access}"}
        )
        assert resp.status_code == 200
        assert resp.json() == {
            "sub": USER.sub,
            "name": USER.name,
            "email": USER.email,
            "email_verified": True,
            "preferred_username": USER.upn,
            "upn": USER.upn,
            "department": USER.department,
            "groups": list(USER.groups),
        }


@pytest.mark.parametrize(
    "authorization", ["Bearer not-a-token", "Bearer ", "Basic bGF1bmNoZXI6eA==", None]
)
def test_userinfo_refuses_a_bad_token(idp: Idp, authorization: str | None) -> None:
    idp.tokens()  # a valid token exists, just not this one
    headers = {"authorization": authorization} if authorization else {}
    resp = idp.http.get("/_devidp/userinfo", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert "sub" not in resp.json()


def test_access_token_expires(idp: Idp) -> None:
    access = idp.tokens()["access_token"]
    provider = idp.app.state.devidp
    later = provider.clock() + 3601
    provider.clock = lambda: later
    resp = idp.http.get("/_devidp/userinfo", headers={"authorization": f"Bearer {access}"})
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_end_session_redirects_only_to_registered_uris(idp: Idp) -> None:
    ok = {"client_id": PORTAL.client_id, "post_logout_redirect_uri": AFTER_LOGOUT}
    resp = idp.http.get("/_devidp/end-session", params={**ok, "state": "s1"})
    assert resp.status_code == 302 and resp.headers["location"] == AFTER_LOGOUT + "?state=s1"

    for params in [
        {**ok, "post_logout_redirect_uri": "http://evil.example/"},
        {**ok, "post_logout_redirect_uri": REDIRECT},  # a login redirect_uri is not enough
        {**ok, "client_id": OTHER.client_id},
        {"post_logout_redirect_uri": AFTER_LOGOUT},  # no client named
        {**ok, "id_token_hint": "not-a-jwt"},
    ]:
        resp = idp.http.get("/_devidp/end-session", params=params)
        assert resp.status_code == 200, params
        assert "location" not in resp.headers
        assert "You are signed out" in resp.text
        assert "evil.example" not in resp.text


def test_end_session_with_id_token_hint_ends_that_sign_in(idp: Idp) -> None:
    tokens = idp.tokens()
    params = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT}
    resp = idp.http.get("/_devidp/end-session", params=params)
    assert resp.status_code == 302 and resp.headers["location"] == AFTER_LOGOUT
    access = {"authorization": f"Bearer {tokens['access_token']}"}
    assert idp.http.get("/_devidp/userinfo", headers=access).status_code == 401

    mismatch = {**params, "client_id": OTHER.client_id}
    assert idp.http.get("/_devidp/end-session", params=mismatch).status_code == 200


def test_rotate_key_publishes_both_and_signs_with_the_new_one(idp: Idp) -> None:
    old_token = idp.tokens()["id_token"]
    old_kid = idp.verify(old_token).header["kid"]
    new_kid = idp.app.state.devidp.rotate_key()
    assert new_kid != old_kid

    kids = {k["kid"] for k in idp.http.get("/_devidp/jwks").json()["keys"]}
    assert kids == {old_kid, new_kid}
    new_token = idp.tokens()["id_token"]
    assert idp.verify(new_token).header["kid"] == new_kid
    assert idp.verify(old_token).claims["sub"] == USER.sub  # still verifiable


def test_key_file_is_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "devidp-key.json"
    first = Idp(key_file=key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "d" in json.loads(key_file.read_text())  # the private key, so restarts can sign
    kid = first.http.get("/_devidp/jwks").json()["keys"][0]["kid"]
    assert Idp(key_file=key_file).http.get("/_devidp/jwks").json()["keys"][0]["kid"] == kid

    new_kid = first.app.state.devidp.rotate_key()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    restarted = Idp(key_file=key_file)
    assert restarted.verify(restarted.tokens()["id_token"]).header["kid"] == new_kid


def test_corrupt_key_file_fails_loudly(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text("{}")
    with pytest.raises(ValueError, match=str(key_file)):
        create_devidp(ISSUER, [PORTAL], key_file=key_file)


def test_everything_on_the_page_is_escaped() -> None:
    evil = DemoUser(
        sub='x"><b>sub',
        name="<script>x</script>",
        email="e@zorggroep-noord.example",
        department="<i>it</i>",
        groups=("<u>staff</u>",),
        upn="e@zorggroep-noord.example",
    )
    helper = Idp(users=[evil])
    state = '"><script>alert(1)</script>'
    resp = helper.http.get("/_devidp/authorize", params=helper.params(state=state))
    assert resp.status_code == 200
    page = resp.text
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "&lt;i&gt;it&lt;/i&gt;" in page and "&lt;u&gt;staff&lt;/u&gt;" in page
    assert 'value="x&quot;&gt;&lt;b&gt;sub"' in page
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert "<script" not in page and "<b>" not in page and "<i>" not in page

    helper.state = state  # the escaped values round-trip through the form intact
    assert helper.login(evil, state=state)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"sec-fetch-site": "cross-site"}, id="cross-site"),
        pytest.param({"sec-fetch-site": "same-site"}, id="same-site"),
        pytest.param({"origin": "http://evil.example"}, id="foreign origin"),
        pytest.param({"origin": "null"}, id="null origin"),
        pytest.param({"sec-fetch-site": "same-origin", "origin": "http://evil.example"}, id="mix"),
    ],
)
def test_cross_site_post_to_authorize_is_refused(idp: Idp, headers: dict[str, str]) -> None:
    data = {**idp.params(), "user": USER.sub}
    resp = idp.http.post("/_devidp/authorize", data=data, headers=headers)
    assert resp.status_code == 403
    assert "location" not in resp.headers
    assert idp.app.state.devidp.codes == {}


def test_same_origin_post_is_accepted(idp: Idp) -> None:
    headers = {"sec-fetch-site": "same-origin", "origin": "http://testserver"}
    data = {**idp.params(), "user": USER.sub}
    resp = idp.http.post("/_devidp/authorize", data=data, headers=headers)
    assert resp.status_code == 302 and "code" in query_of(resp)


@pytest.mark.parametrize(
    "issuer", ["http://testserver/_devidp/", "ftp://x/y", "/_devidp", "http://x/?a=1"]
)
def test_bad_issuer_fails_loudly(issuer: str) -> None:
    with pytest.raises(ValueError, match="issuer"):
        create_devidp(issuer, [PORTAL])

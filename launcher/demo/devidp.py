"""The built-in development OpenID Provider, for ``launcher demo`` and the test-suite only.

It is a real OpenID Provider over HTTP (discovery, JWKS, the authorization code flow with
mandatory PKCE S256, ``client_secret_basic``/``client_secret_post``, userinfo, RP-initiated
logout), so the portal's OIDC client is exercised on the wire just as against a production
provider. It is not hardened for anything else. It runs only in demo mode and on loopback:
the *portal* enforces that when it mounts this app; this module does not check who connects.

Choices worth knowing:

- Single process by design. Authorization codes and access tokens live in memory in the app
  instance; a restart forgets them, and several workers would not share them.
- No SSO session. Every authorization request shows the "Sign in as…" picker, so switching
  demo users needs no logout; ``prompt=none`` therefore always answers ``login_required``.
  End-session has no session to end; with a valid ``id_token_hint`` it revokes that sign-in's
  access tokens.
- The RS256 signing key is kept in ``key_file`` (a private JWK, mode 0600) so that a demo
  restart does not invalidate the portal's cached JWKS. ``rotate_key()`` adds a key and keeps
  publishing the old public keys, as real providers do while rotating.
- Every URL is derived from ``issuer``, so the app can be mounted under any prefix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from launcher.auth.csrf import cross_origin_reason

CODE_TTL = 60  # seconds an authorization code stays redeemable
TOKEN_TTL = 60 * 60  # access tokens and ID tokens: 1 hour
_PKCE = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 4.1: verifier (and S256 challenge)
_AUTH_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
)
_SCOPES = ("openid", "profile", "email")
_CLAIMS = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "name", "email",
    "email_verified", "preferred_username", "upn", "department", "groups",
)  # fmt: skip
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "ul{list-style:none;padding:0}li{margin:.5rem 0}"
    "button[name=user]{display:block;width:100%;text-align:left;padding:.6rem 1rem;"
    "font:inherit;cursor:pointer}button span{display:block;color:#555;font-size:.9em}"
)


@dataclass(frozen=True)
class DemoUser:
    sub: str
    name: str
    email: str
    department: str
    groups: tuple[str, ...]
    upn: str


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser(
        sub="demo-anouk",
        name="Anouk de Vries",
        email="anouk.devries@zorggroep-noord.example",
        department="nursing",
        groups=("staff",),
        upn="adevries@zorggroep-noord.example",
    ),
    DemoUser(
        sub="demo-bram",
        name="Bram Jansen",
        email="bram.jansen@zorggroep-noord.example",
        department="medical",
        groups=("staff", "clinicians"),
        upn="bjansen@zorggroep-noord.example",
    ),
    DemoUser(
        sub="demo-fatima",
        name="Fatima El Amrani",
        email="fatima.elamrani@zorggroep-noord.example",
        department="support-office",
        groups=("staff", "launcher-reviewers"),
        upn="felamrani@zorggroep-noord.example",
    ),
    DemoUser(
        sub="demo-joris",
        name="Joris van den Berg",
        email="joris.vandenberg@zorggroep-noord.example",
        department="it",
        groups=("staff", "launcher-admins"),
        upn="jvandenberg@zorggroep-noord.example",
    ),
)


@dataclass(frozen=True)
class DevClient:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class _AuthRequest:
    client: DevClient
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str

    def fields(self) -> dict[str, str]:
        """The request as the hidden fields of the picker form."""
        return {
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }


@dataclass
class _Grant:
    request: _AuthRequest
    user: DemoUser
    sid: str
    auth_time: int
    expires_at: float
    redeemed: bool = False
    access_token: str | None = None  # revoked if the code is replayed (RFC 6749 4.1.2)


@dataclass(frozen=True)
class _Token:
    user: DemoUser
    sid: str
    expires_at: float


class _BadClient(Exception):
    """Unknown client or redirect_uri: answered with a page, never a redirect (RFC 6749 4.1.2.1)."""


class _RedirectError(Exception):
    """An authorization error that is safe to send back to the (validated) redirect_uri."""

    def __init__(self, redirect_uri: str, state: str, error: str, description: str) -> None:
        super().__init__(error)
        self.redirect_uri, self.state = redirect_uri, state
        self.error, self.description = error, description


class _OAuthError(Exception):
    """A token endpoint error, answered as RFC 6749 5.2 JSON."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error)
        self.error, self.description, self.status = error, description, status

    def response(self) -> JSONResponse:
        headers = dict(_NO_STORE)
        if self.status == 401:
            headers["www-authenticate"] = 'Basic realm="devidp"'
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, self.status, headers=headers)


def create_devidp(
    issuer: str,
    clients: Sequence[DevClient],
    users: Sequence[DemoUser] = DEMO_USERS,
    key_file: Path | None = None,
) -> Starlette:
    """The development OpenID Provider as an ASGI app, to be mounted at ``issuer``'s path.

    ``app.state.devidp`` is the provider; tests call its ``rotate_key()``.
    """
    provider = _Provider(issuer, clients, users, key_file)
    routes = [
        Route("/.well-known/openid-configuration", provider.discovery, methods=["GET"]),
        Route("/jwks", provider.jwks, methods=["GET"]),
        Route("/authorize", provider.authorize_page, methods=["GET"]),
        Route("/authorize", provider.authorize_submit, methods=["POST"]),
        Route("/token", provider.token, methods=["POST"]),
        Route("/userinfo", provider.userinfo, methods=["GET", "POST"]),
        Route("/end-session", provider.end_session, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.devidp = provider
    return app


class _Provider:
    def __init__(
        self,
        issuer: str,
        clients: Sequence[DevClient],
        users: Sequence[DemoUser],
        key_file: Path | None,
    ) -> None:
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(f"devidp issuer must be an http(s) URL without a query: {issuer!r}")
        if issuer.endswith("/") or parts.fragment:
            raise ValueError(f"devidp issuer must not end with '/' or '#': {issuer!r}")
        self.issuer = issuer
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.clients = {c.client_id: c for c in clients}
        self.users = {u.sub: u for u in users}
        if len(self.clients) != len(clients) or len(self.users) != len(users) or not users:
            raise ValueError("devidp needs users, and unique client ids and user subs")
        for client in clients:
            if not client.client_id or not client.client_secret or not client.redirect_uris:
                raise ValueError(f"devidp client {client.client_id!r} needs a secret and URIs")
        self.key_file = key_file
        key = _load_key(key_file) if key_file is not None else None
        if key is None:
            key = _new_key()
            if key_file is not None:
                _save_key(key_file, key)
        self.keys = [key]  # newest first; keys[0] signs
        self.codes: dict[str, _Grant] = {}
        self.tokens: dict[str, _Token] = {}
        self.clock: Callable[[], float] = time.time  # tests may replace it

    def rotate_key(self) -> str:
        """Sign with a new key from now on; keep publishing the old ones. Returns the new kid."""
        key = _new_key()
        self.keys.insert(0, key)
        if self.key_file is not None:
            _save_key(self.key_file, key)
        return str(key.kid)

    # --- metadata -----------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        url = self.issuer
        return JSONResponse(
            {
                "issuer": url,
                "authorization_endpoint": f"{url}/authorize",
                "token_endpoint": f"{url}/token",
                "userinfo_endpoint": f"{url}/userinfo",
                "jwks_uri": f"{url}/jwks",
                "end_session_endpoint": f"{url}/end-session",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": list(_SCOPES),
                "claims_supported": list(_CLAIMS),
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": True,  # RFC 9207
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(dict(KeySet(list(self.keys)).as_dict(private=False)))

    # --- authorization ------------------------------------------------------------------
    async def authorize_page(self, request: Request) -> Response:
        values, bad = _params(request.query_params.multi_items())
        try:
            auth = self._parse_authorization(values, bad)
            if "none" in values.get("prompt", "").split():
                raise _RedirectError(
                    auth.redirect_uri, auth.state, "login_required", "no sign-in session is kept"
                )
        except _BadClient as exc:
            return _page("Sign-in request refused", f"<p>{escape(str(exc))}</p>", 400)
        except _RedirectError as exc:
            return self._error_redirect(exc)
        return self._picker(auth)

    async def authorize_submit(self, request: Request) -> Response:
        reason = cross_origin_reason(request.headers, self.origin)
        if reason is not None:
            body = "<p>This sign-in was submitted from another site and was refused.</p>"
            return _page("Sign-in request refused", body, 403)
        async with request.form() as form:
            values, bad = _params(form.multi_items())
        try:
            auth = self._parse_authorization(values, bad)
            if "cancel" in values:
                raise _RedirectError(auth.redirect_uri, auth.state, "access_denied", "cancelled")
        except _BadClient as exc:
            return _page("Sign-in request refused", f"<p>{escape(str(exc))}</p>", 400)
        except _RedirectError as exc:
            return self._error_redirect(exc)
        user = self.users.get(values.get("user", ""))
        if user is None or "user" in bad:
            return _page("Sign-in request refused", "<p>Choose one of the demo users.</p>", 400)
        code = self._issue_code(auth, user)
        return _redirect(auth.redirect_uri, {"code": code, "state": auth.state, "iss": self.issuer})

    def _parse_authorization(self, values: Mapping[str, str], bad: set[str]) -> _AuthRequest:
        client = self.clients.get(values.get("client_id", ""))
        if client is None or "client_id" in bad:
            raise _BadClient("The application that sent you here (client_id) is not registered.")
        redirect_uri = values.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris or "redirect_uri" in bad:
            raise _BadClient(
                "The return address (redirect_uri) is not registered for this application."
            )
        state = "" if "state" in bad else values.get("state", "")

        def fail(error: str, description: str) -> _RedirectError:
            return _RedirectError(redirect_uri, state, error, description)

        repeated = sorted(bad.intersection(_AUTH_PARAMS))
        if repeated:
            raise fail("invalid_request", f"parameter {repeated[0]} was sent more than once")
        if values.get("response_type") != "code":
            raise fail("unsupported_response_type", "only response_type=code is supported")
        scopes = values.get("scope", "").split()
        if "openid" not in scopes:
            raise fail("invalid_scope", "scope must include openid")
        if not state:
            raise fail("invalid_request", "state is required")
        nonce = values.get("nonce", "")
        if not nonce:
            raise fail("invalid_request", "nonce is required")
        challenge = values.get("code_challenge", "")
        if values.get("code_challenge_method") != "S256" or not _PKCE.fullmatch(challenge):
            raise fail("invalid_request", "PKCE is required: code_challenge with method S256")
        granted = " ".join(s for s in _SCOPES if s in scopes)  # unknown scopes are ignored
        return _AuthRequest(client, redirect_uri, granted, state, nonce, challenge)

    def _issue_code(self, auth: _AuthRequest, user: DemoUser) -> str:
        now = self.clock()
        self._prune(now)
        code = secrets.token_urlsafe(32)
        sid = secrets.token_urlsafe(16)  # a new session id per sign-in
        self.codes[code] = _Grant(auth, user, sid, int(now), now + CODE_TTL)
        return code

    def _error_redirect(self, exc: _RedirectError) -> Response:
        params = {"error": exc.error, "error_description": exc.description}
        if exc.state:
            params["state"] = exc.state
        params["iss"] = self.issuer
        return _redirect(exc.redirect_uri, params)

    def _picker(self, auth: _AuthRequest) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in auth.fields().items()
        )
        buttons = "".join(
            f'<li><button type="submit" name="user" value="{escape(u.sub)}">'
            f"<strong>{escape(u.name)}</strong>"
            f"<span>Department: {escape(u.department)}</span>"
            f"<span>Groups: {escape(', '.join(u.groups))}</span></button></li>"
            for u in self.users.values()
        )
        body = (
            "<p>Development identity provider, for demos and tests only. Choose who you are "
            f"when signing in to <strong>{escape(auth.client.client_id)}</strong>.</p>"
            f'<form method="post" action="{escape(self.issuer)}/authorize">{hidden}'
            f'<ul>{buttons}</ul><button type="submit" name="cancel" value="1">Cancel</button>'
            "</form>"
        )
        # form-action also governs the redirect that follows the POST (browsers enforce it
        # there), so the application's origin must be allowed too.
        return _page("Sign in as…", body, form_action=f"'self' {_origin(auth.redirect_uri)}")

    # --- tokens -------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        async with request.form() as form:
            values, bad = _params(form.multi_items())
        try:
            if bad:
                raise _OAuthError("invalid_request", f"parameter {sorted(bad)[0]} is repeated")
            client = self._authenticate(request.headers.get("authorization"), values)
            body = self._exchange(client, values)
        except _OAuthError as exc:
            return exc.response()
        return JSONResponse(body, headers=_NO_STORE)

    def _authenticate(self, authorization: str | None, values: Mapping[str, str]) -> DevClient:
        basic = _basic_credentials(authorization)
        if basic is not None and "client_secret" in values:
            raise _OAuthError("invalid_request", "use one client authentication method, not two")
        if basic is not None:
            # RFC 6749 2.3.1 form-urlencodes both halves before base64, but many clients
            # (Authlib among them) do not: accept either reading.
            candidates = [basic, (unquote_plus(basic[0]), unquote_plus(basic[1]))]
        elif "client_secret" in values:
            candidates = [(values.get("client_id", ""), values["client_secret"])]
        else:
            raise _OAuthError("invalid_client", "client authentication is required", 401)
        for client_id, secret in candidates:
            client = self.clients.get(client_id)
            expected = client.client_secret if client is not None else ""
            if hmac.compare_digest(secret.encode(), expected.encode()) and client is not None:
                if values.get("client_id", client_id) != client_id:
                    raise _OAuthError("invalid_client", "client_id differs from credentials", 401)
                return client
        raise _OAuthError("invalid_client", "client authentication failed", 401)

    def _exchange(self, client: DevClient, values: Mapping[str, str]) -> dict[str, Any]:
        if values.get("grant_type") != "authorization_code":
            raise _OAuthError("unsupported_grant_type", "only authorization_code is supported")
        now = self.clock()
        grant = self.codes.get(values.get("code", ""))
        if grant is None or grant.expires_at < now:
            raise _OAuthError("invalid_grant", "unknown or expired authorization code")
        if grant.redeemed:
            if grant.access_token is not None:
                self.tokens.pop(grant.access_token, None)
            raise _OAuthError("invalid_grant", "authorization code was already used")
        grant.redeemed = True  # any presentation uses the code up, successful or not
        auth = grant.request
        if auth.client.client_id != client.client_id:
            raise _OAuthError("invalid_grant", "authorization code was issued to another client")
        if values.get("redirect_uri") != auth.redirect_uri:
            raise _OAuthError(
                "invalid_grant", "redirect_uri differs from the authorization request"
            )
        verifier = values.get("code_verifier", "")
        if not _PKCE.fullmatch(verifier):
            raise _OAuthError("invalid_request", "code_verifier is missing or malformed")
        if not hmac.compare_digest(_s256(verifier), auth.code_challenge):
            raise _OAuthError("invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(32)
        grant.access_token = access_token
        self.tokens[access_token] = _Token(grant.user, grant.sid, now + TOKEN_TTL)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL,
            "id_token": self._id_token(grant, int(now)),
            "scope": auth.scope,
        }

    def _id_token(self, grant: _Grant, now: int) -> str:
        user, key = grant.user, self.keys[0]
        claims = {
            "iss": self.issuer,
            "sub": user.sub,
            "aud": grant.request.client.client_id,
            "exp": now + TOKEN_TTL,
            "iat": now,
            "auth_time": grant.auth_time,
            "nonce": grant.request.nonce,
            "sid": grant.sid,
            **_profile(user),
        }
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])

    async def userinfo(self, request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            # RFC 6750 3.1: a request without credentials gets no error code
            return _bearer_error('Bearer realm="devidp"', "invalid_request", "no access token")
        token = self.tokens.get(value.strip())
        if token is None or token.expires_at < self.clock():
            challenge = 'Bearer realm="devidp", error="invalid_token"'
            return _bearer_error(challenge, "invalid_token", "unknown or expired access token")
        user = token.user
        return JSONResponse({"sub": user.sub, **_profile(user), "upn": user.upn}, headers=_NO_STORE)

    # --- logout -------------------------------------------------------------------------
    async def end_session(self, request: Request) -> Response:
        values, bad = _params(request.query_params.multi_items())
        client_id = values.get("client_id")
        trusted = not bad  # never redirect on an ambiguous request
        hint = values.get("id_token_hint")
        if hint:
            claims = self._own_claims(hint)
            aud = claims.get("aud") if claims is not None else None
            if claims is None or not isinstance(aud, str) or client_id not in (None, aud):
                trusted = False
            else:
                client_id = aud
                sid = claims.get("sid")
                for token in [t for t, rec in self.tokens.items() if rec.sid == sid]:
                    del self.tokens[token]
        client = self.clients.get(client_id or "")
        target = values.get("post_logout_redirect_uri", "")
        if trusted and client is not None and target in client.post_logout_redirect_uris:
            state = values.get("state")
            return _redirect(target, {"state": state} if state else {})
        return _page("You are signed out", "<p>You can close this tab.</p>")

    def _own_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of an ID token we signed (expired ones too), or None."""
        try:
            claims = jwt.decode(token, KeySet(list(self.keys)), algorithms=["RS256"]).claims
        except (JoseError, ValueError):
            return None
        return dict(claims) if claims.get("iss") == self.issuer else None

    def _prune(self, now: float) -> None:
        self.codes = {c: g for c, g in self.codes.items() if g.expires_at >= now}
        self.tokens = {t: rec for t, rec in self.tokens.items() if rec.expires_at >= now}


# --- helpers ----------------------------------------------------------------------------
def _s256(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier`` (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _params(items: Iterable[tuple[str, Any]]) -> tuple[dict[str, str], set[str]]:
    """First value of each parameter, and the names sent twice or not as text."""
    values: dict[str, str] = {}
    bad: set[str] = set()
    for name, value in items:
        if name in values or not isinstance(value, str):
            bad.add(name)
        else:
            values[name] = value
    return values, bad


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _OAuthError("invalid_client", f"unsupported authorization scheme {scheme!r}", 401)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError both are
        raise _OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise _OAuthError("invalid_client", "malformed Basic credentials", 401)
    return client_id, secret


def _profile(user: DemoUser) -> dict[str, Any]:
    return {
        "name": user.name,
        "email": user.email,
        "email_verified": True,
        "preferred_username": user.upn,
        "department": user.department,
        "groups": list(user.groups),
    }


def _bearer_error(challenge: str, error: str, description: str) -> Response:
    body = {"error": error, "error_description": description}
    headers = {**_NO_STORE, "www-authenticate": challenge}
    return JSONResponse(body, 401, headers=headers)


def _redirect(url: str, params: Mapping[str, str]) -> Response:
    if params:
        url += ("&" if urlsplit(url).query else "?") + urlencode(params, quote_via=quote)
    return RedirectResponse(url, 302, headers=_NO_STORE)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"


def _page(
    title: str, body: str, status_code: int = 200, *, form_action: str = "'none'"
) -> HTMLResponse:
    """An HTML page. ``body`` is markup: callers escape every value they put into it."""
    csp = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · development sign-in</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    headers = {
        **_NO_STORE,
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
        # not no-referrer: with it, browsers send "Origin: null" on the picker's POST,
        # which the cross-site guard would refuse
        "referrer-policy": "same-origin",
    }
    return HTMLResponse(html, status_code, headers=headers)


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)


def _load_key(path: Path) -> RSAKey | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        key = RSAKey.import_key(json.loads(text))
    except (ValueError, TypeError, JoseError) as exc:
        raise ValueError(f"devidp key file {path} is not an RSA JWK: {exc}") from None
    if not key.is_private:
        raise ValueError(f"devidp key file {path} holds no private key")
    key.ensure_kid()
    return key


def _save_key(path: Path, key: RSAKey) -> None:
    """Write the private JWK atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # O_EXCL below: a leftover file would keep its old mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(key.as_dict(private=True), fh)
    os.replace(tmp, path)

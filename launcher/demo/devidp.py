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

import hmac
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from launcher.auth.csrf import cross_origin_reason
from launcher.demo import authorization, pages
from launcher.demo.authorization import SCOPES, AuthRequest, BadClient, DevClient, RedirectError
from launcher.demo.keys import load_key, new_key, save_key
from launcher.demo.oauth import (
    NO_STORE,
    PKCE,
    OAuthError,
    basic_credentials,
    bearer_error,
    params,
    redirect,
    s256,
)
from launcher.demo.users import DEMO_USERS, DemoUser

__all__ = ["DEMO_USERS", "DemoUser", "DevClient", "create_devidp"]

CODE_TTL = 60  # seconds an authorization code stays redeemable
TOKEN_TTL = 60 * 60  # access tokens and ID tokens: 1 hour
_CLAIMS = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "name", "email",
    "email_verified", "preferred_username", "upn", "department", "groups",
)  # fmt: skip


@dataclass
class _Grant:
    request: AuthRequest
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
        key = load_key(key_file) if key_file is not None else None
        if key is None:
            key = new_key()
            if key_file is not None:
                save_key(key_file, key)
        self.keys = [key]  # newest first; keys[0] signs
        self.codes: dict[str, _Grant] = {}
        self.tokens: dict[str, _Token] = {}
        self.clock: Callable[[], float] = time.time  # tests may replace it

    def rotate_key(self) -> str:
        """Sign with a new key from now on; keep publishing the old ones. Returns the new kid."""
        key = new_key()
        self.keys.insert(0, key)
        if self.key_file is not None:
            save_key(self.key_file, key)
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
                "scopes_supported": list(SCOPES),
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
        values, bad = params(request.query_params.multi_items())
        try:
            auth = authorization.parse(self.clients, values, bad)
            if "none" in values.get("prompt", "").split():
                raise RedirectError(
                    auth.redirect_uri, auth.state, "login_required", "no sign-in session is kept"
                )
        except BadClient as exc:
            return pages.refused(str(exc))
        except RedirectError as exc:
            return self._error_redirect(exc)
        return self._picker(auth)

    async def authorize_submit(self, request: Request) -> Response:
        reason = cross_origin_reason(request.headers, self.origin)
        if reason is not None:
            return pages.refused(
                "This sign-in was submitted from another site and was refused.", 403
            )
        async with request.form() as form:
            values, bad = params(form.multi_items())
        try:
            auth = authorization.parse(self.clients, values, bad)
            if "cancel" in values:
                raise RedirectError(auth.redirect_uri, auth.state, "access_denied", "cancelled")
        except BadClient as exc:
            return pages.refused(str(exc))
        except RedirectError as exc:
            return self._error_redirect(exc)
        user = self.users.get(values.get("user", ""))
        if user is None or "user" in bad:
            return pages.refused("Choose one of the demo users.")
        code = self._issue_code(auth, user)
        return redirect(auth.redirect_uri, {"code": code, "state": auth.state, "iss": self.issuer})

    def _issue_code(self, auth: AuthRequest, user: DemoUser) -> str:
        now = self.clock()
        self._prune(now)
        code = secrets.token_urlsafe(32)
        sid = secrets.token_urlsafe(16)  # a new session id per sign-in
        self.codes[code] = _Grant(auth, user, sid, int(now), now + CODE_TTL)
        return code

    def _error_redirect(self, exc: RedirectError) -> Response:
        query = {"error": exc.error, "error_description": exc.description}
        if exc.state:
            query["state"] = exc.state
        query["iss"] = self.issuer
        return redirect(exc.redirect_uri, query)

    def _picker(self, auth: AuthRequest) -> Response:
        client_id, fields = auth.client.client_id, auth.fields()
        return pages.picker(self.issuer, client_id, auth.redirect_uri, fields, self.users.values())

    # --- tokens -------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        async with request.form() as form:
            values, bad = params(form.multi_items())
        try:
            if bad:
                raise OAuthError("invalid_request", f"parameter {sorted(bad)[0]} is repeated")
            client = self._authenticate(request.headers.get("authorization"), values)
            body = self._exchange(client, values)
        except OAuthError as exc:
            return exc.response()
        return JSONResponse(body, headers=NO_STORE)

    def _authenticate(self, authorization: str | None, values: Mapping[str, str]) -> DevClient:
        basic = basic_credentials(authorization)
        if basic is not None and "client_secret" in values:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        if basic is not None:
            # RFC 6749 2.3.1 form-urlencodes both halves before base64, but many clients
            # (Authlib among them) do not: accept either reading.
            candidates = [basic, (unquote_plus(basic[0]), unquote_plus(basic[1]))]
        elif "client_secret" in values:
            candidates = [(values.get("client_id", ""), values["client_secret"])]
        else:
            raise OAuthError("invalid_client", "client authentication is required", 401)
        for client_id, secret in candidates:
            client = self.clients.get(client_id)
            expected = client.client_secret if client is not None else ""
            if hmac.compare_digest(secret.encode(), expected.encode()) and client is not None:
                if values.get("client_id", client_id) != client_id:
                    raise OAuthError("invalid_client", "client_id differs from credentials", 401)
                return client
        raise OAuthError("invalid_client", "client authentication failed", 401)

    def _exchange(self, client: DevClient, values: Mapping[str, str]) -> dict[str, Any]:
        if values.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
        now = self.clock()
        grant = self.codes.get(values.get("code", ""))
        if grant is None or grant.expires_at < now:
            raise OAuthError("invalid_grant", "unknown or expired authorization code")
        if grant.redeemed:
            if grant.access_token is not None:
                self.tokens.pop(grant.access_token, None)
            raise OAuthError("invalid_grant", "authorization code was already used")
        grant.redeemed = True  # any presentation uses the code up, successful or not
        auth = grant.request
        if auth.client.client_id != client.client_id:
            raise OAuthError("invalid_grant", "authorization code was issued to another client")
        if values.get("redirect_uri") != auth.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = values.get("code_verifier", "")
        if not PKCE.fullmatch(verifier):
            raise OAuthError("invalid_request", "code_verifier is missing or malformed")
        if not hmac.compare_digest(s256(verifier), auth.code_challenge):
            raise OAuthError("invalid_grant", "PKCE verification failed")
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
            **user.profile(),
        }
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])

    async def userinfo(self, request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            # RFC 6750 3.1: a request without credentials gets no error code
            return bearer_error('Bearer realm="devidp"', "invalid_request", "no access token")
        token = self.tokens.get(value.strip())
        if token is None or token.expires_at < self.clock():
            challenge = 'Bearer realm="devidp", error="invalid_token"'
            return bearer_error(challenge, "invalid_token", "unknown or expired access token")
        user = token.user
        return JSONResponse({"sub": user.sub, **user.profile(), "upn": user.upn}, headers=NO_STORE)

    # --- logout -------------------------------------------------------------------------
    async def end_session(self, request: Request) -> Response:
        values, bad = params(request.query_params.multi_items())
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
            return redirect(target, {"state": state} if state else {})
        return pages.page("You are signed out", "<p>You can close this tab.</p>")

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

"""A hostile OpenID Provider for the tests: a real provider over HTTP that gets one thing wrong.

A test sets ``provider.scenario`` (a :class:`Scenario`) before it drives a sign-in; the default
scenario is a well-behaved provider, so every refusal the test sees is caused by the one field it
changed. The provider records what the relying party sent (``provider.seen``), so that tests can
assert PKCE S256 and the client authentication method on the wire.

It is its own issuer (``http://127.0.0.1:PORT``), issues single-use codes, verifies PKCE and the
client's credentials like a real provider, and serves: discovery, JWKS, authorize (a 302 back
with code and state, no UI), token, userinfo and end-session. Test-only; never hardened.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_plus, urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "launcher-demo"
CLIENT_SECRET = "demo-client-secret"  # the make_settings fixture's client secret
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
PUBLISHED_KID = "hostile-1"
ROTATED_KID = "hostile-2"
STRANGER_KID = "never-published"


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove()  # a claim override that deletes the claim


@dataclass(frozen=True)
class Now:
    """A time claim relative to the moment the token is minted: ``Now(-180)`` = 3 min ago."""

    delta: int = 0


@dataclass
class Scenario:
    """What the provider gets wrong. The defaults describe a provider that does everything right."""

    sub: str = "alice"  # the user who "signs in" at the next authorization
    claims: dict[str, Any] = field(default_factory=dict)  # ID-token overrides (REMOVE deletes)
    # good | rogue (same kid, key not in JWKS) | none | hs256 (client secret) | stranger-kid |
    # jku (a stranger key, its header pointing at a second JWKS, /attacker-jwks, that has it)
    signing: str = "good"
    algs_supported: list[str] = field(default_factory=lambda: ["RS256"])
    discovery_issuer: str | None = None  # another issuer in the discovery document
    auth_methods: list[str] | None = field(
        default_factory=lambda: ["client_secret_basic", "client_secret_post"]
    )  # None: token_endpoint_auth_methods_supported left out (the default is basic)
    token_endpoint: str | None = None  # advertise another token endpoint (an unreachable one)
    token_failure: str | None = None  # "500" | "invalid_grant"
    omit_id_token: bool = False
    userinfo_sub: str | None = None  # answer userinfo with another sub
    authorize_error: str | None = None  # redirect back with ?error=... instead of a code
    authorize_error_description: str | None = None
    callback_iss: str | None = ""  # RFC 9207 iss on the redirect back; "" = ours, None = none
    advertise_iss_parameter: bool = True  # authorization_response_iss_parameter_supported


@dataclass
class Seen:
    """What the relying party sent us."""

    authorize: list[dict[str, str]] = field(default_factory=list)
    token: list[dict[str, Any]] = field(default_factory=list)  # form, "auth_method", "pkce_ok"
    jwks_fetches: int = 0
    attacker_jwks_fetches: int = 0
    discovery_fetches: int = 0
    userinfo: int = 0
    end_session: list[dict[str, str]] = field(default_factory=list)
    id_tokens: list[dict[str, Any]] = field(default_factory=list)  # claims of each ID token


@functools.cache
def _rsa_key(name: str, kid: str) -> RSAKey:
    # Generated once per test run: key generation is the slowest thing this module does.
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier`` (RFC 7636 4.2)."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass
class _Grant:
    sub: str
    nonce: str | None
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str
    sid: str


class HostileIdP:
    """The provider; ``app`` is its Starlette app, to run with ``tests.conftest.LiveServer``."""

    def __init__(
        self, issuer: str, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self._sids = itertools.count(1)  # never reset: provider session ids stay unique
        self.reset()
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/attacker-jwks", self.attacker_jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo, methods=["GET", "POST"]),
                Route("/end-session", self.end_session),
            ]
        )

    def reset(self) -> None:
        """Back to a well-behaved provider with its first key, forgetting what it saw."""
        self.scenario = Scenario()
        self.seen = Seen()
        self.signing_key = _rsa_key("published", PUBLISHED_KID)
        self.published: list[RSAKey] = [self.signing_key]
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, str] = {}  # access token -> sub

    def rotate(self) -> None:
        """Publish a new key next to the old one and sign with it from now on."""
        self.signing_key = _rsa_key("rotated", ROTATED_KID)
        self.published = [self.signing_key, *self.published]

    # --- minting ------------------------------------------------------------------------
    def mint(self, claims: dict[str, Any], signing: str = "good", typ: str | None = "JWT") -> str:
        """A JWT of ``claims`` (``Now`` resolved, ``REMOVE`` dropped), signed per ``signing``,
        its ``typ`` header ``typ`` (None: no typ header)."""
        now = int(time.time())
        claims = {
            k: now + v.delta if isinstance(v, Now) else v
            for k, v in claims.items()
            if v is not REMOVE
        }
        if signing == "none":
            unsigned = {"alg": "none", "typ": "JWT"}
            return f"{_b64(json.dumps(unsigned).encode())}.{_b64(json.dumps(claims).encode())}."
        if signing == "hs256":  # the classic confusion: HMAC with the client secret, RSA kid
            key = OctKey.import_key(self.client_secret)
            return jwt.encode(
                {"alg": "HS256", "kid": self.signing_key.kid}, claims, key, algorithms=["HS256"]
            )
        rsa = {
            "good": self.signing_key,
            "rogue": _rsa_key("rogue", self.signing_key.kid or PUBLISHED_KID),
            "stranger-kid": _rsa_key("stranger", STRANGER_KID),
            "jku": _rsa_key("stranger", STRANGER_KID),
        }[signing]
        header: dict[str, Any] = {"alg": "RS256", "kid": rsa.kid}
        if signing == "jku":  # "fetch my keys from here": keys come from jwks_uri only
            header["jku"] = f"{self.issuer}/attacker-jwks"
        return jwt.encode(header, claims, rsa, algorithms=["RS256"], default_type=typ)

    def logout_token(
        self,
        *,
        sub: str | None = None,
        sid: str | None = None,
        signing: str = "good",
        typ: str | None = "logout+jwt",
        **overrides: Any,
    ) -> str:
        """A Back-Channel Logout 1.0 logout token, explicitly typed (section 2.4) unless ``typ``
        says otherwise; ``overrides`` change or REMOVE claims."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": Now(),
            "exp": Now(120),
            "jti": secrets.token_urlsafe(12),
            "events": {BACKCHANNEL_EVENT: {}},
        }
        if sub is not None:
            claims["sub"] = sub
        if sid is not None:
            claims["sid"] = sid
        return self.mint({**claims, **overrides}, signing, typ)

    # --- endpoints ----------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        self.seen.discovery_fetches += 1
        s = self.scenario
        doc: dict[str, Any] = {
            "issuer": s.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": s.token_endpoint or f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/end-session",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": s.algs_supported,
            "code_challenge_methods_supported": ["S256"],
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
        }
        if s.advertise_iss_parameter:
            doc["authorization_response_iss_parameter_supported"] = True
        if s.auth_methods is not None:
            doc["token_endpoint_auth_methods_supported"] = s.auth_methods
        return JSONResponse(doc)

    async def jwks(self, request: Request) -> Response:
        self.seen.jwks_fetches += 1
        return JSONResponse(dict(KeySet(list(self.published)).as_dict(private=False)))

    async def attacker_jwks(self, request: Request) -> Response:
        self.seen.attacker_jwks_fetches += 1
        key = _rsa_key("stranger", STRANGER_KID)
        return JSONResponse(dict(KeySet([key]).as_dict(private=False)))

    async def authorize(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.seen.authorize.append(q)
        s = self.scenario
        redirect_uri, state = q.get("redirect_uri", ""), q.get("state", "")
        if q.get("client_id") != self.client_id or not redirect_uri.startswith("http"):
            return PlainTextResponse("unknown client or redirect_uri", status_code=400)
        back: dict[str, str] = {}
        if s.authorize_error:
            back["error"] = s.authorize_error
            if s.authorize_error_description:
                back["error_description"] = s.authorize_error_description
        else:
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Grant(
                sub=s.sub,
                nonce=q.get("nonce"),
                redirect_uri=redirect_uri,
                code_challenge=q.get("code_challenge", ""),
                code_challenge_method=q.get("code_challenge_method", "plain"),
                sid=f"op-session-{next(self._sids)}",
            )
            back["code"] = code
        back["state"] = state
        if s.callback_iss is not None:
            back["iss"] = s.callback_iss or self.issuer
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    def _client_auth(self, request: Request, form: dict[str, str]) -> str | None:
        """The authentication method the client used, when its credentials are right."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return None
            ok = unquote_plus(user) == self.client_id and hmac.compare_digest(
                unquote_plus(password), self.client_secret
            )
            return "client_secret_basic" if ok and "client_secret" not in form else None
        if "client_secret" in form:
            ok = form.get("client_id") == self.client_id and hmac.compare_digest(
                form["client_secret"], self.client_secret
            )
            return "client_secret_post" if ok else None
        return None

    async def token(self, request: Request) -> Response:
        async with request.form() as raw:
            form = {k: v for k, v in raw.items() if isinstance(v, str)}
        s = self.scenario
        method = self._client_auth(request, form)
        grant = self._codes.pop(form.get("code", ""), None)  # single use, whatever happens
        verifier = form.get("code_verifier", "")
        pkce_ok = (
            grant is not None
            and grant.code_challenge_method == "S256"
            and 43 <= len(verifier) <= 128
            and hmac.compare_digest(s256(verifier), grant.code_challenge)
        )
        self.seen.token.append({"form": form, "auth_method": method, "pkce_ok": pkce_ok})

        def error(code: str, status: int = 400) -> Response:
            return JSONResponse({"error": code}, status_code=status)

        allowed = s.auth_methods if s.auth_methods is not None else ["client_secret_basic"]
        if method is None or method not in allowed:
            return error("invalid_client", 401)
        if s.token_failure == "500":
            return PlainTextResponse("Internal Server Error", status_code=500)
        if s.token_failure == "invalid_grant":
            return error("invalid_grant")
        if form.get("grant_type") != "authorization_code" or grant is None:
            return error("invalid_grant")
        if form.get("redirect_uri") != grant.redirect_uri or not pkce_ok:
            return error("invalid_grant")
        access_token = secrets.token_urlsafe(24)
        self._tokens[access_token] = grant.sub
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
        }
        if not s.omit_id_token:
            claims: dict[str, Any] = {
                "iss": self.issuer,
                "sub": grant.sub,
                "aud": self.client_id,
                "exp": Now(300),
                "iat": Now(),
                "auth_time": Now(),
                "nonce": grant.nonce,
                "sid": grant.sid,
                "name": f"{grant.sub.title()} Hostile",
                **s.claims,
            }
            body["id_token"] = self.mint(claims, s.signing)
            self.seen.id_tokens.append({k: v for k, v in claims.items() if v is not REMOVE})
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def userinfo(self, request: Request) -> Response:
        self.seen.userinfo += 1
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        sub = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if sub is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(
            {
                "sub": self.scenario.userinfo_sub or sub,
                "email": f"{sub}@hostile.example",
                "groups": ["staff"],
            }
        )

    async def end_session(self, request: Request) -> Response:
        self.seen.end_session.append(dict(request.query_params))
        return PlainTextResponse("signed out")

"""The OpenID Connect relying party. This is the only module that imports Authlib.

Authlib builds the authorization URL (state, nonce, PKCE S256) and exchanges the code with
the client authentication the provider advertises. Everything OIDC Core 3.1.3.7 asks of the
relying party that Authlib leaves out is checked here: the discovery ``issuer``, pinned
signature algorithms (never ``none``), ``aud``/``azp`` against our client id, ``iat``,
``sub``, the userinfo ``sub``, and a JWKS cache that expires and refetches on an unknown
``kid`` (with a cooldown, so a token with a made-up kid cannot make us hammer the provider).

It is longer than the house's ~400 lines on purpose: it is one class, :class:`OIDCClient`,
whose checks (ID tokens, userinfo, logout tokens) all read the same discovered metadata, key
set and Authlib client; split across modules they would pass that state back and forth, and
keeping Authlib behind one module is the point of the adapter.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import httpx

from launcher.errors import LoginFailed, ProviderUnavailable
from launcher.settings import Settings

if TYPE_CHECKING:
    from joserfc.jwk import KeySet


def _authlib() -> tuple[Any, Any]:
    """Authlib's ``OAuth`` and ``OAuthError``, imported at the first sign-in, as joserfc is at
    the first token: with cryptography they are ~13 MB that a worker answering launches and
    /readyz (which needs only the discovery document) never loads (docs/SCALING.md)."""
    with warnings.catch_warnings():
        # Authlib >= 1.7 prefers the "httpx2" fork and warns when it falls back to httpx, which
        # works as before. We stay on httpx (a dependency we already have) until that settles.
        from authlib.deprecate import AuthlibDeprecationWarning  # installs its own filter

        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        from authlib.integrations.base_client import OAuthError
        from authlib.integrations.starlette_client import OAuth
    return OAuth, OAuthError


log = logging.getLogger(__name__)

LEEWAY = 120  # seconds of clock skew tolerated for exp and iat (README, Security: at most 120 s)
JWKS_TTL = 60 * 60  # refetch the provider's keys at least hourly
JWKS_COOLDOWN = 10  # at most one unknown-kid refetch per this many seconds
METADATA_TTL = 24 * 60 * 60
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_MAX_AGE = 5 * 60  # seconds: a logout token is sent at once, never kept for later
# Back-Channel Logout 1.0 section 2.4 types logout tokens explicitly; an untyped one is allowed,
# a token typed as anything else (an ID token, "JWT") is not one (section 4.1, cross-JWT).
LOGOUT_TOKEN_TYPES = frozenset({"logout+jwt", "application/logout+jwt"})
# Authorization error codes (RFC 6749 4.1.2.1, OIDC Core 3.1.2.6) in words a person can read,
# for providers that send no error_description.
_AUTHORIZATION_ERRORS = {
    "access_denied": "the sign-in was refused or cancelled.",
    "login_required": "you are not signed in there.",
    "interaction_required": "it needs you to complete a step there first.",
    "consent_required": "this portal has not been allowed to use your account.",
}


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    token_auth_method: str
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class LoginStart:
    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Identity:
    """What a completed sign-in tells us: the validated, merged claims."""

    issuer: str
    claims: Mapping[str, Any]

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def op_sid(self) -> str | None:
        sid = self.claims.get("sid")
        return sid if isinstance(sid, str) and sid else None


@dataclass(frozen=True)
class LogoutRequest:
    sub: str | None
    sid: str | None
    jti: str = ""
    until: float = 0.0  # unix seconds after which the token is refused anyway (remember jti)


def _require(metadata: Mapping[str, Any], key: str) -> str:
    value = metadata.get(key)
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ProviderUnavailable(
            "The sign-in service published incomplete settings.",
            detail=f"discovery document lacks a valid {key!r}",
        )
    return value


class OIDCClient:
    """One relying party for one provider. Safe to share between requests of one worker."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id):
            raise LoginFailed("sign-in is not configured (LAUNCHER_OIDC_ISSUER)")
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self._secret = (
            settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        )
        self.scopes = settings.oidc_scopes
        self.algorithms = list(settings.oidc_algorithms)
        # One TLS context for every client here: building one loads the CA bundle (~60 ms on the
        # event loop), and Authlib builds a new HTTP client for every sign-in step.
        self._tls = httpx.create_ssl_context()
        self._http = http or httpx.AsyncClient(
            timeout=10.0, follow_redirects=False, verify=self._tls
        )
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._app: Any = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._unknown_kid_at = -float(JWKS_COOLDOWN)
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- discovery ----------------------------------------------------------------------
    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    async def metadata(self) -> ProviderMetadata:
        """The provider's metadata, fetched on first use and daily after; retried on failure."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < METADATA_TTL:
            return self._metadata
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at >= METADATA_TTL:
                self._metadata = await self._discover()
                self._metadata_at = time.monotonic()
                self._app = None  # registered anew with these endpoints at the next sign-in
        return self._metadata

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            resp = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                "The sign-in service could not be reached. Please try again in a moment.",
                detail=f"{what} {url}: {type(exc).__name__}: {exc}",
            ) from None
        if resp.status_code != 200:
            raise ProviderUnavailable(
                "The sign-in service is not answering properly. Please try again in a moment.",
                detail=f"{what} {url}: HTTP {resp.status_code}",
            )
        try:
            return resp.json()
        except ValueError:
            raise ProviderUnavailable(
                "The sign-in service sent an answer we could not read.",
                detail=f"{what} {url}: not JSON",
            ) from None

    async def _discover(self) -> ProviderMetadata:
        doc = await self._get_json(self.discovery_url, "discovery")
        if not isinstance(doc, dict):
            raise ProviderUnavailable("The sign-in service published unreadable settings.")
        if doc.get("issuer") != self.issuer:
            raise ProviderUnavailable(
                "The sign-in service identifies itself differently than configured.",
                detail=f"discovery issuer {doc.get('issuer')!r} != LAUNCHER_OIDC_ISSUER "
                f"{self.issuer!r}",
            )
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        # RFC 6749 2.3.1 form-encodes id and secret inside Basic; Authlib sends them raw, and
        # providers disagree. When encoding would change them ("+", "%", ...), post them instead.
        ambiguous = any(quote_plus(v) != v for v in (self.client_id, self._secret or ""))
        if "client_secret_basic" in methods and not (ambiguous and "client_secret_post" in methods):
            method = "client_secret_basic"
        elif "client_secret_post" in methods:
            method = "client_secret_post"
        else:
            raise ProviderUnavailable(
                "The sign-in service supports no client authentication we can use.",
                detail=f"token_endpoint_auth_methods_supported={methods!r}",
            )
        optional = {
            k: doc.get(k) if isinstance(doc.get(k), str) else None
            for k in ("userinfo_endpoint", "end_session_endpoint")
        }
        return ProviderMetadata(
            issuer=self.issuer,
            authorization_endpoint=_require(doc, "authorization_endpoint"),
            token_endpoint=_require(doc, "token_endpoint"),
            jwks_uri=_require(doc, "jwks_uri"),
            userinfo_endpoint=optional["userinfo_endpoint"],
            end_session_endpoint=optional["end_session_endpoint"],
            token_auth_method=method,
            raw=doc,
        )

    def _client(self, meta: ProviderMetadata) -> Any:
        """Authlib's client for ``meta``'s endpoints, made at the first sign-in step."""
        if self._app is None:
            self._app = self._register(meta)
        return self._app

    def _register(self, meta: ProviderMetadata) -> Any:
        oauth = _authlib()[0]()
        return oauth.register(
            name="launcher",
            client_id=self.client_id,
            client_secret=self._secret,
            authorize_url=meta.authorization_endpoint,
            access_token_url=meta.token_endpoint,
            userinfo_endpoint=meta.userinfo_endpoint,
            jwks_uri=meta.jwks_uri,
            issuer=meta.issuer,
            client_kwargs={
                "scope": self.scopes,
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": meta.token_auth_method,
                "timeout": 10.0,
                "verify": self._tls,
            },
        )

    # --- the authorization code flow ------------------------------------------------------
    async def begin(self, redirect_uri: str) -> LoginStart:
        rv = await self._client(await self.metadata()).create_authorization_url(redirect_uri)
        if "nonce" not in rv or "code_verifier" not in rv:  # scope without openid, or old Authlib
            raise LoginFailed(
                "Sign-in is misconfigured.", detail="LAUNCHER_OIDC_SCOPES must include 'openid'"
            )
        return LoginStart(rv["url"], rv["state"], rv["nonce"], rv["code_verifier"])

    async def check_callback(self, params: Mapping[str, str]) -> str:
        """The authorization code of a callback, after the checks that come before using it:
        RFC 9207's ``iss`` (a mix-up attack sends another provider's answer here; error
        answers carry ``iss`` too, so it is checked first) and the provider's own error."""
        meta = await self.metadata()
        iss = params.get("iss")
        if iss is None and meta.raw.get("authorization_response_iss_parameter_supported") is True:
            raise LoginFailed(
                "The sign-in answer did not say which service sent it.",
                detail="callback without iss from a provider that advertises it",
            )
        if iss is not None and iss != self.issuer:
            raise LoginFailed(
                "The sign-in answer came from the wrong service.", detail=f"callback iss {iss!r}"
            )
        error = params.get("error")
        if error:
            if error in ("server_error", "temporarily_unavailable"):  # the provider failed
                raise ProviderUnavailable(
                    "The sign-in service could not sign you in right now. "
                    "Please try again in a moment.",
                    detail=f"authorization error {error!r}",
                )
            reason = params.get("error_description") or _AUTHORIZATION_ERRORS.get(
                error, "it refused the request."
            )
            raise LoginFailed(
                f"The sign-in service did not sign you in: {reason[:300]}",
                detail=f"authorization error {error!r}",
            )
        code = params.get("code")
        if not code:
            raise LoginFailed("The sign-in answer is missing its code.", detail="no code")
        return code

    async def complete(
        self, *, code: str, redirect_uri: str, nonce: str, code_verifier: str
    ) -> Identity:
        """Exchange the code, validate the ID token, merge userinfo. Raises on any failure."""
        meta = await self.metadata()
        oauth_error = _authlib()[1]
        try:
            token = await self._client(meta).fetch_access_token(
                redirect_uri=redirect_uri, code=code, code_verifier=code_verifier
            )
        except oauth_error as exc:
            raise ProviderUnavailable(
                "The sign-in service refused to complete the sign-in.",
                detail=f"token endpoint error: {exc.error}: {exc.description}",
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                "The sign-in service could not be reached to complete the sign-in.",
                detail=f"token endpoint: {type(exc).__name__}: {exc}",
            ) from None
        except ValueError as exc:
            raise ProviderUnavailable(
                "The sign-in service sent an unreadable answer.", detail=f"token response: {exc}"
            ) from None
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if not isinstance(id_token, str) or not id_token:
            raise LoginFailed(
                "The sign-in service did not confirm who you are.",
                detail="token response has no id_token",
            )
        claims = await self.validate_id_token(id_token, nonce=nonce)
        if meta.userinfo_endpoint:
            userinfo = await self._userinfo(meta.userinfo_endpoint, token)
            if userinfo.get("sub") != claims["sub"]:
                raise LoginFailed(
                    "The sign-in service gave conflicting answers about who you are.",
                    detail=f"userinfo sub {userinfo.get('sub')!r} != ID token sub "
                    f"{claims['sub']!r}",
                )
            protected = {"iss", "aud", "sub", "exp", "iat", "nonce", "azp", "sid"}
            claims = {**claims, **{k: v for k, v in userinfo.items() if k not in protected}}
        return Identity(issuer=meta.issuer, claims=claims)

    async def _userinfo(self, endpoint: str, token: Mapping[str, Any]) -> dict[str, Any]:
        access_token = token.get("access_token")
        try:
            resp = await self._http.get(
                endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                "The sign-in service could not be reached for your profile.",
                detail=f"userinfo: {type(exc).__name__}: {exc}",
            ) from None
        if resp.status_code != 200:
            raise ProviderUnavailable(
                "The sign-in service did not give us your profile.",
                detail=f"userinfo: HTTP {resp.status_code}",
            )
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise LoginFailed(
                "The sign-in service sent a profile we could not read.",
                detail=f"userinfo is not a JSON object (content-type "
                f"{resp.headers.get('content-type')!r})",
            )
        return data

    # --- tokens -------------------------------------------------------------------------
    async def _key_set(self, kid: str | None) -> KeySet:
        meta = await self.metadata()
        now = time.monotonic()
        stale = self._keys is None or now - self._keys_at > JWKS_TTL
        unknown = (
            self._keys is not None
            and kid is not None
            and not any(k.kid == kid for k in self._keys.keys)
        )
        if unknown and now - self._unknown_kid_at >= JWKS_COOLDOWN:
            self._unknown_kid_at = now
            stale = True
        if stale:
            from joserfc.errors import JoseError
            from joserfc.jwk import KeySet

            doc = await self._get_json(meta.jwks_uri, "jwks")
            try:
                keys = KeySet.import_key_set(doc)
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise ProviderUnavailable(
                    "The sign-in service published keys we could not read.",
                    detail=f"jwks: {exc}",
                ) from None
            self._keys, self._keys_at = keys, now
        assert self._keys is not None
        return self._keys

    async def _verify_signature(self, token: str, what: str) -> dict[str, Any]:
        from joserfc import jws, jwt
        from joserfc.errors import JoseError

        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise LoginFailed(
                "The sign-in answer was malformed.", detail=f"{what}: {exc}"
            ) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none" or alg not in self.algorithms:
            raise LoginFailed(
                "The sign-in answer was not signed in a way we accept.",
                detail=f"{what} alg {alg!r} not in allow-list {self.algorithms}",
            )
        kid = header.get("kid")
        keys = await self._key_set(kid if isinstance(kid, str) else None)
        candidates = [k for k in keys.keys if kid is None or k.kid == kid]
        if not candidates:
            raise LoginFailed(
                "The sign-in answer was signed with a key the service does not publish.",
                detail=f"{what}: unknown kid {kid!r}",
            )
        for key in candidates:
            try:
                return dict(jwt.decode(token, key, algorithms=[alg]).claims)
            except (JoseError, ValueError):
                continue
        raise LoginFailed(
            "The sign-in answer failed its signature check.", detail=f"{what}: bad signature"
        )

    def _check_common(self, claims: Mapping[str, Any], what: str) -> None:
        now = time.time()

        def fail(reason: str) -> LoginFailed:
            return LoginFailed(
                "The sign-in answer did not pass our checks.", detail=f"{what}: {reason}"
            )

        if claims.get("iss") != self.issuer:
            raise fail(f"iss {claims.get('iss')!r} != {self.issuer!r}")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.client_id not in audiences:
            raise fail(f"aud {aud!r} does not contain our client id")
        azp = claims.get("azp")
        if len(audiences) > 1 and azp is None:
            raise fail("several audiences but no azp")
        if azp is not None and azp != self.client_id:
            raise fail(f"azp {azp!r} != our client id")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise fail("iat missing")
        if iat > now + LEEWAY:
            raise fail(f"iat {iat} is in the future")

    async def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        claims = await self._verify_signature(id_token, "id_token")
        self._check_common(claims, "id_token")

        def fail(reason: str) -> LoginFailed:
            return LoginFailed("The sign-in answer did not pass our checks.", detail=reason)

        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise fail("id_token exp missing")
        if exp + LEEWAY < time.time():
            raise fail(f"id_token expired at {exp}")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise fail("id_token sub missing")
        if claims.get("nonce") != nonce:
            raise fail("id_token nonce missing or does not match this sign-in")
        return claims

    async def validate_logout_token(self, logout_token: str) -> LogoutRequest:
        """OIDC Back-Channel Logout 1.0, section 2.6. Whether its ``jti`` was seen before is
        the caller's to check (it takes the database)."""
        from joserfc import jws
        from joserfc.errors import JoseError

        try:
            typ = jws.extract_compact(logout_token.encode()).headers().get("typ")
        except (JoseError, ValueError) as exc:
            raise LoginFailed("not a logout token", detail=f"logout_token: {exc}") from None
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in LOGOUT_TOKEN_TYPES):
            raise LoginFailed("not a logout token", detail=f"logout_token typ {typ!r}")
        claims = await self._verify_signature(logout_token, "logout_token")
        self._check_common(claims, "logout_token")
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_EVENT), dict):
            raise LoginFailed("not a logout token", detail="logout_token events claim missing")
        if "nonce" in claims:
            raise LoginFailed("not a logout token", detail="logout_token must not have a nonce")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise LoginFailed("not a logout token", detail="logout_token jti missing")
        now = time.time()
        exp = claims.get("exp")  # required by Back-Channel Logout 1.0 (final), section 2.4
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise LoginFailed("not a logout token", detail="logout_token exp missing")
        if exp + LEEWAY < now:
            raise LoginFailed("expired logout token", detail=f"logout_token expired at {exp}")
        iat = claims["iat"]  # present and not in the future: _check_common
        if iat + LOGOUT_TOKEN_MAX_AGE + LEEWAY < now:
            raise LoginFailed("stale logout token", detail=f"logout_token issued at {iat}")
        sub, sid = claims.get("sub"), claims.get("sid")
        sub = sub if isinstance(sub, str) and sub else None
        sid = sid if isinstance(sid, str) and sid else None
        if sub is None and sid is None:
            raise LoginFailed("not a logout token", detail="logout_token has neither sub nor sid")
        until = min(exp, iat + LOGOUT_TOKEN_MAX_AGE) + LEEWAY + 1
        return LogoutRequest(sub=sub, sid=sid, jti=jti, until=until)

    # --- logout --------------------------------------------------------------------------
    async def end_session_url(self, post_logout_redirect_uri: str) -> str | None:
        """RP-initiated logout URL, when the provider advertises ``end_session_endpoint``.

        Loads the metadata if this worker has not yet: a worker that skipped the provider's
        logout would leave the provider session open, and the next "Sign in" on a shared
        workstation would sign the previous person back in.
        """
        try:
            meta = await self.metadata()
        except ProviderUnavailable as exc:
            log.warning("sign-out without the provider's logout: %s", exc.detail)
            return None
        if not meta.end_session_endpoint:
            return None
        request = httpx.URL(meta.end_session_endpoint).copy_merge_params(
            {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        )
        return str(request)

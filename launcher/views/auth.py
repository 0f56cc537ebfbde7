"""Sign-in, the provider's callback, sign-out and back-channel logout.

A login attempt's ``state``, ``nonce``, PKCE verifier and ``next`` live in a short-lived signed
cookie of their own, keyed by ``state``: several tabs may each start a login, and each one
finishes its own (a second tab gets a fresh login, never an error page). A state is used once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from launcher.auth import csrf
from launcher.auth.session import op_sid_hash
from launcher.auth.user import User
from launcher.errors import BadRequest, LauncherError, LoginFailed, ProviderUnavailable
from launcher.launches import pseudonym
from launcher.views.common import (
    clear_session_cookie,
    error_response,
    get_session,
    portal_of,
    render,
    safe_next,
    set_session_cookie,
)

log = logging.getLogger(__name__)
LOGIN_TTL = 600  # seconds a started login may take at the provider
MAX_PENDING = 5  # concurrent logins (tabs) remembered per browser
# Authorization error codes (RFC 6749 4.1.2.1, OIDC Core 3.1.2.6) in words a person can read,
# for providers that send no error_description.
_AUTHORIZATION_ERRORS = {
    "access_denied": "the sign-in was refused or cancelled.",
    "login_required": "you are not signed in there.",
    "interaction_required": "it needs you to complete a step there first.",
    "consent_required": "this portal has not been allowed to use your account.",
}


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(portal_of(request).settings.secret(), salt="launcher.login")


def _pending(request: Request) -> dict[str, list[Any]]:
    raw = request.cookies.get(portal_of(request).settings.login_cookie)
    if not raw:
        return {}
    try:
        data = _serializer(request).loads(raw, max_age=LOGIN_TTL)
    except BadSignature:
        return {}
    if not isinstance(data, dict):
        return {}
    now = time.time()
    return {k: v for k, v in data.items() if isinstance(v, list) and now - v[3] < LOGIN_TTL}


def _store_pending(response: Response, request: Request, pending: dict[str, list[Any]]) -> None:
    s = portal_of(request).settings
    if not pending:
        response.delete_cookie(
            s.login_cookie, path="/", secure=s.https, httponly=True, samesite="lax"
        )
        return
    newest = dict(sorted(pending.items(), key=lambda kv: kv[1][3])[-MAX_PENDING:])
    response.set_cookie(
        s.login_cookie,
        _serializer(request).dumps(newest),
        max_age=LOGIN_TTL,
        path="/",
        secure=s.https,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a top-level GET: Lax cookies go along
    )


async def login(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if get_session(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    p = portal_of(request)
    start = await p.oidc.begin(p.settings.redirect_uri)
    pending = _pending(request)
    pending[start.state] = [start.nonce, start.code_verifier, next_path, time.time()]
    response = RedirectResponse(start.url, status_code=302, headers={"Cache-Control": "no-store"})
    _store_pending(response, request, pending)
    return response


def _user_from_claims(request: Request, issuer: str, claims: dict[str, Any]) -> User:
    s = portal_of(request).settings
    groups = claims.get(s.groups_claim) or ()
    if isinstance(groups, str):
        groups = [g for g in groups.replace(",", " ").split() if g]
    if not isinstance(groups, list | tuple):
        groups = ()
    department = claims.get(s.department_claim)
    email = claims.get("email")
    upn = claims.get("upn") or claims.get("preferred_username")
    sub = str(claims["sub"])
    name = claims.get("name") or " ".join(
        str(claims[k]) for k in ("given_name", "family_name") if claims.get(k)
    )
    return User(
        user_id=pseudonym(s.pseudonym_secret(), issuer, sub),
        sub=sub,
        name=str(name or email or upn or sub)[:200],
        email=str(email)[:320] if isinstance(email, str) else None,
        upn=str(upn)[:320] if isinstance(upn, str) else None,
        department=str(department)[:128] if isinstance(department, str) and department else None,
        groups=tuple(str(g)[:256] for g in groups if isinstance(g, str)),
    )


async def callback(request: Request) -> Response:
    p = portal_of(request)
    params = request.query_params
    state = params.get("state")
    pending = _pending(request)
    attempt = pending.pop(state, None) if state else None
    try:
        if attempt is None:
            raise LoginFailed(
                "This sign-in link has expired or was already used. Please sign in again.",
                detail=f"unknown or replayed state {state!r}",
            )
        nonce, verifier, next_path, _ = attempt
        meta = p.oidc.loaded_metadata
        if (
            params.get("iss") is None
            and meta is not None
            and meta.raw.get("authorization_response_iss_parameter_supported") is True
        ):
            raise LoginFailed(  # RFC 9207 2.4: a provider that promises iss must send it
                "The sign-in answer did not say which service sent it.",
                detail="callback without iss from a provider that advertises it",
            )
        if params.get("iss") is not None and params.get("iss") != p.oidc.issuer:
            raise LoginFailed(  # RFC 9207: a mix-up attack sends another provider's answer here
                "The sign-in answer came from the wrong service.",
                detail=f"callback iss {params.get('iss')!r}",
            )  # checked before "error": error responses carry iss too (RFC 9207 2.4)
        if params.get("error"):
            error = params["error"]
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
            raise BadRequest("The sign-in answer is missing its code.", detail="no code")
        identity = await p.oidc.complete(
            code=code, redirect_uri=p.settings.redirect_uri, nonce=nonce, code_verifier=verifier
        )
    except LauncherError as exc:
        p.metrics.login_failures.labels(type(exc).__name__).inc()
        exc.retry = "/login?next=/"
        response = error_response(request, exc)
        _store_pending(response, request, pending)  # the used state is gone either way
        return response

    user = _user_from_claims(request, identity.issuer, dict(identity.claims))
    previous = get_session(request)
    if previous is not None:  # a new session at every sign-in; the old one dies everywhere
        await p.revocations.revoke("sid", previous.sid, p.settings.session_absolute_timeout)
    session = p.sessions.new(
        user,
        identity.op_sid,
        known_groups=p.registry.current.known_groups()
        | set(p.settings.reviewer_groups)
        | set(p.settings.admin_groups),
    )
    p.events.record_signin(user.user_id, user.department)
    p.metrics.signins.inc()
    log.info("sign-in: user %s", user.user_id)
    response = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    set_session_cookie(response, request, session)
    _store_pending(response, request, pending)
    return response


async def logout(request: Request) -> Response:
    p = portal_of(request)
    session = get_session(request)
    response: Response
    if session is None:
        response = RedirectResponse("/signed-out", status_code=303)
        clear_session_cookie(response, request)
        return response
    async with request.form() as form:
        csrf.check_token(p.settings.secret(), session.sid, form.get(csrf.FIELD))
    await p.revocations.revoke("sid", session.sid, p.settings.session_absolute_timeout)
    end_session = p.oidc.end_session_url(f"{p.settings.base_url}/signed-out")
    response = RedirectResponse(end_session or "/signed-out", status_code=303)
    clear_session_cookie(response, request)
    return response


async def signed_out(request: Request) -> Response:
    if get_session(request) is not None:
        return RedirectResponse("/", status_code=303)
    return render(request, "signed_out.html")


async def backchannel_logout(request: Request) -> Response:
    """OIDC Back-Channel Logout 1.0: the provider ends sessions server to server."""
    p = portal_of(request)
    headers = {"Cache-Control": "no-store"}
    async with request.form() as form:
        token = form.get("logout_token")
    if not isinstance(token, str) or not token:
        return JSONResponse({"error": "invalid_request"}, status_code=400, headers=headers)
    try:
        logout_request = await p.oidc.validate_logout_token(token)
    except LoginFailed as exc:
        log.warning("back-channel logout refused: %s", exc.detail)
        return JSONResponse({"error": "invalid_request"}, status_code=400, headers=headers)
    lifetime = p.settings.session_absolute_timeout
    if logout_request.sid is not None:
        await p.revocations.revoke("op_sid", op_sid_hash(logout_request.sid), lifetime)
    else:
        assert logout_request.sub is not None
        user_id = pseudonym(p.settings.pseudonym_secret(), p.oidc.issuer, logout_request.sub)
        await p.revocations.revoke("user", user_id, lifetime)
    return Response(status_code=200, headers=headers)


routes = [
    Route("/login", login),
    Route("/auth/callback", callback),
    Route("/logout", logout, methods=["POST"]),
    Route("/signed-out", signed_out),
    Route("/auth/backchannel-logout", backchannel_logout, methods=["POST"]),
]

"""Sign-in, the provider's callback, sign-out, and the provider's back- and front-channel logout.

Each login attempt keeps its ``nonce``, PKCE verifier and ``next`` in a short-lived signed cookie
of its own, named after its ``state``. Tabs that start logins at the same moment (a browser
restoring its session) therefore never overwrite each other's attempt, and each finishes its own:
a second tab gets a fresh login, not an error page. A state is used once, ever: the server
remembers used states (launcher/auth/spent.py), so a replayed callback -- login cookie and all --
never reaches the token endpoint a second time.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from launcher.audit import audit, session_ref
from launcher.auth import csrf
from launcher.auth.session import op_sid_hash
from launcher.auth.user import pseudonym, user_from_claims
from launcher.context import Context
from launcher.errors import BadRequest, LauncherError, LoginFailed
from launcher.views.common import (
    clear_session_cookie,
    context_of,
    error_response,
    get_session,
    render,
    safe_next,
    set_session_cookie,
)

log = logging.getLogger(__name__)
LOGIN_TTL = 600  # seconds a started login may take at the provider


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(context_of(request).settings.secret_keys(), salt="launcher.login")


def _cookie_name(request: Request, state: str) -> str:
    # a hash keeps the name short and free of characters a cookie name may not hold
    digest = hashlib.sha256(state.encode()).hexdigest()[:16]
    return f"{context_of(request).settings.login_cookie}-{digest}"


def _attempt(request: Request, state: str | None) -> list[Any] | None:
    """The login attempt that issued ``state`` in this browser: [nonce, verifier, next]."""
    if not state:
        return None
    raw = request.cookies.get(_cookie_name(request, state))
    if not raw:
        return None
    try:
        data = _serializer(request).loads(raw, max_age=LOGIN_TTL)
    except BadSignature:
        return None
    if not isinstance(data, list) or len(data) != 4 or data[0] != state:
        return None
    return data[1:]


def _forget(response: Response, request: Request, state: str | None) -> None:
    if state:
        s = context_of(request).settings
        response.delete_cookie(
            _cookie_name(request, state), path="/", secure=s.https, httponly=True, samesite="lax"
        )


async def login(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if get_session(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    p = context_of(request)
    start = await p.oidc.begin(p.settings.redirect_uri)
    response = RedirectResponse(start.url, status_code=302, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        _cookie_name(request, start.state),
        _serializer(request).dumps([start.state, start.nonce, start.code_verifier, next_path]),
        max_age=LOGIN_TTL,
        path="/",
        secure=p.settings.https,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a top-level GET: Lax cookies go along
    )
    return response


async def callback(request: Request) -> Response:
    p = context_of(request)
    params = request.query_params
    state = params.get("state")
    attempt = _attempt(request, state)
    if attempt is not None and state is not None:
        # the login cookie proves this browser started the attempt; whether the attempt was
        # already used (in any worker) only the server knows
        first_use = await anyio.to_thread.run_sync(
            p.spent.spend, "state", state, time.time() + LOGIN_TTL
        )
        attempt = attempt if first_use else None
    try:
        if attempt is None:
            if get_session(request) is not None and not params.get("error"):
                # an old tab finishing after another tab signed in: nothing to do but go on
                return RedirectResponse("/", status_code=303)
            raise LoginFailed(
                "This sign-in link has expired or was already used. Please sign in again.",
                detail=f"unknown or replayed state {state!r}",
            )
        nonce, verifier, next_path = attempt
        code = await p.oidc.check_callback(params)
        identity = await p.oidc.complete(
            code=code, redirect_uri=p.settings.redirect_uri, nonce=nonce, code_verifier=verifier
        )
        s = p.settings
        user = user_from_claims(  # a missing LAUNCHER_SUBJECT_CLAIM is a failed sign-in too
            identity.claims,
            issuer=identity.issuer,
            pseudonym_key=s.pseudonym_secret(),
            groups_claim=s.groups_claim,
            department_claim=s.department_claim,
            subject_claim=s.subject_claim,
            departments=p.registry.current.department_map() if p.registry.ready else None,
        )
    except LauncherError as exc:
        p.metrics.login_failures.labels(type(exc).__name__).inc()
        audit("sign_in_failed", error=type(exc).__name__, reason=exc.message, status=exc.status)
        exc.retry = "/login?next=/"
        response = error_response(request, exc)
        _forget(response, request, state)  # the used state is gone either way
        return response

    previous = get_session(request)
    if previous is not None:  # a new session at every sign-in; the old one dies everywhere
        await p.revocations.revoke("sid", previous.sid, s.session_absolute_timeout)
    session = p.sessions.new(
        user,
        identity.op_sid,
        known_groups=p.registry.current.known_groups()
        | set(s.reviewer_groups)
        | set(s.admin_groups),
    )
    p.events.record_signin(user.user_id, user.department)
    p.metrics.signins.inc()
    audit("sign_in", user=user.user_id, session=session_ref(session.sid))
    response = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    set_session_cookie(response, request, session)
    _forget(response, request, state)
    return response


async def logout(request: Request) -> Response:
    p = context_of(request)
    session = get_session(request)
    response: Response
    if session is None:
        response = RedirectResponse("/signed-out", status_code=303)
        clear_session_cookie(response, request)
        return response
    async with request.form() as form:
        csrf.check_token(p.settings.secret_keys(), session.sid, form.get(csrf.FIELD))
    await p.revocations.revoke("sid", session.sid, p.settings.session_absolute_timeout)
    audit("sign_out", user=session.user.user_id, session=session_ref(session.sid))
    end_session = await p.oidc.end_session_url(f"{p.settings.base_url}/signed-out")
    response = RedirectResponse(end_session or "/signed-out", status_code=303)
    clear_session_cookie(response, request)
    return response


async def signed_out(request: Request) -> Response:
    if get_session(request) is not None:
        return RedirectResponse("/", status_code=303)
    return render(request, "signed_out.html")


async def backchannel_logout(request: Request) -> Response:
    """OIDC Back-Channel Logout 1.0: the provider ends sessions server to server."""
    p = context_of(request)
    headers = {"Cache-Control": "no-store"}
    async with request.form() as form:
        token = form.get("logout_token")
    if not isinstance(token, str) or not token:
        return JSONResponse({"error": "invalid_request"}, status_code=400, headers=headers)
    try:
        logout = await p.oidc.validate_logout_token(token)
        # a jti is unique per issuer; remembered as long as the token would be accepted
        first_use = await anyio.to_thread.run_sync(
            p.spent.spend, "jti", f"{p.oidc.issuer}\0{logout.jti}", logout.until
        )
        if not first_use:
            raise LoginFailed("replayed logout token", detail=f"logout_token jti {logout.jti!r}")
    except LoginFailed as exc:
        log.warning("back-channel logout refused: %s", exc.detail)
        audit("backchannel_logout", outcome="refused", reason=exc.detail or exc.message)
        return JSONResponse({"error": "invalid_request"}, status_code=400, headers=headers)
    lifetime = p.settings.session_absolute_timeout
    if logout.sid is not None:
        await p.revocations.revoke("op_sid", op_sid_hash(logout.sid), lifetime)
        if logout.sub is not None:
            # sessions that never learnt their provider session id (no sid in the ID token)
            # may belong to this one: end this user's such sessions too
            await p.revocations.revoke("sub_bare", _sub_key(p, logout.sub), lifetime)
        audit("backchannel_logout", outcome="ok", by="sid")
    else:
        assert logout.sub is not None
        await p.revocations.revoke("sub", _sub_key(p, logout.sub), lifetime)
        # the person's pseudonym when it is made from `sub` (LAUNCHER_SUBJECT_CLAIM)
        same = p.settings.subject_claim == "sub"
        user = pseudonym(p.settings.pseudonym_secret(), p.oidc.issuer, logout.sub) if same else None
        audit("backchannel_logout", outcome="ok", by="sub", user=user)
    return Response(status_code=200, headers=headers)


def _sub_key(p: Context, sub: str) -> str:
    """How a revocation names the provider's raw ``sub`` (see launcher/auth/session.py)."""
    assert p.revocations.sub_hash is not None
    return p.revocations.sub_hash(sub)


_FRONTCHANNEL_PAGE = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out</title>'
    b"</head><body><p>Signed out of the portal.</p></body></html>"
)


async def frontchannel_logout(request: Request) -> Response:
    """OIDC Front-Channel Logout 1.0: the provider's logout page loads this in an iframe.

    ``sid`` (with ``iss``) names the provider session: its portal sessions end in every
    worker. The browser's own session ends too, unless it belongs to another provider session.
    Entra ID sends ``sid`` without ``iss``; a present ``iss`` must be ours.
    """
    p = context_of(request)
    iss, sid = request.query_params.get("iss"), request.query_params.get("sid")
    if iss is not None and iss != p.oidc.issuer:
        log.warning("front-channel logout refused: iss %r is not ours", iss[:200])
        raise BadRequest("This sign-out request came from another sign-in service.")
    lifetime = p.settings.session_absolute_timeout
    op_sid = op_sid_hash(sid) if sid else None
    if op_sid is not None:
        await p.revocations.revoke("op_sid", op_sid, lifetime)
    session = get_session(request)
    ours = session is None or session.op_sid is None or session.op_sid == op_sid or not sid
    if session is not None and ours:
        await p.revocations.revoke("sid", session.sid, lifetime)
    parts = urlsplit(p.oidc.issuer)
    response = Response(
        _FRONTCHANNEL_PAGE,
        media_type="text/html",
        headers={
            "Cache-Control": "no-store",
            # the one page the provider may frame; this response's own policy replaces the
            # portal's frame-ancestors 'none' (and X-Frame-Options: DENY) here only
            "Content-Security-Policy": "default-src 'none'; base-uri 'none'; "
            f"form-action 'none'; frame-ancestors {parts.scheme}://{parts.netloc}",
        },
    )
    if ours:
        clear_session_cookie(response, request)
    return response


routes = [
    Route("/login", login),
    Route("/auth/callback", callback),
    Route("/logout", logout, methods=["POST"]),
    Route("/signed-out", signed_out),
    Route("/auth/backchannel-logout", backchannel_logout, methods=["POST"]),
    Route("/auth/frontchannel-logout", frontchannel_logout, methods=["GET"]),
]

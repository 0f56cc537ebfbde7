"""What every handler shares: the session, rendering, errors, and the security headers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from launcher import i18n
from launcher.auth import csrf
from launcher.auth.session import Session
from launcher.context import Context
from launcher.errors import Forbidden, LauncherError, NotFound, NotSignedIn

log = logging.getLogger("launcher.views")
_NO_SESSION = object()


def context_of(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def safe_next(value: str | None) -> str:
    """A same-site path, or "/": no scheme, no host, no ``//`` or backslash tricks."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or c == "\x7f" for c in value)
    ):
        return "/"
    return value


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def cookie_value(header: bytes, name: str) -> str | None:
    """One cookie's value from a raw Cookie header, without parsing all the others."""
    key = name.encode() + b"="
    for part in header.split(b";"):
        part = part.strip()
        if part.startswith(key):
            return part[len(key) :].decode("latin-1")
    return None


def get_session(request: Request) -> Session | None:
    """The request's live session, decoded and checked once per request (the handler, the
    page it renders and the cookie refresh all ask)."""
    # State keeps its attributes in a dict of its own: getattr, not state.__dict__, sees them
    cached: Session | None | object = getattr(request.state, "session", _NO_SESSION)
    if cached is not _NO_SESSION:
        assert cached is None or isinstance(cached, Session)
        return cached
    p = context_of(request)
    session = p.sessions.loads(request.cookies.get(p.settings.session_cookie))
    request.state.session = session
    return session


async def posted_form(request: Request, *fields: str) -> tuple[Session, dict[str, Any]] | None:
    """The session and the named fields of a form post carrying this session's CSRF token
    (CsrfFailed otherwise); None when nobody is signed in."""
    session = get_session(request)
    if session is None:
        return None
    p = context_of(request)
    async with request.form() as form:
        csrf.check_token(p.settings.secret_keys(), session.sid, form.get(csrf.FIELD))
        return session, {name: form.get(name) for name in fields}


def member_session(
    request: Request, groups: list[str], refusal: str = "Your account does not have access to this."
) -> Session | None:
    """The session of a member of one of ``groups``; None when nobody is signed in, Forbidden
    (with ``refusal``) for anyone else."""
    session = get_session(request)
    if session is not None and not session.user.in_any(groups):
        raise Forbidden(refusal)
    return session


def api_session(request: Request, groups: list[str]) -> Session:
    """The session of a caller who must belong to one of ``groups`` (401/403 otherwise)."""
    session = member_session(request, groups)
    if session is None:
        raise NotSignedIn("Sign in first.")
    return session


def set_session_cookie(response: Response, request: Request, session: Session) -> None:
    p = context_of(request)
    response.set_cookie(
        p.settings.session_cookie,
        p.sessions.dumps(session),
        max_age=p.settings.session_absolute_timeout,
        path="/",
        secure=p.settings.https,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    s = context_of(request).settings
    response.delete_cookie(
        s.session_cookie, path="/", secure=s.https, httponly=True, samesite="lax"
    )


def keep_alive(response: Response, request: Request) -> Response:
    """Re-issue the cookie (moving the idle clock) when it is more than a minute old."""
    session = get_session(request)
    p = context_of(request)
    if session is not None and p.sessions.needs_touch(session):
        set_session_cookie(response, request, p.sessions.touched(session))
    return response


def language(request: Request) -> str:
    p = context_of(request)
    default = p.registry.current.portal.default_language if p.registry.ready else "nl"
    # the person's choice (the switch in the header) over the browser's
    return i18n.choose(
        request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"), default
    )


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> Response:
    p = context_of(request)
    ctx = page_context(request, context)
    response = p.templates.TemplateResponse(request, template, ctx, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return keep_alive(response, request)


def page_context(request: Request, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What every page's template gets (the header's), with ``context`` over it."""
    p = context_of(request)
    session = get_session(request)
    lang = language(request)
    ctx: dict[str, Any] = {
        "lang": lang,
        "t": i18n.translator(lang),
        "user": session.user if session else None,
        "csrf_token": csrf.token_for(p.settings.secret(), session.sid) if session else None,
        "portal_title": p.registry.current.portal.title if p.registry.ready else "Launcher",
        "is_reviewer": bool(session and session.user.in_any(p.settings.reviewer_groups)),
        "is_admin": bool(session and session.user.in_any(p.settings.admin_groups)),
    }
    ctx.update(context or {})
    return ctx


def _wants_json(request: Request) -> bool:
    return (
        request.url.path.startswith("/api/")
        or "application/json" in request.headers.get("accept", "").split(",")[0]
    )


def error_response(request: Request, exc: LauncherError) -> Response:
    """The one place errors become responses: a JSON object on the API, a page elsewhere."""
    if exc.status >= 500 or exc.detail:
        log.warning(
            "%s %s -> %d %s (%s)",
            request.method,
            request.url.path,
            exc.status,
            exc.message,
            exc.detail or "",
        )
    if _wants_json(request):
        body = {"error": type(exc).__name__, "status": exc.status, "message": exc.message}
        return JSONResponse(body, status_code=exc.status, headers={"Cache-Control": "no-store"})
    context = {"title": exc.title, "message": exc.message, "status": exc.status, "retry": exc.retry}
    try:
        # a signed-in user keeps the header with the sign-out form on error pages too
        return render(request, "error.html", context, status=exc.status)
    except Exception:  # the error page itself failed (a broken template?): plain words
        log.exception("error page failed for %s", request.url.path)
        return PlainTextResponse(
            f"{exc.title}: {exc.message}",
            status_code=exc.status,
            headers={"Cache-Control": "no-store"},
        )


async def _launcher_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LauncherError)
    return error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(request, NotFound("There is no page at this address."))
    error = LauncherError(exc.detail or "This request could not be handled.")
    error.status = exc.status_code
    response = error_response(request, error)
    # what the exception says about itself stays: Allow on a 405 (RFC 9110 15.5.6)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response = error_response(
        request, LauncherError("Something went wrong on our side. Please try again.")
    )
    # Starlette sends this from outside every middleware, so SecurityHeaders never sees it.
    # The error page has no form: the default form-action is enough.
    response.raw_headers.extend(security_headers(context_of(request).settings.https))
    return response


def install_error_handlers(app: Starlette) -> None:
    app.add_exception_handler(LauncherError, _launcher_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _crash)


def security_headers(https: bool, form_targets: tuple[str, ...] = ()) -> list[tuple[bytes, bytes]]:
    """The security headers of every response (README, Security)."""
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self' {' '.join(form_targets)}".rstrip()
    )
    headers = [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if https:
        headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
    return headers


class SecurityHeaders:
    """Pure ASGI middleware (cheap on the launch path) adding the security headers."""

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                # A response that sets its own policy keeps it (the development provider's
                # pages): browsers enforce every CSP header, so ours would break their styles.
                # One whose policy says who may frame it (front-channel logout) decides that
                # alone: X-Frame-Options: DENY would forbid what its frame-ancestors allows.
                if any(
                    name.lower() == b"content-security-policy" and b"frame-ancestors" in value
                    for name, value in headers
                ):
                    present.add(b"x-frame-options")
                message["headers"] = headers + [h for h in self.headers if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)

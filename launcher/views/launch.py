"""``/launch/{app_id}``: the 303 to an app, with the launch recorded on the way.

Who may launch what is decided in one place, :func:`decide`: a live session, an app that
exists and is visible to the user's groups, and not a prefetch. Two callers ask it:

- :class:`FastLaunch` answers the common case before routing and middleware (the hot path of
  the portal) and declines everything else;
- :class:`LaunchEndpoint`, the routed endpoint, answers every case: the sign-in redirect, the
  404, the 503 for a prefetch, and the 303 with a re-issued cookie.

Neither waits for the database: the launch goes to the event store's buffer
(launcher/events/). A ``HEAD`` is answered like a ``GET`` but records nothing: nobody was
sent to the app.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from launcher.context import Context
from launcher.errors import NotFound
from launcher.views.common import cookie_value, keep_alive, login_redirect

if TYPE_CHECKING:
    from launcher.auth.session import Session
    from launcher.registry import App


class Refusal(enum.Enum):
    """Why a launch gets no 303."""

    SIGN_IN = "no live session: the login redirect, back here afterwards"
    NOT_FOUND = "no such app, or not one for the user's groups: 404, alike for both"
    PREFETCH = "a speculative load: 503 no-store, so that the real click is counted once"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is three times slower
class Grant:
    """A launch that may go ahead: the user's session, the app and where the 303 points."""

    session: Session
    app: App
    target: bytes  # the Location header's value

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"location", self.target),
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
        ]


def decide(p: Context, session: Session | None, app_id: str, purpose: bytes) -> Grant | Refusal:
    """The access rule of a launch, for both paths. Raises what the registry raises (no
    registry loaded, a launch URL that cannot be built)."""
    if session is None:
        return Refusal.SIGN_IN
    registry = p.registry.current
    app = registry.app(app_id)
    if app is None or not app.visible_to(session.user.groups):
        return Refusal.NOT_FOUND
    if b"prefetch" in purpose or b"prerender" in purpose:
        return Refusal.PREFETCH
    issuer = p.settings.oidc_issuer or ""
    return Grant(session, app, p.launch_targets.get(registry, app, session.user, issuer))


# ``?source=`` on a launch link says where in the portal it was clicked; only these values
# are kept (anything else reads as a plain tile). A digest link comes from a mail client, so
# it is never same-origin; the others count only when the browser says the click came from
# our own page (Sec-Fetch-Site), so a hand-made link cannot pass itself off as one.
_IN_PORTAL = {b"search": "search", b"favourite": "favourite", b"recent": "recent"}
_FROM_OUTSIDE = {b"digest": "digest"}


def source_of(fetch_site: bytes, query_string: bytes) -> str:
    """The ``source`` of a launch: ``portal`` (a tile), ``search``, ``favourite``,
    ``recent``, ``digest`` (a link in the weekly mail) or ``direct`` (a bookmark, a link)."""
    given = b""
    for pair in query_string.split(b"&"):
        if pair.startswith(b"source="):
            given = pair[7:]
    if given in _FROM_OUTSIDE:
        return _FROM_OUTSIDE[given]
    if fetch_site == b"same-origin":
        return _IN_PORTAL.get(given, "portal")
    return "direct"


def record(p: Context, grant: Grant, fetch_site: bytes, query_string: bytes = b"") -> None:
    """Count the launch: a row (through the event store's buffer) and the metric."""
    user = grant.session.user
    source = source_of(fetch_site, query_string)
    p.events.record_launch(grant.app.id, user.user_id, user.department, source)
    p.metrics.count_launch(grant.app.id)


def _request_headers(scope: Scope) -> tuple[bytes, bytes, bytes]:
    """The request headers a launch looks at: Cookie, Sec-Purpose/Purpose, Sec-Fetch-Site."""
    cookie = purpose = fetch_site = b""
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookie = value
        elif name in (b"sec-purpose", b"purpose"):
            purpose = value
        elif name == b"sec-fetch-site":
            fetch_site = value
    return cookie, purpose, fetch_site


class LaunchEndpoint:
    """``GET`` and ``HEAD /launch/{app_id}`` as a bare ASGI app, for every case a launch can meet.

    It skips Starlette's Request and Response objects on the way to the 303 and keeps the
    rare paths -- sign-in needed, unknown app, a prefetch, a cookie to re-issue -- on the
    ordinary helpers. The common case does not even get here: see :class:`FastLaunch`.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        p: Context = scope["app"].state.context
        cookie, purpose, fetch_site = _request_headers(scope)
        request = Request(scope, receive)
        session = p.sessions.loads(cookie_value(cookie, p.settings.session_cookie))
        request.state.session = session  # get_session() and the error page reuse it
        grant = decide(p, session, scope["path_params"]["app_id"], purpose)
        if grant is Refusal.SIGN_IN:
            await login_redirect(request)(scope, receive, send)
            return
        if grant is Refusal.NOT_FOUND:
            raise NotFound("There is no app with this name, or it is not available to you.")
        if grant is Refusal.PREFETCH:
            # Answer a speculative load with something it cannot cache or reuse, so that the
            # real click reaches us and is counted exactly once.
            await Response(status_code=503, headers={"Cache-Control": "no-store"})(
                scope, receive, send
            )
            return
        assert isinstance(grant, Grant)  # every Refusal is answered above
        if scope["method"] != "HEAD":  # a HEAD sends nobody to the app: nothing to count
            record(p, grant, fetch_site, scope.get("query_string", b""))
        headers = grant.headers()
        if p.sessions.needs_touch(grant.session):  # launching is activity: moves the idle clock
            renewed = keep_alive(Response(), request).raw_headers
            headers += [h for h in renewed if h[0] == b"set-cookie"]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class FastLaunch:
    """The common launch, answered before routing and middleware: the hot path of the portal.

    Every click on a tile is a ``GET /launch/{app_id}`` with a live session for an app the
    user may open. That case is answered here, with the security headers every response
    carries, at about a third of the cost of going through Starlette's middleware and router.
    Whatever :func:`decide` refuses, and a cookie to re-issue, a root path, a HEAD, any error,
    is declined and goes the ordinary way, to :class:`LaunchEndpoint`.
    """

    PREFIX = "/launch/"

    def __init__(self, portal: Context, security_headers: list[tuple[bytes, bytes]]) -> None:
        self.portal = portal
        self.security_headers = security_headers

    async def __call__(self, scope: Scope, send: Send) -> bool:
        """Answer the launch in ``scope`` and return True, or return False to decline it."""
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.PREFIX)
            or scope.get("root_path")
        ):
            return False
        p = self.portal
        try:
            app_id = scope["path"][len(self.PREFIX) :]
            cookie, purpose, fetch_site = _request_headers(scope)
            if purpose or "/" in app_id:  # rare, or a path the router does not match
                return False
            session = p.sessions.loads(cookie_value(cookie, p.settings.session_cookie))
            grant = decide(p, session, app_id, purpose)
            if not isinstance(grant, Grant) or p.sessions.needs_touch(grant.session):
                return False
        except Exception:  # the ordinary path answers it again, with its error handling
            return False
        record(p, grant, fetch_site, scope.get("query_string", b""))
        headers = grant.headers() + self.security_headers
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return True


routes = [Route("/launch/{app_id}", LaunchEndpoint(), methods=["GET", "HEAD"])]

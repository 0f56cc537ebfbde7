"""The tile grid and the launch redirect."""

from __future__ import annotations

import datetime as dt
import logging
from itertools import groupby
from typing import TYPE_CHECKING

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from launcher import app_requests, personal
from launcher.context import Context
from launcher.errors import NotFound
from launcher.registry import ICON_DIR, ICON_FILE
from launcher.views import announcements
from launcher.views.common import (
    context_of,
    cookie_value,
    get_session,
    keep_alive,
    login_redirect,
    posted_form,
    render,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from launcher.auth.user import User
    from launcher.registry import App


async def home(request: Request) -> Response:
    session = get_session(request)
    if session is None:
        return login_redirect(request)
    p = context_of(request)
    registry = p.registry.current
    tiles = [app for app in registry.visible_apps(session.user.groups) if not app.hidden]
    by_id = {app.id: app for app in tiles}
    try:
        starred, used = await anyio.to_thread.run_sync(
            personal.for_grid, p.engine, session.user.user_id
        )
    except sa.exc.SQLAlchemyError as exc:  # the grid works without them
        log.warning("favourites and recent apps unavailable: %s", exc)
        starred, used = [], []
    favourites = [by_id[a] for a in starred if a in by_id]
    recent = [by_id[a] for a in used if a in by_id][: personal.RECENT_MAX]
    sections = [
        (registry.category(category_id), list(apps))
        for category_id, apps in groupby(tiles, key=lambda a: a.category)
    ]
    return render(
        request,
        "portal.html",
        {
            "sections": sections,
            "favourites": favourites,
            "favourite_ids": {app.id for app in favourites},
            "recent": recent,
            "today": dt.datetime.now(dt.UTC).date(),
            "has_tiles": bool(tiles),
            "asked": request.query_params.get("asked") == "1",
            **await announcements.banner(request, session),
        },
    )


async def request_app(request: Request) -> Response:
    """``POST /requests``: "missing an app?" from the grid."""
    posted = await posted_form(request, "name")
    if posted is None:
        return login_redirect(request)
    user, name = posted[0].user, posted[1]["name"]
    p = context_of(request)
    await anyio.to_thread.run_sync(app_requests.add, p.engine, user.user_id, user.department, name)
    return keep_alive(RedirectResponse("/?asked=1#missing", status_code=303), request)


async def favourite(request: Request) -> Response:
    """``POST /favourites/{app_id}``: star or un-star an app the user may see."""
    posted = await posted_form(request, "favourite")
    if posted is None:
        return login_redirect(request)
    session, starred = posted[0], posted[1]["favourite"] == "on"
    p = context_of(request)
    app = p.registry.current.app(request.path_params["app_id"])
    if app is None or app.hidden or not app.visible_to(session.user.groups):
        raise NotFound("There is no app with this name, or it is not available to you.")
    await anyio.to_thread.run_sync(
        personal.set_favourite, p.engine, session.user.user_id, app.id, starred
    )
    return keep_alive(RedirectResponse(f"/#app-{app.id}", status_code=303), request)


def _launch_headers(scope: Scope) -> tuple[bytes, bytes, bytes]:
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


def _target(p: Context, app: App, user: User) -> bytes:
    """The ``Location`` of a launch (cached per registry, app and user)."""
    return p.launch_targets.get(p.registry.current, app, user, p.settings.oidc_issuer or "")


def _launch(
    p: Context, app: App, user: User, target: bytes, fetch_site: bytes
) -> list[tuple[bytes, bytes]]:
    """Record the launch and return the headers of its 303 to ``target``."""
    source = "portal" if fetch_site == b"same-origin" else "direct"
    p.events.record_launch(app.id, user.user_id, user.department, source)
    p.metrics.launch_counter(app.id).inc()
    return [(b"location", target), (b"cache-control", b"no-store"), (b"content-length", b"0")]


class LaunchEndpoint:
    """``GET /launch/{app_id}`` as a bare ASGI app, for every case a launch can meet.

    It skips Starlette's Request and Response objects on the way to the 303 and keeps the
    rare paths -- sign-in needed, unknown app, a prefetch, a cookie to re-issue -- on the
    ordinary helpers. Nothing here waits for the database: the launch goes to the event
    store's buffer. The common case does not even get here: see ``FastLaunch``.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        p: Context = scope["app"].state.context
        cookie, purpose, fetch_site = _launch_headers(scope)
        request = Request(scope, receive)
        session = p.sessions.loads(cookie_value(cookie, p.settings.session_cookie))
        request.state.session = session  # get_session() and the error page reuse it
        if session is None:
            await login_redirect(request)(scope, receive, send)
            return
        app = p.registry.current.app(scope["path_params"]["app_id"])
        if app is None or not app.visible_to(session.user.groups):
            raise NotFound("There is no app with this name, or it is not available to you.")
        if b"prefetch" in purpose or b"prerender" in purpose:
            # Answer a speculative load with something it cannot cache or reuse, so that the
            # real click reaches us and is counted exactly once.
            await Response(status_code=503, headers={"Cache-Control": "no-store"})(
                scope, receive, send
            )
            return
        headers = _launch(p, app, session.user, _target(p, app, session.user), fetch_site)
        if p.sessions.needs_touch(session):  # launching is activity: it moves the idle clock
            renewed = keep_alive(Response(), request).raw_headers
            headers += [h for h in renewed if h[0] == b"set-cookie"]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class FastLaunch:
    """The common launch, answered before routing and middleware: the hot path of the portal.

    Every click on a tile is a ``GET /launch/{app_id}`` with a live session for an app the
    user may open. That case is answered here, with the security headers every response
    carries, at about a third of the cost of going through Starlette's middleware and router.
    Anything else -- no or stale session, unknown app, prefetch, a cookie to re-issue, a
    root path, any error -- is declined and goes the ordinary way, to ``LaunchEndpoint``.
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
            cookie, purpose, fetch_site = _launch_headers(scope)
            session = p.sessions.loads(cookie_value(cookie, p.settings.session_cookie))
            if session is None or purpose or "/" in app_id or p.sessions.needs_touch(session):
                return False
            app = p.registry.current.app(app_id)
            if app is None or not app.visible_to(session.user.groups):
                return False
            target = _target(p, app, session.user)
        except Exception:  # the ordinary path answers it again, with its error handling
            return False
        headers = _launch(p, app, session.user, target, fetch_site) + self.security_headers
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return True


async def icon(request: Request) -> Response:
    """App icons: the admin's icons/ beside apps.yaml first, then the shipped ones."""
    name = request.path_params["name"]
    if not ICON_FILE.match(name):
        raise NotFound("No such icon.")
    p = context_of(request)
    for folder in (p.settings.apps_file.parent / "icons", ICON_DIR):
        path = folder / name
        if path.is_file():
            return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
    raise NotFound("No such icon.")


routes = [
    Route("/", home),
    Route("/launch/{app_id}", LaunchEndpoint(), methods=["GET", "HEAD"]),
    Route("/favourites/{app_id}", favourite, methods=["POST"]),
    Route("/requests", request_app, methods=["POST"]),
    Route("/icons/{name}", icon),
]

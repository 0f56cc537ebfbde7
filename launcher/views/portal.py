"""The tile grid and the launch redirect."""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from launcher.errors import NotFound
from launcher.registry import ICON_DIR, ICON_FILE
from launcher.views.common import (
    cookie_value,
    get_session,
    keep_alive,
    login_redirect,
    portal_of,
    render,
)

if TYPE_CHECKING:
    from launcher.app import Portal


async def home(request: Request) -> Response:
    session = get_session(request)
    if session is None:
        return login_redirect(request)
    p = portal_of(request)
    registry = p.registry.current
    tiles = [app for app in registry.visible_apps(session.user.groups) if not app.hidden]
    sections = [
        (registry.category(category_id), list(apps))
        for category_id, apps in groupby(tiles, key=lambda a: a.category)
    ]
    return render(
        request,
        "portal.html",
        {"sections": sections, "today": dt.datetime.now(dt.UTC).date(), "has_tiles": bool(tiles)},
    )


class LaunchEndpoint:
    """``GET /launch/{app_id}`` as a bare ASGI app: the hot path of the portal.

    Every click on a tile comes through here, so it skips Starlette's Request and Response
    objects on the way to the 303 (they cost more than the rest of the work) and keeps the
    rare paths -- sign-in needed, unknown app -- on the ordinary helpers. Nothing here waits
    for the database: the launch goes to the event store's buffer.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        p: Portal = scope["app"].state.portal
        cookie = purpose = fetch_site = b""
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value
            elif name in (b"sec-purpose", b"purpose"):
                purpose = value
            elif name == b"sec-fetch-site":
                fetch_site = value
        request = Request(scope, receive)
        session = p.sessions.loads(cookie_value(cookie, p.settings.session_cookie))
        request.state.session = session  # get_session() and the error page reuse it
        if session is None:
            await login_redirect(request)(scope, receive, send)
            return
        user = session.user
        registry = p.registry.current
        app = registry.app(scope["path_params"]["app_id"])
        if app is None or not app.visible_to(user.groups):
            raise NotFound("There is no app with this name, or it is not available to you.")
        if b"prefetch" in purpose or b"prerender" in purpose:
            # Answer a speculative load with something it cannot cache or reuse, so that the
            # real click reaches us and is counted exactly once.
            await Response(status_code=503, headers={"Cache-Control": "no-store"})(
                scope, receive, send
            )
            return
        target = p.launch_targets.get(registry, app, user, p.settings.oidc_issuer or "")
        source = "portal" if fetch_site == b"same-origin" else "direct"
        p.events.record_launch(app.id, user.user_id, user.department, source)
        p.metrics.launch_counter(app.id).inc()
        headers = [
            (b"location", target),
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
        ]
        if p.sessions.needs_touch(session):  # launching is activity: it moves the idle clock
            headers += keep_alive(Response(), request).raw_headers
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


async def icon(request: Request) -> Response:
    """App icons: the admin's icons/ beside apps.yaml first, then the shipped ones."""
    name = request.path_params["name"]
    if not ICON_FILE.match(name):
        raise NotFound("No such icon.")
    p = portal_of(request)
    for folder in (p.settings.apps_file.parent / "icons", ICON_DIR):
        path = folder / name
        if path.is_file():
            return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
    raise NotFound("No such icon.")


routes = [
    Route("/", home),
    Route("/launch/{app_id}", LaunchEndpoint(), methods=["GET", "HEAD"]),
    Route("/icons/{name}", icon),
]

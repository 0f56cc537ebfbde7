"""The tile grid and the launch redirect."""

from __future__ import annotations

import datetime as dt
from itertools import groupby

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from launcher.errors import NotFound
from launcher.registry import ICON_DIR, ICON_FILE, launch_url
from launcher.views.common import get_session, keep_alive, login_redirect, portal_of, render


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


def _is_prefetch(request: Request) -> bool:
    purpose = request.headers.get("sec-purpose") or request.headers.get("purpose") or ""
    return "prefetch" in purpose or "prerender" in purpose


async def launch(request: Request) -> Response:
    session = get_session(request)
    if session is None:
        return login_redirect(request)
    p = portal_of(request)
    app = p.registry.current.app(request.path_params["app_id"])
    if app is None or not app.visible_to(session.user.groups):
        raise NotFound("There is no app with this name, or it is not available to you.")
    if _is_prefetch(request):
        # Answer a speculative load with something it cannot cache or reuse, so that the
        # real click reaches us and is counted exactly once.
        return Response(status_code=503, headers={"Cache-Control": "no-store"})
    user = session.user
    target = launch_url(app, user.placeholders(), p.settings.oidc_issuer or "")
    source = "portal" if request.headers.get("sec-fetch-site") == "same-origin" else "direct"
    p.events.record_launch(app.id, user.user_id, user.department, source)
    p.metrics.launches.labels(app.id).inc()
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    return keep_alive(response, request)  # launching is activity: it moves the idle clock


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
    Route("/launch/{app_id}", launch),
    Route("/icons/{name}", icon),
]

"""The tile grid: tiles, favourites, "missing an app?" and icons (the launch redirect is in
launcher/views/launch.py)."""

from __future__ import annotations

import datetime as dt
import logging
from itertools import groupby

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from launcher import app_requests, personal
from launcher.errors import NotFound
from launcher.registry import ICON_DIR, ICON_FILE
from launcher.views import announcements
from launcher.views.common import (
    context_of,
    get_session,
    keep_alive,
    login_redirect,
    posted_form,
    render,
)

log = logging.getLogger(__name__)


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
    Route("/favourites/{app_id}", favourite, methods=["POST"]),
    Route("/requests", request_app, methods=["POST"]),
    Route("/icons/{name}", icon),
]

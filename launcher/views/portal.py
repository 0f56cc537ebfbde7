"""The tile grid: tiles, favourites, "missing an app?" and icons (the launch redirect is in
launcher/views/launch.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import re
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from launcher import app_requests, db, grid, i18n, personal, status
from launcher.errors import BadRequest, NotFound
from launcher.loop_reads import LoopReads, Unavailable
from launcher.registry import ICON_DIR, ICON_FILE
from launcher.static_files import static_url
from launcher.views import announcements
from launcher.views.common import (
    context_of,
    get_session,
    keep_alive,
    language,
    login_redirect,
    page_context,
    posted_form,
    render,
    safe_next,
)

log = logging.getLogger(__name__)


def _cache(request: Request) -> grid.PiecesCache:
    # Starlette's State keeps its attributes in a dict of its own: getattr, not __dict__
    # (a lookup in State.__dict__ never found the cache, so every page rebuilt every tile)
    cache: grid.PiecesCache | None = getattr(request.app.state, "grid_pieces", None)
    if cache is None:
        cache = request.app.state.grid_pieces = grid.PiecesCache()
    return cache


def _pieces(request: Request, lang: str) -> grid.Pieces:
    """The grid's pieces for the registry in use, this language and today: built on the first
    page after a reload (or at midnight, for the "new" badges), then shared by every page."""
    p = context_of(request)
    today = dt.datetime.now(dt.UTC).date()
    return _cache(request).get(
        p.templates.env, p.registry.current, lang, today, i18n.translator(lang)
    )


# Stand-ins for what differs between people in a frame (Frames); letters only, so escaping
# leaves them as they are, and nothing a page shows spells them
_NAME, _TOKEN, _GRID = "zqLauncherFrameName", "zqLauncherFrameToken", "zqLauncherFrameGrid"
_STAND_INS = re.compile(f"({_NAME}|{_TOKEN}|{_GRID})")
_NAME_UTF8, _TOKEN_UTF8, _GRID_UTF8 = _NAME.encode(), _TOKEN.encode(), _GRID.encode()


class Frames:
    """The grid page around the grid: base.html and portal.html rendered once per registry,
    language and header (the links to reports, admin and announcements), with stand-ins for
    the person's name, CSRF token and grid, which each page joins in. Rendering the frame
    through Jinja took about half of a page's CPU (bench/README.md, bench_grid.py).

    Only the plain page: ``/`` with no query (a search, "asked=1"), announcement or notice
    goes through Jinja as before. ``enabled`` off renders every page (tests compare the two)."""

    def __init__(self) -> None:
        self.enabled = True
        self._registry: object = None
        self._frames: dict[tuple[Any, ...], list[bytes]] = {}

    def page(
        self,
        request: Request,
        registry: object,
        key: tuple[Any, ...],
        context: dict[str, Any],
        grid_data: bytes,
    ) -> bytes:
        """The page, in UTF-8, for ``context`` (page_context's), whose frame ``key`` names;
        ``context["user"]``, ``csrf_token`` and the grid (``grid_data``, grid.Grid.data) are
        joined in. Frame and grid are kept encoded, as grid.Pieces says why."""
        if registry is not self._registry:
            self._registry, self._frames = registry, {}
        parts = self._frames.get(key)
        if parts is None:
            stand_in = {
                "user": dataclasses.replace(context["user"], name=_NAME),
                "csrf_token": _TOKEN,
                "grid": Markup(_GRID),  # noqa: S704 (a constant of letters)
                "request": request,
            }
            template = context_of(request).templates.get_template("portal.html")
            frame = _STAND_INS.split(template.render(context | stand_in))
            parts = self._frames[key] = [part.encode() for part in frame]
        values = {
            _NAME_UTF8: str(escape(context["user"].name)).encode(),
            _TOKEN_UTF8: str(escape(context["csrf_token"])).encode(),
            _GRID_UTF8: grid_data,
        }
        # even places: the frame's text; odd ones: the stand-ins, in the order they stand
        return b"".join(part if i % 2 == 0 else values[part] for i, part in enumerate(parts))


def _grid_reads(request: Request) -> anyio.CapacityLimiter:
    """The worker's limit on grid reads in threads at once (db.GRID_READ_THREADS), made in
    its event loop at the first page."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "grid_reads", None)
    if limiter is None:
        limiter = request.app.state.grid_reads = anyio.CapacityLimiter(db.GRID_READ_THREADS)
    return limiter


def _frames(request: Request) -> Frames:
    frames: Frames | None = getattr(request.app.state, "grid_frames", None)
    if frames is None:
        frames = request.app.state.grid_frames = Frames()
    return frames


async def home(request: Request) -> Response:
    session = get_session(request)
    if session is None:
        return login_redirect(request)
    p = context_of(request)
    registry = p.registry.current
    lang = language(request)
    allowed = _cache(request).allowed(registry, session.user.groups)
    personal_rows: tuple[list[str], list[str]] = ([], [])
    notices: dict[str, Any] = {}

    async def read_personal() -> None:
        nonlocal personal_rows
        user_id = session.user.user_id
        on_loop: LoopReads | None = getattr(request.app.state, "loop_reads", None)
        try:
            if on_loop is not None and on_loop.usable():  # PostgreSQL: no thread
                personal_rows = await personal.for_grid_on_loop(on_loop, user_id)
                return
            # once more after a lost connection: the page's first read after a database restart
            personal_rows = await anyio.to_thread.run_sync(
                db.retry_once,
                functools.partial(personal.for_grid, p.engine, user_id),
                limiter=_grid_reads(request),
            )
        except (sa.exc.SQLAlchemyError, Unavailable) as exc:  # the grid works without them
            log.warning("favourites and recent apps unavailable: %s", exc)

    async def read_banner() -> None:
        notices.update(await announcements.banner(request, session))

    quiet = announcements.quiet_banner(request, session)  # most pages: nothing to read for it
    if quiet is not None:
        notices = quiet
        await read_personal()
    else:
        # the page's database reads at the same time: on PostgreSQL each is a round trip
        async with anyio.create_task_group() as reads:
            reads.start_soon(read_personal)
            reads.start_soon(read_banner)
    starred, used = personal_rows
    recent = [a for a in used if a in allowed][: personal.RECENT_MAX]
    # most pages have no query: not parsed then
    params = request.query_params if request.scope["query_string"] else None
    query = params.get("q", "")[:200] if params else ""
    board: status.Board | None = getattr(request.app.state, "app_status", None)
    down = board.down() if board is not None else None  # memory only: read every 15 s
    mine = grid.join(_pieces(request, lang), allowed, starred, recent, query, down)
    page: dict[str, Any] = {
        "query": query,
        "shown": mine.shown,
        "has_tiles": bool(allowed),
        "asked": bool(params and params.get("asked") == "1"),
        **notices,
    }
    frames = _frames(request)
    plain = not (params or notices["announcements"] or notices["added_apps"])
    if not (frames.enabled and plain):
        return render(request, "portal.html", page | {"grid": mine.html})
    context = page_context(request, page)
    key = (
        lang,
        context["is_reviewer"],
        context["is_admin"],
        context["is_editor"],
        context["has_tiles"],
    )
    html = frames.page(request, registry, key, context, mine.data)
    response = HTMLResponse(html, headers={"Cache-Control": "no-store"})
    return keep_alive(response, request)


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


async def move_favourite(request: Request) -> Response:
    """``POST /favourites/{app_id}/move``: ``direction`` = ``up``/``down`` (the buttons), or
    ``to`` = the new place counted from 0 (drag and drop)."""
    posted = await posted_form(request, "direction", "to")
    if posted is None:
        return login_redirect(request)
    session, form = posted
    direction, to = form["direction"], form["to"]
    if direction not in ("up", "down", None) or (direction is None) == (to is None):
        raise BadRequest("Say where to: direction=up or down, or to=a place (0, 1, …).")
    if to is not None and not (isinstance(to, str) and to.isdigit() and len(to) <= 4):
        raise BadRequest("to must be a whole number from 0.")
    p = context_of(request)
    app_id, user_id = request.path_params["app_id"], session.user.user_id
    if to is not None:
        await anyio.to_thread.run_sync(personal.place_favourite, p.engine, user_id, app_id, int(to))
    else:
        await anyio.to_thread.run_sync(
            personal.move_favourite, p.engine, user_id, app_id, direction
        )
    # back to the moved tile's buttons, so that the next press moves it again
    return keep_alive(RedirectResponse(f"/#fav-{app_id}", status_code=303), request)


async def choose_language(request: Request) -> Response:
    """``POST /language``: ``lang`` (nl, en, …) remembered in a cookie, 303 back to ``next``.
    Signed in, the form carries the CSRF token; anyone else may switch too (the Origin check
    on every POST still applies): it changes nothing on the server."""
    session = get_session(request)
    if session is not None:
        posted = await posted_form(request, "lang", "next")
        assert posted is not None
        form = posted[1]
    else:
        async with request.form() as data:
            form = {"lang": data.get("lang"), "next": data.get("next")}
    lang = form["lang"]
    if lang not in i18n.LANGUAGES:
        raise BadRequest(f"lang must be one of {', '.join(i18n.LANGUAGES)}.")
    target = safe_next(form["next"] if isinstance(form["next"], str) else None)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        i18n.COOKIE,
        lang,
        max_age=i18n.COOKIE_AGE,
        path="/",
        secure=context_of(request).settings.https,
        httponly=True,
        samesite="lax",
    )
    return keep_alive(response, request) if session is not None else response


async def manifest(request: Request) -> Response:
    """``GET /manifest.webmanifest``: "Add to home screen" opens the portal like an app. Anyone
    may read it (browsers fetch it without cookies); it holds the portal's title, nothing more.
    There is no service worker: one could show a stale grid after sign-out."""
    p = context_of(request)
    title = p.registry.current.portal.title if p.registry.ready else "Launcher"
    body = {
        "name": title,
        "short_name": title if len(title) <= 12 else title.split()[0][:12],
        "lang": language(request),
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": "#f4f6f9",
        "theme_color": "#0b5cad",
        "icons": [
            {"src": static_url("app-icon.svg"), "sizes": "any", "type": "image/svg+xml"},
            *(
                {"src": static_url(f"app-icon-{n}.png"), "sizes": f"{n}x{n}", "type": "image/png"}
                for n in (192, 512)
            ),
            {
                "src": static_url("app-icon-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
        ],
    }
    return JSONResponse(
        body,
        media_type="application/manifest+json",
        headers={"Cache-Control": "public, max-age=3600", "Vary": "Accept-Language, Cookie"},
    )


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
    Route("/favourites/{app_id}/move", move_favourite, methods=["POST"]),
    Route("/requests", request_app, methods=["POST"]),
    Route("/language", choose_language, methods=["POST"]),
    Route("/icons/{name}", icon),
    Route("/manifest.webmanifest", manifest),
]

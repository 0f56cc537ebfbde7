"""``GET /display/{token}``: the narrowcasting page for a TV in a hallway or staff room.

It needs no session and sets no cookie (the page never looks at one), shows no person, and
refreshes itself with ``<meta http-equiv="refresh">`` (no script: the CSP stays strict). When
there are more announcements than fit on the screen, each refresh shows the next page of them.

The displays come from ``app.state.displays``: a callable returning the current
:class:`~launcher.engage.displays.Display` list (so that a registry reload changes them);
without it no token opens anything.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from launcher import i18n
from launcher.engage import displays
from launcher.engage.displays import Board, Display
from launcher.errors import NotFound
from launcher.views.common import context_of

log = logging.getLogger(__name__)
REFRESH = 30  # seconds each screenful stays
PER_SCREEN = 3  # announcements that fit at 1920x1080 in large type

DisplaySource = Callable[[], Sequence[Display]]


def displays_of(request: Request) -> Sequence[Display]:
    source: DisplaySource | None = getattr(request.app.state, "displays", None)
    return source() if source is not None else ()


async def display(request: Request) -> Response:
    found = displays.find(displays_of(request), request.path_params["token"])
    if found is None:
        raise NotFound("There is no page at this address.")
    p = context_of(request)
    registry = p.registry.current
    today = dt.datetime.now(p.registry.timezone()).date()
    try:
        content = await anyio.to_thread.run_sync(
            displays.board, p.engine, registry, found, today, p.settings.report_min_group
        )
    except sa.exc.SQLAlchemyError as exc:  # keep the screen up; the next refresh tries again
        log.warning("display %s: database unavailable: %s", found.id, exc)
        content = Board([], [])
    pages = max(1, -(-len(content.announcements) // PER_SCREEN))
    try:
        page = int(request.query_params.get("page", "0")) % pages
    except ValueError:
        page = 0
    lang = registry.portal.default_language
    response = p.templates.TemplateResponse(
        request,
        "display.html",
        {
            "lang": lang,
            "t": i18n.translator(lang),
            "title": registry.portal.title,
            "display": found,
            "announcements": content.announcements[page * PER_SCREEN : (page + 1) * PER_SCREEN],
            "apps": content.apps,
            "refresh": REFRESH,
            "next_url": f"{request.url.path}?page={(page + 1) % pages}",
            "page": page,
            "pages": pages,
        },
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


routes = [Route("/display/{token}", display)]

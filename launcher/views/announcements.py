"""Announcements: the editors' page, the notices above the grid, and dismissing them.

Above the grid stand the announcements for this person and, when an admin has added an app
they asked for ("missing an app?", launcher/app_requests.py), a short notice that it is there.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from launcher import app_requests, db, i18n
from launcher.audit import audit
from launcher.auth.session import Session
from launcher.engage import announcements
from launcher.errors import NotFound
from launcher.views.common import (
    context_of,
    keep_alive,
    language,
    login_redirect,
    member_session,
    posted_form,
    render,
)

log = logging.getLogger(__name__)
FIELDS = ("title", "body", "link", "starts", "ends", "groups", "language")


def today(request: Request) -> dt.date:
    """Today in the portal's time zone: announcement windows are the editor's dates."""
    return dt.datetime.now(context_of(request).registry.timezone()).date()


def is_editor(request: Request, session: Session | None) -> bool:
    s = context_of(request).settings
    return bool(session and session.user.in_any([*s.editor_groups, *s.admin_groups]))


def _editor_session(request: Request) -> Session | None:
    s = context_of(request).settings
    groups = [*s.editor_groups, *s.admin_groups]
    return member_session(request, groups, "This page is for the portal's editors.")


def quiet_banner(request: Request, session: Session) -> dict[str, Any] | None:
    """The grid page's notices when there is nothing to read for them: this worker's copies
    (launcher/engage/announcements.py, launcher/app_requests.py) are fresh and hold nothing for
    this person, as on most pages. None when :func:`banner` has to ask the database."""
    p = context_of(request)
    lang = language(request)
    items = p.announcements.peek(today(request))
    if items is None or p.notices.may_have(session.user.user_id) is not False:
        return None
    groups = frozenset(session.user.groups)
    if any(i.for_audience(groups) and i.in_language(lang) for i in items):
        return None
    return _banner(request, session, lang, [], [])


async def banner(request: Request, session: Session) -> dict[str, Any]:
    """The grid page's notices: the announcements this person sees now (recorded as seen) and
    the apps they asked for that were added since, read in one thread. Without a database the
    grid renders without them."""
    p = context_of(request)
    lang = language(request)
    user = session.user
    day = today(request)
    tiles = {app.id for app in p.registry.current.visible_apps(user.groups) if not app.hidden}

    def reads() -> tuple[list[announcements.Item], list[str]]:
        news: list[announcements.Item] = []
        told: list[str] = []
        try:
            news = db.retry_once(
                lambda: announcements.for_user(
                    p.engine, user.user_id, user.groups, lang, day, p.announcements
                )
            )
        except sa.exc.SQLAlchemyError as exc:
            log.warning("announcements unavailable: %s", exc)
        try:
            told = db.retry_once(
                lambda: app_requests.notices(p.engine, user.user_id, tiles, pending=p.notices)
            )
        except sa.exc.SQLAlchemyError as exc:
            log.warning("request notices unavailable: %s", exc)
        return news, told

    shown, added_ids = await anyio.to_thread.run_sync(reads)
    return _banner(request, session, lang, shown, added_ids)


def _banner(
    request: Request,
    session: Session,
    lang: str,
    shown: list[announcements.Item],
    added_ids: list[str],
) -> dict[str, Any]:
    registry = context_of(request).registry.current
    return {
        "announcements": shown,
        "added_apps": [app for app in map(registry.app, added_ids) if app is not None],
        "is_editor": is_editor(request, session),
        "t": i18n.translator(lang),
    }


async def _page(
    request: Request, *, form: dict[str, Any] | None = None, error: Any = None
) -> Response:
    p = context_of(request)
    try:
        listed = await anyio.to_thread.run_sync(
            announcements.listing, p.engine, today(request), p.settings.report_min_group
        )
        unavailable = False
    except sa.exc.SQLAlchemyError as exc:
        log.warning("announcements unavailable: %s", exc)
        listed, unavailable = [], True
    return render(
        request,
        "announcements.html",
        {
            "t": i18n.translator(language(request)),
            "listed": listed,
            "unavailable": unavailable,
            "min_group": p.settings.report_min_group,
            "form": form or {},
            "error": error,
            "done": request.query_params.get("done"),
            "today": today(request),
            "is_editor": True,
        },
        status=400 if error else 200,
    )


async def editor_page(request: Request) -> Response:
    """``GET /admin/announcements``: the list with each one's reach, and the form."""
    if _editor_session(request) is None:
        return login_redirect(request)
    return await _page(request)


async def publish(request: Request) -> Response:
    """``POST /admin/announcements``: store one; bad input is a 400 that names the field."""
    posted = await posted_form(request, *FIELDS) if _editor_session(request) else None
    if posted is None:
        return login_redirect(request)
    session, form = posted
    try:
        draft = announcements.parse(form)
    except announcements.InvalidField as exc:
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        return await _page(request, form=values, error=exc)
    p = context_of(request)
    new_id = await anyio.to_thread.run_sync(
        announcements.create, p.engine, draft, session.user.user_id
    )
    p.announcements.clear()  # this worker's grids show it at once, the others within seconds
    audit(
        "announcement_written",
        user=session.user.user_id,
        announcement=new_id,
        groups=",".join(draft.groups),
    )
    return keep_alive(RedirectResponse("/admin/announcements?done=published", 303), request)


async def delete(request: Request) -> Response:
    """``POST /admin/announcements/{id}/delete``."""
    posted = await posted_form(request) if _editor_session(request) else None
    if posted is None:
        return login_redirect(request)
    announcement_id: int = request.path_params["id"]
    p = context_of(request)
    if not await anyio.to_thread.run_sync(announcements.delete, p.engine, announcement_id):
        raise NotFound("There is no such announcement.")
    p.announcements.clear()
    audit("announcement_deleted", user=posted[0].user.user_id, announcement=announcement_id)
    return keep_alive(RedirectResponse("/admin/announcements?done=deleted", 303), request)


async def dismiss(request: Request) -> Response:
    """``POST /announcements/{id}/dismiss``: hide one announcement for this person."""
    posted = await posted_form(request)
    if posted is None:
        return login_redirect(request)
    user = posted[0].user
    p = context_of(request)
    await anyio.to_thread.run_sync(
        announcements.dismiss, p.engine, request.path_params["id"], user.user_id, user.groups
    )
    return keep_alive(RedirectResponse("/", status_code=303), request)


async def dismiss_added(request: Request) -> Response:
    """``POST /requests/notices/dismiss``: the notice that asked-for apps are here, read."""
    posted = await posted_form(request)
    if posted is None:
        return login_redirect(request)
    p = context_of(request)
    await anyio.to_thread.run_sync(app_requests.clear_notices, p.engine, posted[0].user.user_id)
    return keep_alive(RedirectResponse("/", status_code=303), request)


routes = [
    Route("/admin/announcements", editor_page),
    Route("/admin/announcements", publish, methods=["POST"]),
    Route("/admin/announcements/{id:int}/delete", delete, methods=["POST"]),
    Route("/announcements/{id:int}/dismiss", dismiss, methods=["POST"]),
    Route("/requests/notices/dismiss", dismiss_added, methods=["POST"]),
]

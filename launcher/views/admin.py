"""The admin page: the registry in use, the errors of the file on disk, and the requests for
apps that employees miss -- open ones to dismiss or mark as added, and the history of both."""

from __future__ import annotations

import datetime as dt
import logging

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from launcher import app_requests, i18n, status
from launcher.audit import audit
from launcher.auth.session import Session
from launcher.errors import BadRequest
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


def _admin_session(request: Request) -> Session | None:
    admins = context_of(request).settings.admin_groups
    return member_session(request, admins, "This page is for portal administrators.")


async def admin(request: Request) -> Response:
    session = _admin_session(request)
    if session is None:
        return login_redirect(request)
    p = context_of(request)
    try:
        requests = await anyio.to_thread.run_sync(app_requests.summary, p.engine)
        history = await anyio.to_thread.run_sync(app_requests.history, p.engine)
        requests_error = False
    except sa.exc.SQLAlchemyError as exc:
        log.warning("app requests unavailable: %s", exc)
        requests, history, requests_error = [], [], True
    holder = p.registry
    board: status.Board = request.app.state.app_status
    try:  # fresh from the table: what every worker and replica found
        states = await anyio.to_thread.run_sync(status.read, p.engine)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("app status unavailable: %s", exc)
        states = board.states()
    lang = language(request)
    now = dt.datetime.now(dt.UTC)
    return render(
        request,
        "admin.html",
        {
            "registry": holder.current if holder.ready else None,
            "errors": holder.errors,
            "path": holder.path,
            "loaded_at": holder.loaded_at,
            "requests": requests,
            "requests_error": requests_error,
            "history": history,
            "me": session.user.user_id,
            "done": request.query_params.get("done"),
            "t": i18n.translator(lang),
            "checks": status.overview(board.targets(), states),
            "ago": lambda since: i18n.format_ago((now - since).total_seconds(), lang),
        },
    )


async def dismiss_request(request: Request) -> Response:
    """``POST /admin/requests/dismiss``: an admin will not add the app; the requests go to
    the history."""
    posted = await posted_form(request, "key") if _admin_session(request) else None
    if posted is None:
        return login_redirect(request)
    session, key = posted[0], posted[1]["key"]
    if not isinstance(key, str) or not key:
        raise BadRequest("key: say which request to dismiss.")
    p = context_of(request)
    people = await anyio.to_thread.run_sync(
        app_requests.dismiss, p.engine, key, session.user.user_id
    )
    if people:
        audit("app_request_dismissed", user=session.user.user_id, request=key, people=people)
    return keep_alive(RedirectResponse("/admin?done=dismissed#requests", 303), request)


async def added_request(request: Request) -> Response:
    """``POST /admin/requests/added``: the app is in the registry now (form field ``app_id``);
    the people who asked will see so on their grid."""
    posted = await posted_form(request, "key", "app_id") if _admin_session(request) else None
    if posted is None:
        return login_redirect(request)
    session, form = posted
    key, app_id = form["key"], form["app_id"]
    if not isinstance(key, str) or not key:
        raise BadRequest("key: say which request was added.")
    p = context_of(request)
    app = p.registry.current.app(app_id) if isinstance(app_id, str) else None
    if app is None:
        raise BadRequest("app_id: choose an app that is in the registry.")
    if app.hidden:
        raise BadRequest(f"app_id: {app.id} is hidden, so nobody would find its tile.")
    people = await anyio.to_thread.run_sync(
        app_requests.mark_added, p.engine, key, app.id, session.user.user_id
    )
    p.notices.clear()  # the askers' next grid on this worker tells them; others within seconds
    if people:
        audit(
            "app_request_added", user=session.user.user_id, request=key, app=app.id, people=people
        )
    return keep_alive(RedirectResponse("/admin?done=added#requests", 303), request)


routes = [
    Route("/admin", admin),
    Route("/admin/requests/dismiss", dismiss_request, methods=["POST"]),
    Route("/admin/requests/added", added_request, methods=["POST"]),
]

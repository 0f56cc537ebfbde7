"""The admin page: the registry in use, the errors of the file on disk, and the requests for
apps that employees miss."""

from __future__ import annotations

import logging

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from launcher import app_requests
from launcher.audit import audit
from launcher.auth.session import Session
from launcher.views.common import (
    context_of,
    keep_alive,
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
        requests_error = False
    except sa.exc.SQLAlchemyError as exc:
        log.warning("app requests unavailable: %s", exc)
        requests, requests_error = [], True
    holder = p.registry
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
        },
    )


async def dismiss_request(request: Request) -> Response:
    """``POST /admin/requests/dismiss``: an admin is done with the requests for one app."""
    posted = await posted_form(request, "key") if _admin_session(request) else None
    if posted is None:
        return login_redirect(request)
    key = posted[1]["key"]
    p = context_of(request)
    if isinstance(key, str):
        await anyio.to_thread.run_sync(app_requests.dismiss, p.engine, key)
        audit("app_request_dismissed", user=posted[0].user.user_id, request=key)
    return keep_alive(RedirectResponse("/admin#requests", status_code=303), request)


routes = [
    Route("/admin", admin),
    Route("/admin/requests/dismiss", dismiss_request, methods=["POST"]),
]

"""The admin page: the registry in use and the errors of the file on disk."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from launcher.errors import Forbidden
from launcher.views.common import get_session, login_redirect, portal_of, render


async def admin(request: Request) -> Response:
    session = get_session(request)
    if session is None:
        return login_redirect(request)
    p = portal_of(request)
    if not session.user.in_any(p.settings.admin_groups):
        raise Forbidden("This page is for portal administrators.")
    holder = p.registry
    return render(
        request,
        "admin.html",
        {
            "registry": holder.current if holder.ready else None,
            "errors": holder.errors,
            "path": holder.path,
            "loaded_at": holder.loaded_at,
        },
    )


routes = [Route("/admin", admin)]

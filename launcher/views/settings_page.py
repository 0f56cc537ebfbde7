"""Personal settings (the weekly digest) and the digest's unsubscribe link."""

from __future__ import annotations

import logging

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from launcher import i18n
from launcher.engage import subscriptions
from launcher.errors import BadRequest, NotFound
from launcher.views.common import (
    context_of,
    get_session,
    keep_alive,
    language,
    login_redirect,
    posted_form,
    render,
)

log = logging.getLogger(__name__)


async def settings_page(request: Request) -> Response:
    """``GET /settings``."""
    session = get_session(request)
    if session is None:
        return login_redirect(request)
    p = context_of(request)
    try:
        address = await anyio.to_thread.run_sync(
            subscriptions.address, p.engine, session.user.user_id
        )
        unavailable = False
    except sa.exc.SQLAlchemyError as exc:
        log.warning("digest setting unavailable: %s", exc)
        address, unavailable = None, True
    return render(
        request,
        "settings.html",
        {
            "t": i18n.translator(language(request)),
            "address": address,
            "unavailable": unavailable,
            "saved": request.query_params.get("saved") == "1",
        },
    )


async def digest_setting(request: Request) -> Response:
    """``POST /settings/digest``: ``digest`` = ``weekly`` or ``off``."""
    posted = await posted_form(request, "digest")
    if posted is None:
        return login_redirect(request)
    session, choice = posted[0], posted[1]["digest"]
    p = context_of(request)
    if choice == "weekly":
        await anyio.to_thread.run_sync(
            subscriptions.subscribe, p.engine, session.user, language(request)
        )
    elif choice == "off":
        await anyio.to_thread.run_sync(subscriptions.unsubscribe, p.engine, session.user.user_id)
    else:
        raise BadRequest("digest: choose weekly or off.")
    return keep_alive(RedirectResponse("/settings?saved=1", status_code=303), request)


def _user_of(request: Request) -> str:
    secret = context_of(request).settings.secret()
    user_id = subscriptions.user_of(secret, request.path_params["token"])
    if user_id is None:
        raise NotFound("This unsubscribe link is not valid.")
    return user_id


async def unsubscribe_page(request: Request) -> Response:
    """``GET /unsubscribe/{token}``: only a confirm button (a GET never changes anything:
    mail scanners follow links)."""
    _user_of(request)
    context = {"t": i18n.translator(language(request)), "done": False}
    return render(request, "unsubscribe.html", context)


async def unsubscribe(request: Request) -> Response:
    """``POST /unsubscribe/{token}``: one-click unsubscribe (RFC 8058). The mail provider's
    POST has no cookie and wants a 2xx, so this answers 200 with a page, not a redirect."""
    user_id = _user_of(request)
    p = context_of(request)
    await anyio.to_thread.run_sync(subscriptions.unsubscribe, p.engine, user_id)
    context = {"t": i18n.translator(language(request)), "done": True}
    return render(request, "unsubscribe.html", context)


routes = [
    Route("/settings", settings_page),
    Route("/settings/digest", digest_setting, methods=["POST"]),
    Route("/unsubscribe/{token}", unsubscribe_page),
    Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
]

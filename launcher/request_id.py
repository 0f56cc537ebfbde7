"""Request ids: one per request, sent back as ``X-Request-ID`` and written on its log lines.

The reverse proxy in front usually sets ``X-Request-ID`` (nginx ``$request_id``, Traefik,
Envoy), so that its access log and ours can be joined; an incoming id is kept only when it is
well-formed -- at most 64 characters of ``[A-Za-z0-9._-]``. Anything else (a newline that
would forge a log line, 10 KB of padding) is replaced by a fresh random id, never echoed.

The id lives in a context variable that :class:`launcher.logs.LogFormatter` reads, so every
log line written while the request runs carries it, whichever module writes it. A request that
never passes through :class:`RequestId` simply logs no id (``null``); nothing breaks.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
SCOPE_KEY = "launcher.request_id"  # set once per request: a second RequestId passes it on
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_current: ContextVar[str | None] = ContextVar("launcher_request_id", default=None)


def current() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return _current.get()


def new_id() -> str:
    return secrets.token_hex(16)


def from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's (the proxy's) ``X-Request-ID`` when well-formed, else a fresh id."""
    for name, value in headers:
        if name == HEADER:  # ASGI header names are lower case
            # only the first: a second header is no reason to trust the first one less
            return value.decode("ascii") if _WELL_FORMED.fullmatch(value) else new_id()
    return new_id()


class RequestId:
    """Pure ASGI middleware: binds the request id for the logs and adds it to the response.

    Idempotent (the id is kept in the scope), so it may wrap an app that wraps it again.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        request_id = from_headers(scope["headers"])
        scope[SCOPE_KEY] = request_id
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # a new list: responses may share one prebuilt header list between requests
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = _current.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)

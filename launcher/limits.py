"""Request bodies: a size cap per route and the content types each route takes, checked before
Starlette parses a byte.

Without it, ``request.form()`` reads whatever arrives: a 200 MB multipart post to the anonymous
back-channel logout endpoint is spooled to disk. Here a body is refused with 413 when its
``Content-Length`` is over the route's cap, or, sent chunked, as soon as the bytes received pass
it; and with 415 when its content type is one the route does not take. Every form of the portal
is ``application/x-www-form-urlencoded``, and none needs more than a few KB; the cap leaves room.
The reverse proxy should cap bodies too (README, *Running it for real*), so that a slow upload
never ties up a worker at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from launcher.errors import LauncherError

FORM = "application/x-www-form-urlencoded"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(LauncherError):
    status = 413
    title = "Request too large"


class UnsupportedBody(LauncherError):
    status = 415
    title = "Unsupported request"


@dataclass(frozen=True)
class BodyRule:
    max_bytes: int
    content_types: frozenset[str] = frozenset({FORM})


FORMS = BodyRule(64 * 1024)  # 64 KB: the longest form (an announcement) is a few KB
# A logout token is a signed JWT of a few hundred bytes to 2 KB; the endpoint is anonymous.
BACKCHANNEL = BodyRule(8 * 1024)
RULES: Mapping[str, BodyRule] = {"/auth/backchannel-logout": BACKCHANNEL}


class BodyLimit:
    """Pure ASGI middleware enforcing :data:`RULES` (``default`` for every other path)."""

    def __init__(
        self,
        app: ASGIApp,
        on_error: Callable[[Request, LauncherError], Response],
        rules: Mapping[str, BodyRule] = RULES,
        default: BodyRule = FORMS,
    ) -> None:
        self.app = app
        self.on_error = on_error
        self.rules = rules
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.rules.get(scope["path"], self.default)
        limit = rule.max_bytes
        length, content_type, chunked = _body_headers(scope)
        error: LauncherError | None = None
        if length is not None and length > limit:
            error = BodyTooLarge(
                f"This request is too large (at most {limit:,} bytes).",
                detail=f"Content-Length {length} > {limit}",
            )
        elif (
            (length or chunked)
            and scope["method"] not in SAFE_METHODS
            and content_type not in rule.content_types
        ):
            error = UnsupportedBody(
                "This kind of request is not accepted here.",
                detail=f"Content-Type {content_type!r}",
            )
        if error is not None:
            response = self.on_error(Request(scope), error)
            response.headers["Connection"] = "close"  # the body it did not read goes with it
            await response(scope, receive, send)
            return
        await self.app(scope, _capped(receive, limit), send)


def _body_headers(scope: Scope) -> tuple[int | None, str | None, bool]:
    """Content-Length (None when absent or unreadable: then only streaming counts), the media
    type of Content-Type, and whether the body is chunked."""
    length: int | None = None
    content_type: str | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"content-type":
            content_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return length, content_type, chunked


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive``, raising BodyTooLarge once more than ``limit`` body bytes have arrived
    (a chunked body, or one longer than its Content-Length said). The error handler answers 413
    when the handler reading the body has not started its response."""
    received = 0

    async def capped_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(
                    f"This request is too large (at most {limit:,} bytes).",
                    detail=f"body passed {limit} bytes while streaming",
                )
        return message

    return capped_receive

"""CSRF protection, in two layers.

1. Every unsafe request (POST, …) is refused when the browser says it came from another site:
   ``Sec-Fetch-Site: cross-site``/``same-site``, or an ``Origin`` that is not ours
   (as Datasette and Go 1.25's CrossOriginProtection do). Server-to-server endpoints that
   carry their own proof (the back-channel logout token) are exempt.
2. Forms that act on a session also carry a token bound to that session (``csrf_token``),
   for browsers that send neither header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from launcher.errors import CsrfFailed

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FIELD = "csrf_token"


def token_for(secret: str, sid: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()[:32]


def check_token(secret: str | Sequence[str], sid: str, submitted: object) -> None:
    """``secret`` may be the list of keys (Settings.secret_keys()): a form rendered before a
    key rotation still goes through while the old key is a fallback."""
    keys = [secret] if isinstance(secret, str) else secret
    if not isinstance(submitted, str) or not any(
        hmac.compare_digest(token_for(key, sid), submitted) for key in keys
    ):
        raise CsrfFailed("This form has expired. Go back, reload the page and try again.")


def cross_origin_reason(headers: Headers, origin: str) -> str | None:
    """Why a request with these headers is cross-site, or None when it is not."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {fetch_site}"
    sent_origin = headers.get("origin")
    if sent_origin is not None and sent_origin != origin:
        return f"Origin: {sent_origin}"
    return None


class CrossOriginGuard:
    """Pure ASGI middleware for layer 1; answers 403 before the app sees the request."""

    def __init__(
        self,
        app: ASGIApp,
        origin: str,
        exempt: frozenset[str],
        on_error: Callable[[Request, CsrfFailed], Response],
    ) -> None:
        self.app = app
        self.origin = origin
        self.exempt = exempt
        self.on_error = on_error

    def _exempt(self, path: str) -> bool:
        """An exact path, or one under an exempt prefix (an entry that ends in "/")."""
        return path in self.exempt or any(
            path.startswith(p) for p in self.exempt if p.endswith("/")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and not self._exempt(scope["path"])
        ):
            reason = cross_origin_reason(Headers(scope=scope), self.origin)
            if reason is not None:
                error = CsrfFailed(
                    "This request came from another site and was refused.", detail=reason
                )
                response = self.on_error(Request(scope, receive), error)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

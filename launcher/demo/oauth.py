"""OAuth 2.0 on the wire, for the development provider: parameters, client credentials, PKCE,
and the error answers of RFC 6749 and RFC 6750."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from starlette.responses import JSONResponse, RedirectResponse, Response

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
PKCE = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 4.1: verifier (and S256 challenge)


class OAuthError(Exception):
    """A token endpoint error, answered as RFC 6749 5.2 JSON."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error)
        self.error, self.description, self.status = error, description, status

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status == 401:
            headers["www-authenticate"] = 'Basic realm="devidp"'
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, self.status, headers=headers)


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier`` (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def params(items: Iterable[tuple[str, Any]]) -> tuple[dict[str, str], set[str]]:
    """First value of each parameter, and the names sent twice or not as text."""
    values: dict[str, str] = {}
    bad: set[str] = set()
    for name, value in items:
        if name in values or not isinstance(value, str):
            bad.add(name)
        else:
            values[name] = value
    return values, bad


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """Client id and secret from an ``Authorization: Basic`` header, or None without one."""
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", f"unsupported authorization scheme {scheme!r}", 401)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError both are
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    return client_id, secret


def bearer_error(challenge: str, error: str, description: str) -> Response:
    body = {"error": error, "error_description": description}
    headers = {**NO_STORE, "www-authenticate": challenge}
    return JSONResponse(body, 401, headers=headers)


def redirect(url: str, query: Mapping[str, str]) -> Response:
    """A 302 to ``url`` with ``query`` added to any query it has."""
    if query:
        url += ("&" if urlsplit(url).query else "?") + urlencode(query, quote_via=quote)
    return RedirectResponse(url, 302, headers=NO_STORE)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"

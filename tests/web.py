"""Reading responses as a browser or an attacker would: cookies, CSRF tokens, markup, headers."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.routing import BaseRoute, Mount, Route

from launcher.auth.oidc import BACKCHANNEL_EVENT
from launcher.settings import Settings

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'
XSS_IMG = "<img src=x onerror=alert(1)>"
API = "/api/v1/reports/launches"


def client() -> httpx.Client:
    """A browser of its own (cookie jar) for a live server."""
    return httpx.Client(follow_redirects=False, timeout=10)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def payload(cookie: str) -> list[Any]:
    """The JSON inside a session cookie (base64url payload, '.', signature)."""
    data, dot, signature = cookie.rpartition(".")
    assert dot and data and signature
    decoded: list[Any] = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    return decoded


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def raw_header_names(url: str, path: str, cookie: str) -> list[str]:
    """The header names of a response as sent, repeats included (httpx merges a repeated
    Content-Length; strict parsers such as wrk's and some proxies refuse the response)."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nCookie: {cookie}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return [line.split(":", 1)[0].lower() for line in head[1:]]


def login_set_cookie(response: httpx.Response, prefix: str) -> tuple[str, dict[str, str]]:
    """The Set-Cookie of the one login attempt ``response`` starts (named ``prefix-<hash>``)."""
    names = [
        h.partition("=")[0].strip()
        for h in response.headers.get_list("set-cookie")
        if h.startswith(prefix + "-")
    ]
    assert len(names) == 1, names
    return set_cookie(response, names[0])


def set_cookie(response: httpx.Response, name: str) -> tuple[str, dict[str, str]]:
    """The value and the attributes (lower-case names) of the Set-Cookie for ``name``."""
    for header in response.headers.get_list("set-cookie"):
        cookie_name, _, rest = header.partition("=")
        if cookie_name.strip() == name:
            value, *attributes = rest.split(";")
            parsed: dict[str, str] = {}
            for attribute in attributes:
                key, _, val = attribute.strip().partition("=")
                parsed[key.lower()] = val
            return value, parsed
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


def launch_rows(database_url: str) -> list[str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT app_id FROM launch_event")).scalars())
    finally:
        engine.dispose()


def same_site_path(location: str, base: str) -> bool:
    resolved = urlsplit(urljoin(base + "/somewhere/page", location))
    return (
        location.startswith("/")
        and not location.startswith("//")
        and "\\" not in location
        and not any(ord(c) < 0x21 or c == "\x7f" for c in location)
        and resolved.netloc == urlsplit(base).netloc
        and resolved.scheme == urlsplit(base).scheme
    )


def post_paths(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[str]:
    for route in routes:
        if isinstance(route, Mount):
            yield from post_paths(route.routes, prefix + route.path)
        elif isinstance(route, Route) and route.methods and "POST" in route.methods:
            yield prefix + route.path


class _Audit(HTMLParser):
    """Markup that would run script, or that a strict CSP (no 'unsafe-inline') would block."""

    def __init__(self, styles: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.styles = styles
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…> event handler")
            if name in ("href", "src", "action", "formaction") and (
                value or ""
            ).strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if name == "style" and self.styles:
                self.problems.append(f"<{tag} style=…> inline style")
        if tag == "script" and not values.get("src"):
            self.problems.append("inline <script> without src")
        if tag == "script" and not (values.get("src") or "").startswith("/static/"):
            self.problems.append(f"script from elsewhere: {values.get('src')!r}")
        if tag == "style" and self.styles:
            self.problems.append("inline <style>")
        if tag == "img" and values.get("src") == "x":
            self.problems.append("injected <img src=x>")

    handle_startendtag = handle_starttag


def audit(page: str, styles: bool = True) -> list[str]:
    parser = _Audit(styles)
    parser.feed(page)
    parser.close()
    return parser.problems


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def header_problems(response: httpx.Response, https: bool = False) -> list[str]:
    problems: list[str] = []
    policies = response.headers.get_list("content-security-policy")
    if len(policies) != 1:
        return [f"expected one Content-Security-Policy, got {policies!r}"]
    csp = directives(policies[0])
    script = csp.get("script-src", csp.get("default-src"))
    if not script:
        problems.append("CSP has neither script-src nor default-src")
    elif {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(script):
        problems.append(f"script-src too wide: {script}")
    if csp.get("frame-ancestors") != ["'none'"]:
        problems.append(f"frame-ancestors {csp.get('frame-ancestors')}")
    if csp.get("object-src") != ["'none'"]:
        problems.append(f"object-src {csp.get('object-src')}")
    if response.headers.get("x-content-type-options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    referrer = response.headers.get("referrer-policy", "")
    safe = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
    if referrer not in safe:
        problems.append(f"Referrer-Policy {referrer!r}")
    hsts = response.headers.get("strict-transport-security")
    if https and (hsts is None or "max-age=" not in hsts or hsts.endswith("max-age=0")):
        problems.append(f"HSTS {hsts!r} on https")
    if not https and hsts is not None:
        problems.append("HSTS on plain http")
    return problems


def logout_token(key: RSAKey, settings: Settings, **claims: Any) -> str:
    """A back-channel logout token for the portal of ``settings``, signed with ``key``, valid
    now unless ``claims`` say otherwise."""
    now = int(time.time())
    body = {
        "iss": settings.oidc_issuer,
        "aud": settings.oidc_client_id,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "events": {BACKCHANNEL_EVENT: {}},
        **claims,
    }
    return jwt.encode(
        {"alg": "RS256", "kid": key.kid, "typ": "logout+jwt"}, body, key, algorithms=["RS256"]
    )

"""Sessions and web security over real HTTP: DESIGN.md, "Security" and the route table.

Most tests run the demo portal (portal + development provider) on SQLite; the ones where the
database carries the behaviour (sign-out seen by another worker) run on both databases. Where
a test needs its own registry, users or routes it builds the same app as ``launcher demo``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import html
import json
import re
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx
import pytest
import sqlalchemy as sa
import yaml
from joserfc import jwt
from joserfc.jwk import RSAKey
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from launcher.app import create_app
from launcher.auth.oidc import BACKCHANNEL_EVENT
from launcher.auth.session import SessionCodec
from launcher.demo.command import demo_settings
from launcher.demo.devidp import DEMO_USERS, DemoUser, DevClient, create_devidp
from launcher.registry import load_registry
from launcher.settings import Settings
from tests.conftest import EXAMPLE_APPS, LiveServer, free_port, sign_in

with warnings.catch_warnings():
    # Starlette >= 1.x prefers the "httpx2" fork and warns at import; httpx works as before.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

STAFF = next(u for u in DEMO_USERS if u.groups == ("staff",))
REVIEWER = next(u for u in DEMO_USERS if "launcher-reviewers" in u.groups)
ADMIN = next(u for u in DEMO_USERS if "launcher-admins" in u.groups)
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'
XSS_IMG = "<img src=x onerror=alert(1)>"
API = "/api/v1/reports/launches"

Demo = tuple[LiveServer, Settings]


# --- helpers ------------------------------------------------------------------------------
@dataclasses.dataclass
class Live:
    """A portal of our own making, served like ``launcher demo``."""

    server: LiveServer
    settings: Settings
    app: Starlette
    idp: Any  # the development provider (app.state.devidp)

    @property
    def url(self) -> str:
        return self.server.url


def _dev_client(settings: Settings) -> DevClient:
    assert settings.oidc_client_id and settings.oidc_client_secret
    return DevClient(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value(),
        redirect_uris=(settings.redirect_uri,),
        post_logout_redirect_uris=(f"{settings.base_url}/signed-out",),
    )


@contextlib.contextmanager
def _portal(
    tmp_path: Path,
    database_url: str,
    *,
    users: Sequence[DemoUser] = DEMO_USERS,
    apps_file: Path = EXAMPLE_APPS,
    extra_routes: Sequence[BaseRoute] = (),
) -> Iterator[Live]:
    """The demo app (cli.build_demo_app) with our own users, registry or extra routes."""
    port = free_port()
    settings = demo_settings(
        "127.0.0.1",
        port,
        var=tmp_path / "var",
        database_url=database_url,
        apps_file=apps_file,
        spool_dir=tmp_path / "spool",
    )
    assert settings.oidc_issuer
    idp = create_devidp(settings.oidc_issuer, [_dev_client(settings)], users=users)
    app = create_app(
        settings, extra_routes=[Mount("/_devidp", app=idp), *extra_routes], migrate=True
    )
    with LiveServer(app, port) as server:
        yield Live(server, settings, app, idp.state.devidp)


def _app_of(server: LiveServer) -> Starlette:
    app = server.server.config.app
    assert isinstance(app, Starlette)
    return app


def _codec(server: LiveServer) -> SessionCodec:
    codec = _app_of(server).state.context.sessions
    assert isinstance(codec, SessionCodec)
    return codec


def _devidp_of(server: LiveServer) -> Any:
    mount = next(r for r in _app_of(server).routes if isinstance(r, Mount) and r.path == "/_devidp")
    return mount.app.state.devidp  # type: ignore[attr-defined]


def _client() -> httpx.Client:
    return httpx.Client(follow_redirects=False, timeout=10)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _payload(cookie: str) -> list[Any]:
    """The JSON inside a session cookie (base64url payload, '.', signature)."""
    data, dot, signature = cookie.rpartition(".")
    assert dot and data and signature
    decoded: list[Any] = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    return decoded


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _get(server: LiveServer, settings: Settings, path: str, cookie: str) -> httpx.Response:
    """A GET from a fresh client carrying only ``cookie`` (a copied cookie, in effect)."""
    with _client() as other:
        return other.get(
            f"{server.url}{path}", headers={"Cookie": f"{settings.session_cookie}={cookie}"}
        )


def _raw_header_names(url: str, path: str, cookie: str) -> list[str]:
    """The header names of a response as sent, repeats included (httpx merges a repeated
    Content-Length; strict parsers such as wrk's and some proxies refuse the response)."""
    parts = urlsplit(url)
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


def _login_set_cookie(response: httpx.Response, prefix: str) -> tuple[str, dict[str, str]]:
    """The Set-Cookie of the one login attempt ``response`` starts (named ``prefix-<hash>``)."""
    names = [
        h.partition("=")[0].strip()
        for h in response.headers.get_list("set-cookie")
        if h.startswith(prefix + "-")
    ]
    assert len(names) == 1, names
    return _set_cookie(response, names[0])


def _set_cookie(response: httpx.Response, name: str) -> tuple[str, dict[str, str]]:
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


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _launch_rows(database_url: str) -> list[str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT app_id FROM launch_event")).scalars())
    finally:
        engine.dispose()


def _same_site_path(location: str, base: str) -> bool:
    resolved = urlsplit(urljoin(base + "/somewhere/page", location))
    return (
        location.startswith("/")
        and not location.startswith("//")
        and "\\" not in location
        and not any(ord(c) < 0x21 or c == "\x7f" for c in location)
        and resolved.netloc == urlsplit(base).netloc
        and resolved.scheme == urlsplit(base).scheme
    )


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


def _audit(page: str, styles: bool = True) -> list[str]:
    parser = _Audit(styles)
    parser.feed(page)
    parser.close()
    return parser.problems


def _directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def _header_problems(response: httpx.Response, https: bool = False) -> list[str]:
    problems: list[str] = []
    policies = response.headers.get_list("content-security-policy")
    if len(policies) != 1:
        return [f"expected one Content-Security-Policy, got {policies!r}"]
    csp = _directives(policies[0])
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


# --- sessions -----------------------------------------------------------------------------
def test_every_sign_in_makes_a_new_session_and_kills_the_previous_one(
    demo_server_sqlite: Demo,
) -> None:
    server, settings = demo_server_sqlite
    name = settings.session_cookie
    with _client() as browser:
        # a second tab starts its sign-in first; the first tab signs in, then the second does
        second_tab = browser.get(f"{server.url}/login", params={"next": "/admin"})
        assert second_tab.status_code in (302, 303)
        sign_in(browser, server.url, STAFF.sub)
        first = browser.cookies[name]
        assert _get(server, settings, "/", first).status_code == 200

        authorize = browser.get(second_tab.headers["location"])
        fields = dict(
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', authorize.text)
        )
        fields = {k: html.unescape(v) for k, v in fields.items()} | {"user": ADMIN.sub}
        origin = f"{authorize.url.scheme}://{authorize.url.netloc.decode()}"
        granted = browser.post(str(authorize.url), data=fields, headers={"Origin": origin})
        landed = browser.get(granted.headers["location"])
        assert landed.status_code == 303 and landed.headers["location"] == "/admin"
        second = _set_cookie(landed, name)[0]

    assert second != first
    old, new = _payload(first), _payload(second)
    assert old[0] != new[0], "the session id must change at sign-in"
    assert new[4][1] == ADMIN.sub and old[4][1] == STAFF.sub
    assert _get(server, settings, "/admin", second).status_code == 200
    stale = _get(server, settings, "/", first)  # a copy of the old cookie is dead now
    assert stale.status_code == 303 and stale.headers["location"] == "/login?next=/"


def test_consecutive_sign_ins_never_reuse_a_session_id(demo_server_sqlite: Demo) -> None:
    server, settings = demo_server_sqlite
    sids = set()
    for _ in range(3):
        with _client() as browser:
            sign_in(browser, server.url, STAFF.sub)
            sids.add(_payload(browser.cookies[settings.session_cookie])[0])
    assert len(sids) == 3


def test_copied_cookie_is_refused_after_logout_in_another_worker_too(
    demo_server: Demo,
) -> None:
    """Sign-out reaches every worker through the revocation table within ~2 s."""
    server, settings = demo_server
    other_app = create_app(settings)  # the same settings and database: a second worker
    with LiveServer(other_app, free_port()) as other, _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        cookie = browser.cookies[settings.session_cookie]
        assert _get(server, settings, "/", cookie).status_code == 200
        assert _get(other, settings, "/", cookie).status_code == 200

        grid = browser.get(f"{server.url}/")
        out = browser.post(f"{server.url}/logout", data={"csrf_token": _csrf(grid.text)})
        assert out.status_code == 303
        logged_out = time.monotonic()

        here = _get(server, settings, "/", cookie)
        assert here.status_code == 303 and here.headers["location"] == "/login?next=/"
        # workers poll the revocations once a second; allow one poll plus a little slack
        assert _wait_for(lambda: _get(other, settings, "/", cookie).status_code == 303, 2.5)
        assert time.monotonic() - logged_out <= 2.5
        api = _get(other, settings, API, cookie)
        assert api.status_code == 401


def test_idle_timeout_refuses_an_idle_cookie_and_activity_moves_the_clock(
    demo_server_sqlite: Demo,
) -> None:
    server, settings = demo_server_sqlite
    codec = _codec(server)
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        session = codec.loads(browser.cookies[settings.session_cookie])
    assert session is not None
    idle = settings.session_idle_timeout
    now = time.time()

    too_idle = codec.dumps(dataclasses.replace(session, seen=int(now - idle - 2)))
    refused = _get(server, settings, "/", too_idle)
    assert refused.status_code == 303 and refused.headers["location"] == "/login?next=/"
    assert _get(server, settings, API, too_idle).status_code == 401

    nearly_idle = codec.dumps(dataclasses.replace(session, seen=int(now - idle + 30)))
    page = _get(server, settings, "/", nearly_idle)
    assert page.status_code == 200
    # the visit re-issued the cookie with a fresh idle clock (same session, same start)
    renewed = codec.loads(_set_cookie(page, settings.session_cookie)[0])
    assert renewed is not None
    assert renewed.sid == session.sid and renewed.created == session.created
    assert renewed.seen >= int(now)
    later = now + 60
    assert codec.loads(nearly_idle, now=later) is None
    assert codec.loads(codec.dumps(renewed), now=later) is not None


def test_absolute_timeout_ends_a_session_however_active(demo_server_sqlite: Demo) -> None:
    server, settings = demo_server_sqlite
    codec = _codec(server)
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        session = codec.loads(browser.cookies[settings.session_cookie])
    assert session is not None
    absolute = settings.session_absolute_timeout
    now = time.time()

    too_old = codec.dumps(dataclasses.replace(session, created=now - absolute - 2, seen=int(now)))
    refused = _get(server, settings, "/", too_old)
    assert refused.status_code == 303 and refused.headers["location"] == "/login?next=/"

    old_but_alive = dataclasses.replace(
        session, created=round(now - absolute + 30, 3), seen=int(now) - 120
    )
    page = _get(server, settings, "/", codec.dumps(old_but_alive))
    assert page.status_code == 200
    renewed = codec.loads(_set_cookie(page, settings.session_cookie)[0])
    assert renewed is not None
    assert renewed.created == old_but_alive.created, "activity must not extend the session"
    assert codec.loads(codec.dumps(renewed), now=now + 31) is None


def _resign_payload(cookie: str, settings: Settings, codec: SessionCodec) -> str:
    signature = cookie.rpartition(".")[2]
    payload = _payload(cookie)
    payload[4][6] = [*payload[4][6], "launcher-admins"]
    edited = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{edited}.{signature}"


def _other_key(cookie: str, settings: Settings, codec: SessionCodec) -> str:
    session = codec.loads(cookie)
    assert session is not None
    admin = dataclasses.replace(
        session, user=dataclasses.replace(session.user, groups=("staff", "launcher-admins"))
    )
    other = settings.model_copy(update={"secret_key": SecretStr("another-secret-" + "x" * 40)})
    return SessionCodec(other, codec.revocations).dumps(admin)


def _flip_signature(cookie: str, settings: Settings, codec: SessionCodec) -> str:
    # the first character of the signature: the last one partly holds base64 padding bits,
    # and changing only those would leave the signature as it was
    payload, _, signature = cookie.rpartition(".")
    return f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_flip_signature, id="signature changed"),
        pytest.param(_resign_payload, id="groups edited, old signature"),
        pytest.param(_other_key, id="signed with another key"),
        pytest.param(lambda c, s, k: c.rpartition(".")[0], id="signature removed"),
        pytest.param(lambda c, s, k: c + "." + c.rpartition(".")[2], id="extra part"),
        pytest.param(lambda c, s, k: "garbage", id="garbage"),
        pytest.param(lambda c, s, k: "%%%.%%%", id="not base64"),
    ],
)
def test_a_tampered_cookie_is_refused(
    demo_server_sqlite: Demo, tamper: Callable[[str, Settings, SessionCodec], str]
) -> None:
    server, settings = demo_server_sqlite
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        cookie = browser.cookies[settings.session_cookie]
    assert _get(server, settings, "/admin", cookie).status_code == 403  # signed in, not admin

    forged = tamper(cookie, settings, _codec(server))
    assert forged != cookie
    admin = _get(server, settings, "/admin", forged)
    assert admin.status_code == 303 and admin.headers["location"] == "/login?next=/admin"
    assert _get(server, settings, "/", forged).status_code == 303
    assert _get(server, settings, API, forged).status_code == 401


def test_cookie_holds_no_tokens_and_stays_small_with_300_groups(
    tmp_path: Path, sqlite_url: str
) -> None:
    many = tuple(f"{uuid.UUID(int=i)}" for i in range(300))  # Entra-style group object ids
    user = DemoUser(
        sub="demo-many-groups",
        name="Many Groups",
        email="many.groups@zorggroep-noord.example",
        department="nursing",
        groups=(*many[:150], "clinicians", "launcher-reviewers", *many[150:]),
        upn="mgroups@zorggroep-noord.example",
    )
    with _portal(tmp_path, sqlite_url, users=[user, STAFF]) as live, _client() as browser:
        landed = sign_in(browser, live.url, user.sub)
        value, _ = _set_cookie(landed, live.settings.session_cookie)
        size = len(live.settings.session_cookie) + 1 + len(value)
        assert size < 4096, f"session cookie is {size} bytes"

        payload = _payload(value)
        strings = json.dumps(payload)
        assert set(payload[4][6]) == {"clinicians", "launcher-reviewers"}
        access_tokens = list(live.idp.tokens)
        provider_sids = {grant.sid for grant in live.idp.tokens.values()}
        assert access_tokens and provider_sids
        for secret in [*access_tokens, *provider_sids]:
            assert secret not in value and secret not in strings
        assert "eyJ" not in strings, "something that looks like a JWT is in the cookie"
        assert not re.search(r"id_token|access_token|refresh_token", strings)

        # what was kept is what the portal needs: the clinicians' tile and the report API
        grid = browser.get(f"{live.url}/")
        assert 'href="/launch/ehr"' in grid.text
        assert browser.get(f"{live.url}{API}").status_code == 200

    with _portal(tmp_path / "small", sqlite_url, users=[STAFF]) as live, _client() as browser:
        landed = sign_in(browser, live.url, STAFF.sub)
        value, _ = _set_cookie(landed, live.settings.session_cookie)
        assert len(value) < 1024


def test_cookies_are_httponly_samesite_lax_and_not_secure_on_http(
    demo_server_sqlite: Demo,
) -> None:
    server, settings = demo_server_sqlite
    assert not settings.https
    with _client() as browser:
        started = browser.get(f"{server.url}/login")
        landed = sign_in(browser, server.url, STAFF.sub)
        grid = browser.get(f"{server.url}/")
        out = browser.post(f"{server.url}/logout", data={"csrf_token": _csrf(grid.text)})
    cookies = {
        "login cookie": _login_set_cookie(started, settings.login_cookie)[1],
        "session cookie": _set_cookie(landed, settings.session_cookie)[1],
        "session cookie cleared at logout": _set_cookie(out, settings.session_cookie)[1],
    }
    assert settings.session_cookie == "launcher_session"
    for what, attributes in cookies.items():
        assert "httponly" in attributes, what
        assert attributes.get("samesite", "").lower() == "lax", what
        assert "secure" not in attributes, what
        assert attributes.get("path") == "/", what
        assert "domain" not in attributes, what
    assert int(_set_cookie(out, settings.session_cookie)[1]["max-age"]) <= 0


def test_on_https_the_cookie_is_host_prefixed_and_secure_and_hsts_is_sent(
    tmp_path: Path, sqlite_url: str
) -> None:
    base = "https://portal.example"
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}/_devidp"
    settings = demo_settings(
        "127.0.0.1",
        idp_port,
        var=tmp_path / "var",
        database_url=sqlite_url,
        apps_file=EXAMPLE_APPS,
        spool_dir=tmp_path / "spool",
        base_url=base,
        oidc_issuer=issuer,
    )
    assert settings.https and settings.session_cookie == "__Host-launcher"
    idp = create_devidp(issuer, [_dev_client(settings)])
    provider = Starlette(routes=[Mount("/_devidp", app=idp)])
    with (
        LiveServer(provider, idp_port),
        TestClient(
            create_app(settings, migrate=True), base_url=base, follow_redirects=False
        ) as portal,
        _client() as at_provider,
    ):
        started = portal.get("/login", params={"next": "/"})
        assert started.status_code in (302, 303)
        authorize = at_provider.get(started.headers["location"])
        fields = dict(
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', authorize.text)
        )
        fields = {k: html.unescape(v) for k, v in fields.items()} | {"user": STAFF.sub}
        granted = at_provider.post(
            str(authorize.url), data=fields, headers={"Origin": f"http://127.0.0.1:{idp_port}"}
        )
        assert granted.headers["location"].startswith(f"{base}/auth/callback?")
        landed = portal.get(granted.headers["location"])
        assert landed.status_code == 303, landed.text
        grid = portal.get("/")
        assert grid.status_code == 200 and STAFF.name in grid.text
        out = portal.post(
            "/logout", data={"csrf_token": _csrf(grid.text)}, headers={"Origin": base}
        )
        assert out.status_code == 303
        missing = portal.get("/launch/nope")

    cookies = {
        "__Host-launcher-login": _login_set_cookie(started, "__Host-launcher-login")[1],
        "__Host-launcher": _set_cookie(landed, "__Host-launcher")[1],
        "__Host-launcher (cleared)": _set_cookie(out, "__Host-launcher")[1],
    }
    for what, attributes in cookies.items():
        assert "secure" in attributes, what
        assert attributes.get("path") == "/", what
        assert "domain" not in attributes, what
        assert "httponly" in attributes, what
        assert attributes.get("samesite", "").lower() == "lax", what
    for response in (started, landed, grid, out, missing):
        assert _header_problems(response, https=True) == [], response.url


# --- CSRF and state changes ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "headers"),
    [
        pytest.param(None, {"Sec-Fetch-Site": "same-origin"}, id="no token"),
        pytest.param("0" * 32, {"Sec-Fetch-Site": "same-origin"}, id="wrong token"),
        pytest.param("", {}, id="empty token"),
        pytest.param("right", {"Sec-Fetch-Site": "cross-site"}, id="cross-site"),
        pytest.param("right", {"Sec-Fetch-Site": "same-site"}, id="same-site subdomain"),
        pytest.param("right", {"Origin": "https://evil.example"}, id="foreign Origin"),
        pytest.param("right", {"Origin": "null"}, id="Origin null"),
        pytest.param(
            "right",
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
            id="foreign Origin, same-origin fetch",
        ),
    ],
)
def test_logout_refuses_forged_requests(
    demo_server_sqlite: Demo, token: str | None, headers: dict[str, str]
) -> None:
    server, settings = demo_server_sqlite
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        grid = browser.get(f"{server.url}/")
        data = (
            {} if token is None else {"csrf_token": _csrf(grid.text) if token == "right" else token}
        )
        refused = browser.post(f"{server.url}/logout", data=data, headers=headers)
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
        assert _audit(refused.text) == []
        assert browser.get(f"{server.url}/").status_code == 200, "the session must survive"


def test_logout_token_of_another_session_is_refused(demo_server_sqlite: Demo) -> None:
    server, _ = demo_server_sqlite
    with _client() as victim, _client() as attacker:
        sign_in(victim, server.url, STAFF.sub)
        sign_in(attacker, server.url, STAFF.sub)
        attackers_token = _csrf(attacker.get(f"{server.url}/").text)
        refused = victim.post(f"{server.url}/logout", data={"csrf_token": attackers_token})
        assert refused.status_code == 403
        assert victim.get(f"{server.url}/").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "{origin}", "Sec-Fetch-Site": "same-origin"}, id="modern browser"),
        pytest.param({}, id="no fetch metadata (the token alone)"),
    ],
)
def test_logout_with_the_right_token_from_our_own_pages(
    demo_server_sqlite: Demo, headers: dict[str, str]
) -> None:
    server, settings = demo_server_sqlite
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        cookie = browser.cookies[settings.session_cookie]
        grid = browser.get(f"{server.url}/")
        sent = {k: v.format(origin=server.url) for k, v in headers.items()}
        out = browser.post(
            f"{server.url}/logout", data={"csrf_token": _csrf(grid.text)}, headers=sent
        )
        assert out.status_code == 303
        assert out.headers["location"].startswith(f"{settings.oidc_issuer}/end-session?")
        assert browser.get(f"{server.url}/").status_code == 303
    assert _get(server, settings, "/", cookie).status_code == 303


def _post_paths(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[str]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _post_paths(route.routes, prefix + route.path)
        elif isinstance(route, Route) and route.methods and "POST" in route.methods:
            yield prefix + route.path


def test_every_post_refuses_cross_site_requests(demo_server_sqlite: Demo) -> None:
    server, _ = demo_server_sqlite
    paths = sorted(set(_post_paths(_app_of(server).routes)))
    assert {"/logout", "/auth/backchannel-logout", "/_devidp/authorize"} <= set(paths)
    forged = [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ]
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        token = _csrf(browser.get(f"{server.url}/").text)
        for path in paths:
            for headers in forged:
                resp = browser.post(
                    f"{server.url}{path}", data={"csrf_token": token}, headers=headers
                )
                if path == "/auth/backchannel-logout":  # exempt: carries its own proof
                    assert resp.status_code == 400, (path, headers)
                else:
                    assert resp.status_code == 403, (path, headers, resp.status_code)
        assert browser.get(f"{server.url}/").status_code == 200


def _logout_token(key: RSAKey, settings: Settings, **claims: Any) -> str:
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
    return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key, algorithms=["RS256"])


def test_backchannel_logout_is_exempt_from_the_origin_check_but_needs_a_valid_token(
    demo_server_sqlite: Demo,
) -> None:
    server, settings = demo_server_sqlite
    cross = {"Sec-Fetch-Site": "cross-site", "Origin": "https://idp.example"}
    url = f"{server.url}/auth/backchannel-logout"
    idp = _devidp_of(server)
    stranger = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)
    with _client() as browser, _client() as provider:
        sign_in(browser, server.url, STAFF.sub)
        bad = {
            "no token": {},
            "bogus token": {"logout_token": "not-a-jwt"},
            "unknown key": {"logout_token": _logout_token(stranger, settings, sub=STAFF.sub)},
            "no events": {
                "logout_token": _logout_token(idp.keys[0], settings, sub=STAFF.sub, events={})
            },
            "other audience": {
                "logout_token": _logout_token(idp.keys[0], settings, sub=STAFF.sub, aud="x")
            },
        }
        for what, data in bad.items():
            resp = provider.post(url, data=data, headers=cross)
            assert resp.status_code == 400, what
            assert resp.json() == {"error": "invalid_request"}, what
        assert browser.get(f"{server.url}/").status_code == 200

        good = _logout_token(idp.keys[0], settings, sub=STAFF.sub)
        assert provider.post(url, data={"logout_token": good}, headers=cross).status_code == 200
        assert browser.get(f"{server.url}/").status_code == 303
        # a later sign-in of the same user is a new session, not caught by the logout
        sign_in(browser, server.url, STAFF.sub)
        assert browser.get(f"{server.url}/").status_code == 200


def test_get_logout_changes_nothing(demo_server_sqlite: Demo) -> None:
    server, _ = demo_server_sqlite
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        resp = browser.get(f"{server.url}/logout")
        assert resp.status_code == 405
        assert "set-cookie" not in resp.headers
        assert browser.get(f"{server.url}/").status_code == 200


# --- where sign-in sends you ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("next_path", "expected"),
    [
        pytest.param("//evil.example", "/", id="protocol-relative"),
        pytest.param("///evil.example", "/", id="three slashes"),
        pytest.param("/\\evil.example", "/", id="slash backslash"),
        pytest.param("\\\\evil", "/", id="two backslashes"),
        pytest.param("/\\/evil.example", "/", id="slash backslash slash"),
        pytest.param("https://evil.example", "/", id="absolute URL"),
        pytest.param("https:/evil.example", "/", id="scheme, one slash"),
        pytest.param("javascript:alert(1)", "/", id="javascript"),
        pytest.param(" //evil.example", "/", id="leading space"),
        pytest.param("/\t/evil.example", "/", id="tab"),
        pytest.param("/\n/evil.example", "/", id="newline"),
        pytest.param("/\r\nSet-Cookie: x=1", "/", id="header injection"),
        pytest.param("\uff0f\uff0fevil.example", "/", id="fullwidth slashes"),
        pytest.param("", "/", id="empty"),
        pytest.param("evil.example", "/", id="relative"),
        # encoded once more: the decoded value is a same-site path, and stays one
        pytest.param("/%2F%2Fevil.example", "/%2F%2Fevil.example", id="encoded slashes"),
        pytest.param("/%5Cevil.example", "/%5Cevil.example", id="encoded backslash"),
        pytest.param("/ok?x=1", "/ok?x=1", id="path with query"),
        pytest.param("/launch/teams", "/launch/teams", id="launch"),
    ],
)
def test_next_goes_to_same_site_paths_only(
    demo_server_sqlite: Demo, next_path: str, expected: str
) -> None:
    server, _ = demo_server_sqlite
    with _client() as browser:
        start = browser.get(f"{server.url}/login?next={quote(next_path, safe='')}")
        assert start.status_code in (302, 303)
        landed = sign_in(browser, server.url, STAFF.sub, next_path=next_path)
        assert landed.status_code == 303
        assert landed.headers["location"] == expected
        assert _same_site_path(landed.headers["location"], server.url)

        # already signed in: /login sends you on at once, with the same rule
        again = browser.get(f"{server.url}/login", params={"next": next_path})
        assert again.status_code == 303
        assert again.headers["location"] == expected
        assert _same_site_path(again.headers["location"], server.url)


# --- headers and markup ------------------------------------------------------------------
async def _crash(request: Request) -> Response:
    raise RuntimeError("a bug in a handler (deliberate, for the test)")


def test_security_headers_on_pages_redirects_and_errors(tmp_path: Path, sqlite_url: str) -> None:
    crash = Route("/_test/crash", _crash)
    with (
        _portal(tmp_path, sqlite_url, extra_routes=[crash]) as live,
        _client() as anon,
        _client() as staff,
    ):
        sign_in(staff, live.url, STAFF.sub)
        u = live.url
        codec = _codec(live.server)
        session_cookie = staff.cookies["launcher_session"]
        session = codec.loads(session_cookie)
        assert session is not None
        # a minute since the cookie was issued: the launch re-issues it (the idle clock)
        stale = codec.dumps(dataclasses.replace(session, seen=int(time.time()) - 120))
        responses = {
            "grid": (staff.get(f"{u}/"), 200),
            "anonymous redirect": (anon.get(f"{u}/"), 303),
            "login redirect": (anon.get(f"{u}/login"), 302),
            "launch redirect": (staff.get(f"{u}/launch/teams"), 303),
            "launch re-issuing the cookie": (
                _get(live.server, live.settings, "/launch/teams", stale),
                303,
            ),
            "signed-out page": (anon.get(f"{u}/signed-out"), 200),
            "not found": (staff.get(f"{u}/launch/nope"), 404),
            "no such page": (anon.get(f"{u}/nothing-here"), 404),
            "forbidden page": (staff.get(f"{u}/admin"), 403),
            "api 401": (anon.get(f"{u}{API}"), 401),
            "api 403": (staff.get(f"{u}{API}"), 403),
            "method not allowed": (staff.get(f"{u}/logout"), 405),
            "cross-site POST": (
                staff.post(f"{u}/logout", headers={"Sec-Fetch-Site": "cross-site"}),
                403,
            ),
            "failed sign-in": (anon.get(f"{u}/auth/callback?state=x&code=y"), 400),
            "static file": (anon.get(f"{u}/static/portal.js"), 200),
            "health": (anon.get(f"{u}/healthz"), 200),
            "crash": (anon.get(f"{u}/_test/crash"), 500),
        }
        # each header once, as sent (a strict parser refuses a repeated Content-Length)
        for value in (session_cookie, stale):
            names = _raw_header_names(u, "/launch/teams", f"launcher_session={value}")
            assert names.count("location") == 1
            assert [n for n in names if names.count(n) > 1 and n != "set-cookie"] == []
    problems = {}
    for what, (response, status) in responses.items():
        assert response.status_code == status, (what, response.status_code)
        found = _header_problems(response)
        if found:
            problems[what] = found
    assert problems == {}
    crash_page = responses["crash"][0]
    assert "Traceback" not in crash_page.text and "RuntimeError" not in crash_page.text
    for what in ("grid", "launch redirect", "not found", "api 401"):
        assert responses[what][0].headers.get("cache-control") == "no-store", what
    # The common launch is answered before the middleware (FastLaunch), a launch that
    # re-issues the cookie by the routed endpoint: the same headers either way, each once.
    fast, routed = responses["launch redirect"][0], responses["launch re-issuing the cookie"][0]
    assert "set-cookie" not in fast.headers and _set_cookie(routed, "launcher_session")[0]
    per_request = ("date", "x-request-id")
    assert {k: v for k, v in fast.headers.items() if k not in per_request} == {
        k: v for k, v in routed.headers.items() if k not in (*per_request, "set-cookie")
    }


def test_no_page_has_inline_script(demo_server_sqlite: Demo) -> None:
    server, _ = demo_server_sqlite
    u = server.url
    with _client() as anon, _client() as staff, _client() as admin:
        sign_in(staff, u, STAFF.sub)
        sign_in(admin, u, ADMIN.sub)
        pages = {
            "grid": staff.get(f"{u}/"),
            "admin page": admin.get(f"{u}/admin"),
            "forbidden page": staff.get(f"{u}/admin"),
            "error page": staff.get(f"{u}/launch/nope"),
            "failed sign-in page": anon.get(f"{u}/auth/callback?state=x&code=y"),
            "signed-out page": anon.get(f"{u}/signed-out"),
        }
    for what, page in pages.items():
        assert "text/html" in page.headers["content-type"], what
        assert "<html" in page.text, what
        assert _audit(page.text) == [], what
    assert '<script src="/static/portal.js"' in pages["grid"].text  # the audit sees scripts


def _write_registry(path: Path) -> Path:
    registry = {
        "portal": {"title": f"Portal </title>{XSS_SCRIPT}"},
        "categories": [{"id": "evil", "name": f"{XSS_SCRIPT} category"}],
        "apps": [
            {
                "id": "evil",
                "name": XSS_SCRIPT,
                "url": f'https://evil.example/?q=">{XSS_SCRIPT}',
                "description": {"en": XSS_ATTR, "nl": XSS_ATTR},
                "icon": 'https://evil.example/icon.png?"onerror="alert(1)',
                "category": "evil",
                "keywords": [XSS_SCRIPT, XSS_ATTR],
            },
            {"id": "plain", "name": "Plain", "url": "https://plain.example/", "category": "evil"},
        ],
    }
    path.write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")
    load_registry(path)  # valid: the payload is in the values, not the structure
    return path


def test_registry_values_are_escaped(tmp_path: Path, sqlite_url: str) -> None:
    apps_file = _write_registry(tmp_path / "apps.yaml")
    with (
        _portal(tmp_path, sqlite_url, apps_file=apps_file) as live,
        _client() as staff,
        _client() as admin,
    ):
        sign_in(staff, live.url, STAFF.sub)
        sign_in(admin, live.url, ADMIN.sub)
        pages = {
            "grid": staff.get(f"{live.url}/"),
            "admin page": admin.get(f"{live.url}/admin"),
            "error page": staff.get(f"{live.url}/launch/nope"),
        }
    assert 'href="/launch/evil"' in pages["grid"].text
    assert html.escape(XSS_SCRIPT, quote=False) in pages["grid"].text  # shown, as text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages["grid"].text
    assert "evil.example/?q=&#34;&gt;&lt;script&gt;" in pages["admin page"].text
    for what, page in pages.items():
        assert page.status_code in (200, 404), what
        assert XSS_SCRIPT not in page.text, what
        assert XSS_ATTR not in page.text, what
        assert _audit(page.text) == [], what


def test_claims_are_escaped_on_every_page(tmp_path: Path, sqlite_url: str) -> None:
    evil = DemoUser(
        sub="demo-evil",
        name=XSS_IMG,
        email="evil@zorggroep-noord.example",
        department=XSS_ATTR,
        groups=("staff", "launcher-admins", "launcher-reviewers", XSS_SCRIPT),
        upn="evil@zorggroep-noord.example",
    )
    with _portal(tmp_path, sqlite_url, users=[evil, STAFF]) as live, _client() as browser:
        picker = browser.get(
            browser.get(f"{live.url}/login").headers["location"]
        )  # the provider's page lists the users: same origin as the portal in the demo
        landed = sign_in(browser, live.url, evil.sub)
        assert landed.status_code == 303
        pages = {
            "grid": browser.get(f"{live.url}/"),
            "admin page": browser.get(f"{live.url}/admin"),
            "error page": browser.get(f"{live.url}/launch/nope"),
            "api": browser.get(f"{live.url}{API}"),
        }
    assert html.escape(XSS_IMG, quote=False) in pages["grid"].text
    assert html.escape(XSS_IMG, quote=False) in pages["admin page"].text
    assert pages["api"].status_code == 200
    for what, page in pages.items():
        assert XSS_IMG not in page.text and XSS_SCRIPT not in page.text, what
        assert XSS_ATTR not in page.text, what
        assert _audit(page.text) == [], what
    assert XSS_IMG not in picker.text
    assert _audit(picker.text, styles=False) == []


# --- launches and access --------------------------------------------------------------------
def test_prefetch_records_nothing(demo_server_sqlite: Demo) -> None:
    server, settings = demo_server_sqlite
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        for headers in (
            {"Sec-Purpose": "prefetch"},
            {"Sec-Purpose": "prefetch;prerender"},
            {"Purpose": "prefetch"},
        ):
            speculative = browser.get(f"{server.url}/launch/teams", headers=headers)
            assert speculative.status_code not in (301, 302, 303, 307, 308), headers
            assert "location" not in speculative.headers
            assert "no-store" in speculative.headers.get("cache-control", "")
        real = browser.get(f"{server.url}/launch/teams")
        assert real.status_code == 303
    assert _wait_for(lambda: len(_launch_rows(settings.database_url)) >= 1)
    time.sleep(0.3)  # a few flush intervals: a recorded prefetch would have landed by now
    assert _launch_rows(settings.database_url) == ["teams"]


def test_launch_of_a_forbidden_or_unknown_app_is_404_and_not_recorded(
    demo_server_sqlite: Demo,
) -> None:
    server, settings = demo_server_sqlite
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        forbidden = browser.get(f"{server.url}/launch/ehr")  # clinicians only
        admin_only = browser.get(f"{server.url}/launch/admin-console")
        unknown = browser.get(f"{server.url}/launch/no-such-app")
        assert forbidden.status_code == admin_only.status_code == unknown.status_code == 404
        # nothing tells an app the user may not see from one that does not exist
        assert forbidden.text == unknown.text
        assert "epd.zorggroep-noord.example" not in forbidden.text
        assert "entra.microsoft.com" not in admin_only.text
        assert browser.get(f"{server.url}/launch/outlook").status_code == 303
    assert _wait_for(lambda: len(_launch_rows(settings.database_url)) >= 1)
    time.sleep(0.3)
    assert _launch_rows(settings.database_url) == ["outlook"]


def test_anonymous_launch_goes_to_sign_in_and_then_to_the_app(demo_server_sqlite: Demo) -> None:
    server, settings = demo_server_sqlite
    with _client() as browser:
        missing = browser.get(f"{server.url}/launch/x")
        assert missing.status_code == 303
        assert missing.headers["location"] == "/login?next=/launch/x"

        anonymous = browser.get(f"{server.url}/launch/teams")
        assert anonymous.headers["location"] == "/login?next=/launch/teams"
        next_path = parse_qs(urlsplit(anonymous.headers["location"]).query)["next"][0]
        landed = sign_in(browser, server.url, STAFF.sub, next_path=next_path)
        assert landed.headers["location"] == "/launch/teams"
        launched = browser.get(f"{server.url}/launch/teams")
        assert launched.status_code == 303
        assert launched.headers["location"].startswith("https://teams.microsoft.com/")
    assert _wait_for(lambda: _launch_rows(settings.database_url) == ["teams"])


def test_report_api_wants_a_reviewer_and_answers_json(demo_server_sqlite: Demo) -> None:
    server, _ = demo_server_sqlite
    with _client() as anon, _client() as staff, _client() as reviewer:
        sign_in(staff, server.url, STAFF.sub)
        sign_in(reviewer, server.url, REVIEWER.sub)
        answers = {
            401: anon.get(f"{server.url}{API}"),
            403: staff.get(f"{server.url}{API}"),
            200: reviewer.get(f"{server.url}{API}"),
        }
    for status, resp in answers.items():
        assert resp.status_code == status
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        if status != 200:
            assert body["status"] == status
            assert isinstance(body["message"], str) and body["message"]
            assert set(body) == {"error", "status", "message"}


def test_admin_page_is_for_admins_only(demo_server_sqlite: Demo) -> None:
    server, settings = demo_server_sqlite
    registry = load_registry(settings.apps_file)
    with _client() as anon, _client() as staff, _client() as reviewer, _client() as admin:
        sign_in(staff, server.url, STAFF.sub)
        sign_in(reviewer, server.url, REVIEWER.sub)
        sign_in(admin, server.url, ADMIN.sub)
        anonymous = anon.get(f"{server.url}/admin")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/login?next=/admin"
        for client in (staff, reviewer):
            refused = client.get(f"{server.url}/admin")
            assert refused.status_code == 403
            assert "text/html" in refused.headers["content-type"]
            assert "admin-console" not in refused.text
        page = admin.get(f"{server.url}/admin")
    assert page.status_code == 200
    for app in registry.apps:
        assert f"<code>{app.id}</code>" in page.text, app.id
    assert "entra.microsoft.com" in page.text


def test_a_revocation_committed_late_is_not_missed(database_url: str) -> None:
    """On PostgreSQL ids are handed out at insert and rows appear at commit: a sign-out that
    commits after a later one was already read must still reach every worker."""
    import datetime as dt

    import sqlalchemy as sa

    from launcher import db
    from launcher.auth.session import Revocations
    from launcher.models import Revocation

    engine = db.make_engine(database_url)
    table = Revocation.__table__  # type: ignore[attr-defined]
    worker = Revocations(engine)
    worker.poll()
    now = dt.datetime.now(dt.UTC)
    row = {"created_at": now, "expires_at": now + dt.timedelta(hours=1)}
    # a row with a higher id becomes visible first ...
    with engine.begin() as conn:
        conn.execute(sa.insert(table), [{"id": 5, "kind": "sid", "value": "late", **row}])
        conn.execute(sa.insert(table), [{"id": 9, "kind": "sid", "value": "early", **row}])
        conn.execute(sa.delete(table).where(table.c.id == 5))
    worker.poll()
    assert "early" in worker._sids and worker._last_id == 9
    # ... and the lower id commits only now
    with engine.begin() as conn:
        conn.execute(sa.insert(table), [{"id": 5, "kind": "sid", "value": "late", **row}])
    worker.poll()
    assert "late" in worker._sids
    engine.dispose()


def test_expired_revocations_are_forgotten(sqlite_url: str) -> None:
    import datetime as dt

    from launcher import db
    from launcher.auth.session import Revocations

    worker = Revocations(db.make_engine(sqlite_url))
    now = dt.datetime.now(dt.UTC)
    worker._apply("sid", "old", now, now - dt.timedelta(seconds=1))
    worker._apply("sid", "live", now, now + dt.timedelta(hours=1))
    worker.purge()
    assert set(worker._sids) == {"live"}

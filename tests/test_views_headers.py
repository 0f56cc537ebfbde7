"""Security headers and markup (launcher/views/common.py, the templates): every kind of
response carries the headers, no page has inline script, registry values and claims are
escaped. In process, except where the bytes on the wire or a real sign-in are the point."""

from __future__ import annotations

import dataclasses
import html
import time
from pathlib import Path

import pytest
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from launcher.registry import load_registry
from tests.conftest import MakePortal
from tests.helpers import ADMIN, STAFF, DemoUser, InProcess, live_demo, sign_in
from tests.web import (
    API,
    XSS_ATTR,
    XSS_IMG,
    XSS_SCRIPT,
    audit,
    client,
    header_problems,
    raw_header_names,
    set_cookie,
)


async def _crash(request: Request) -> Response:
    raise RuntimeError("a bug in a handler (deliberate, for the test)")


@pytest.mark.slow
def test_security_headers_on_pages_redirects_and_errors(tmp_path: Path, sqlite_url: str) -> None:
    """Over HTTP: the launch answered before the middleware (FastLaunch) writes its own
    headers, and what uvicorn sends is checked byte by byte."""
    crash = Route("/_test/crash", _crash)
    with (
        live_demo(tmp_path, sqlite_url, extra_routes=[crash]) as live,
        client() as anon,
        client() as staff,
    ):
        sign_in(staff, live.url, STAFF.sub)
        u = live.url
        codec = live.app.state.context.sessions
        session_cookie = staff.cookies["launcher_session"]
        session = codec.loads(session_cookie)
        assert session is not None
        # a minute since the cookie was issued: the launch re-issues it (the idle clock)
        stale = codec.dumps(dataclasses.replace(session, seen=int(time.time()) - 120))
        with client() as copied:
            reissuing = copied.get(
                f"{u}/launch/teams", headers={"Cookie": f"launcher_session={stale}"}
            )
        responses = {
            "grid": (staff.get(f"{u}/"), 200),
            "anonymous redirect": (anon.get(f"{u}/"), 303),
            "login redirect": (anon.get(f"{u}/login"), 302),
            "launch redirect": (staff.get(f"{u}/launch/teams"), 303),
            "launch re-issuing the cookie": (reissuing, 303),
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
            names = raw_header_names(u, "/launch/teams", f"launcher_session={value}")
            assert names.count("location") == 1
            assert [n for n in names if names.count(n) > 1 and n != "set-cookie"] == []
    problems = {}
    for what, (response, status) in responses.items():
        assert response.status_code == status, (what, response.status_code)
        found = header_problems(response)
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
    assert "set-cookie" not in fast.headers and set_cookie(routed, "launcher_session")[0]
    assert {k: v for k, v in fast.headers.items() if k not in ("date", "x-request-id")} == {
        k: v for k, v in routed.headers.items() if k not in ("date", "set-cookie", "x-request-id")
    }


def test_no_page_has_inline_script(portal: InProcess) -> None:
    pages = {
        "grid": portal.get("/", STAFF),
        "admin page": portal.get("/admin", ADMIN),
        "forbidden page": portal.get("/admin", STAFF),
        "error page": portal.get("/launch/nope", STAFF),
        "failed sign-in page": portal.get("/auth/callback?state=x&code=y"),
        "signed-out page": portal.get("/signed-out"),
    }
    for what, page in pages.items():
        assert "text/html" in page.headers["content-type"], what
        assert "<html" in page.text, what
        assert audit(page.text) == [], what
    assert '<script src="/static/portal.js?v=' in pages["grid"].text  # the audit sees scripts


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


def test_registry_values_are_escaped(tmp_path: Path, make_portal: MakePortal) -> None:
    portal = make_portal(apps_file=_write_registry(tmp_path / "apps.yaml"))
    pages = {
        "grid": portal.get("/", STAFF),
        "admin page": portal.get("/admin", ADMIN),
        "error page": portal.get("/launch/nope", STAFF),
    }
    assert 'href="/launch/evil"' in pages["grid"].text
    assert html.escape(XSS_SCRIPT, quote=False) in pages["grid"].text  # shown, as text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages["grid"].text
    assert "evil.example/?q=&#34;&gt;&lt;script&gt;" in pages["admin page"].text
    for what, page in pages.items():
        assert page.status_code in (200, 404), what
        assert XSS_SCRIPT not in page.text, what
        assert XSS_ATTR not in page.text, what
        assert audit(page.text) == [], what


@pytest.mark.slow
def test_claims_are_escaped_on_every_page(tmp_path: Path, sqlite_url: str) -> None:
    """Over HTTP: the claims travel through the provider's ID token into the cookie."""
    evil = DemoUser(
        sub="demo-evil",
        name=XSS_IMG,
        email="evil@zorggroep-noord.example",
        department=XSS_ATTR,
        groups=("staff", "launcher-admins", "launcher-reviewers", XSS_SCRIPT),
        upn="evil@zorggroep-noord.example",
    )
    with live_demo(tmp_path, sqlite_url, users=[evil, STAFF]) as live, client() as browser:
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
        assert audit(page.text) == [], what
    assert XSS_IMG not in picker.text
    assert audit(picker.text, styles=False) == []

"""Sign-in and where it sends you (launcher/views/auth.py): the whole authorization code flow
over HTTP, since the flow between browser, portal and provider is what is tested here."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from launcher.settings import Settings
from tests.helpers import STAFF, LiveServer, live_demo, sign_in, wait_until
from tests.web import client, launch_rows, same_site_path

Demo = tuple[LiveServer, Settings]


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
    with client() as browser:
        start = browser.get(f"{server.url}/login?next={quote(next_path, safe='')}")
        assert start.status_code in (302, 303)
        landed = sign_in(browser, server.url, STAFF.sub, next_path=next_path)
        assert landed.status_code == 303
        assert landed.headers["location"] == expected
        assert same_site_path(landed.headers["location"], server.url)

        # already signed in: /login sends you on at once, with the same rule
        again = browser.get(f"{server.url}/login", params={"next": next_path})
        assert again.status_code == 303
        assert again.headers["location"] == expected
        assert same_site_path(again.headers["location"], server.url)


def test_anonymous_launch_goes_to_sign_in_and_then_to_the_app(demo_server_sqlite: Demo) -> None:
    server, settings = demo_server_sqlite
    with client() as browser:
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
    assert wait_until(lambda: launch_rows(settings.database_url) == ["teams"])


def test_a_missing_subject_claim_is_a_failed_sign_in_like_any_other(
    tmp_path: Path, sqlite_url: str
) -> None:
    """LAUNCHER_SUBJECT_CLAIM=oid against a provider whose tokens carry no ``oid``: the
    callback's error page (400, a way to sign in again), the failure counted, no session, the
    login attempt's cookie cleared."""
    with live_demo(tmp_path, sqlite_url, subject_claim="oid") as live, client() as browser:
        page = sign_in(browser, live.server.url, STAFF.sub)
        assert page.status_code == 400
        assert "/login?next=/" in page.text and "Traceback" not in page.text
        assert not [c for c in browser.cookies.jar if c.name.startswith("launcher_login")]
        assert browser.get(f"{live.server.url}/", follow_redirects=False).status_code == 303
        metrics = live.app.state.context.metrics.registry
        sample = ("launcher_login_failures_total", {"reason": "LoginFailed"})
        assert metrics.get_sample_value(*sample) == 1

"""LAUNCHER_SECRET_KEY_FALLBACKS: rotating the secret key without signing everybody out."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from itsdangerous import Signer, URLSafeTimedSerializer

from launcher.auth import csrf
from launcher.auth.session import Revocations, SessionCodec
from launcher.auth.user import User
from launcher.demo.command import build_demo_app, demo_settings
from launcher.demo.devidp import DEMO_USERS
from launcher.errors import ConfigError, CsrfFailed
from launcher.settings import Settings, load_settings
from tests.conftest import EXAMPLE_APPS, LiveServer, free_port, sign_in

OLD = "old-secret-key-of-the-portal-0123456789abcdef"
NEW = "new-secret-key-of-the-portal-0123456789abcdef"
STAFF = next(u for u in DEMO_USERS if u.groups == ("staff",))
USER = User("0" * 32, "sub-1", "Someone", groups=("staff",))


def _codec(settings: Settings) -> SessionCodec:
    return SessionCodec(settings, Revocations(sa.create_engine("sqlite://")))


# --- settings -----------------------------------------------------------------------------
def test_fallbacks_are_a_comma_list_and_the_current_key_signs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(secret_key=NEW).secret_keys() == [NEW]
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", NEW)
    monkeypatch.setenv("LAUNCHER_SECRET_KEY_FALLBACKS", f" {OLD} , {OLD.upper()},")
    settings = load_settings()
    assert settings.secret_keys() == [OLD, OLD.upper(), NEW]  # the last one signs
    assert OLD not in repr(settings)  # secrets stay out of logs and tracebacks


def test_a_short_fallback_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="LAUNCHER_SECRET_KEY_FALLBACKS: .*32 characters"):
        load_settings(secret_key=NEW, secret_key_fallbacks="short")


# --- each signed value, in isolation ------------------------------------------------------
def test_a_session_cookie_of_the_old_key_works_with_the_old_key_as_a_fallback_only() -> None:
    old_cookie = _codec(Settings(secret_key=OLD)).dumps(
        _codec(Settings(secret_key=OLD)).new(USER, None)
    )
    rotated = _codec(Settings(secret_key=NEW, secret_key_fallbacks=[OLD]))
    session = rotated.loads(old_cookie)
    assert session is not None and session.user == USER
    assert _codec(Settings(secret_key=NEW)).loads(old_cookie) is None
    # what the rotated portal signs, only the new key opens
    new_cookie = rotated.dumps(session)
    assert _codec(Settings(secret_key=OLD)).loads(new_cookie) is None
    assert _codec(Settings(secret_key=NEW)).loads(new_cookie) is not None


def test_a_csrf_token_of_the_old_key_passes_with_the_old_key_as_a_fallback_only() -> None:
    token = csrf.token_for(OLD, "sid-1")
    csrf.check_token([OLD, NEW], "sid-1", token)
    with pytest.raises(CsrfFailed):
        csrf.check_token([NEW], "sid-1", token)
    with pytest.raises(CsrfFailed):
        csrf.check_token(NEW, "sid-1", token)
    with pytest.raises(CsrfFailed):
        csrf.check_token([OLD, NEW], "sid-2", token)  # still bound to its session


# --- over real HTTP: a portal restarted with a new key ------------------------------------
@pytest.fixture
def portal(tmp_path: Path, sqlite_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Starts demo portals with the keys asked for (one database, one provider key)."""
    servers: list[LiveServer] = []

    def start(**keys: object) -> LiveServer:
        port = free_port()
        settings = demo_settings(
            "127.0.0.1",
            port,
            var=tmp_path / "var",
            database_url=sqlite_url,
            apps_file=EXAMPLE_APPS,
            spool_dir=tmp_path / "spool",
            **keys,
        )
        server = LiveServer(build_demo_app(settings, var=tmp_path / "var"), port).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _resign_session(cookie: str) -> str:
    payload = Signer(NEW, salt="launcher.session", digest_method=hashlib.sha256).unsign(cookie)
    return Signer(OLD, salt="launcher.session", digest_method=hashlib.sha256).sign(payload).decode()


def _resign_login(client: httpx.Client) -> None:
    """Re-sign the login-attempt cookie as the portal would have before the rotation."""
    (name,) = [n for n in client.cookies if n.startswith("launcher_login-")]
    data = URLSafeTimedSerializer(NEW, salt="launcher.login").loads(client.cookies[name])
    old = URLSafeTimedSerializer(OLD, salt="launcher.login").dumps(data)
    client.cookies.delete(name)
    client.cookies.set(name, old, domain="127.0.0.1", path="/")


def _sign_in_with_an_old_login_cookie(client: httpx.Client, base: str) -> httpx.Response:
    """sign_in() of conftest, with the login cookie re-signed with the old key midway."""
    resp = client.get(f"{base}/login", params={"next": "/"})
    _resign_login(client)
    authorize = client.get(resp.headers["location"])
    fields = dict(
        re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', authorize.text)
    )
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    fields["user"] = STAFF.sub
    granted = client.post(str(authorize.url), data=fields, headers={"Origin": base})
    assert granted.status_code == 302
    return client.get(granted.headers["location"])


def _session_cookie_of_the_old_key(server: LiveServer) -> tuple[str, str]:
    """A session cookie as the portal signed it before the rotation, and that session's
    CSRF token of then."""
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        sign_in(browser, server.url, STAFF.sub)
        cookie = _resign_session(browser.cookies["launcher_session"])
    payload = Signer(OLD, salt="launcher.session", digest_method=hashlib.sha256).unsign(cookie)
    sid = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))[0]
    return cookie, csrf.token_for(OLD, sid)


def test_cookies_and_forms_of_the_old_key_still_work_after_a_rotation_with_the_fallback(
    portal: Callable[..., LiveServer],
) -> None:
    server = portal(secret_key=NEW, secret_key_fallbacks=OLD)
    cookie, token = _session_cookie_of_the_old_key(server)
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        browser.cookies.set("launcher_session", cookie, domain="127.0.0.1", path="/")
        assert browser.get(f"{server.url}/").status_code == 200
        out = browser.post(f"{server.url}/logout", data={"csrf_token": token})
        assert out.status_code == 303 and "/end-session" in out.headers["location"]
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        landed = _sign_in_with_an_old_login_cookie(browser, server.url)
        assert landed.status_code == 303 and landed.headers["location"] == "/"
        new_cookie = browser.cookies["launcher_session"]
    # and what it issues is signed with the new key
    Signer(NEW, salt="launcher.session", digest_method=hashlib.sha256).unsign(new_cookie)


def test_without_the_fallback_the_old_keys_cookies_and_forms_are_refused(
    portal: Callable[..., LiveServer],
) -> None:
    server = portal(secret_key=NEW)
    cookie, _ = _session_cookie_of_the_old_key(server)
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        browser.cookies.set("launcher_session", cookie, domain="127.0.0.1", path="/")
        assert browser.get(f"{server.url}/").status_code == 303  # to the sign-in
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        landed = _sign_in_with_an_old_login_cookie(browser, server.url)
        assert landed.status_code == 400 and "expired" in landed.text

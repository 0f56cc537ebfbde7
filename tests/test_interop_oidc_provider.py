"""Interoperability with an OpenID-Certified provider: the npm package ``oidc-provider``.

The provider runs as a Node subprocess (``tests/interop/provider.mjs``) with its development
login and consent pages; the portal runs in a live uvicorn server. The tests drive the whole
journey over real HTTP the way a browser does: following redirects, submitting the provider's
forms and keeping both sites' cookies. Without Node or the package (``npm install`` in
``tests/``) the tests skip locally and fail under CI, so that CI can never pass without them.
"""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import sqlalchemy as sa

from launcher.app import create_app
from launcher.settings import Settings
from tests.conftest import LiveServer, free_port

pytestmark = pytest.mark.interop

TESTS = Path(__file__).resolve().parent
PROVIDER_SCRIPT = TESTS / "interop" / "provider.mjs"
PROVIDER_PACKAGE = TESTS / "node_modules" / "oidc-provider" / "package.json"
CLIENT_ID = "launcher-interop"
CLIENT_SECRET = "interop-client-secret-0123456789abcdef"
SCOPES = "openid profile email groups"  # the provider releases groups and department with "groups"
# The provider script's built-in demo accounts (any other login name is plain staff).
ALICE = {"login": "alice", "name": "Alice Jansen", "email": "alice+portal@zorggroep-noord.example"}
BOB = {"login": "bob", "name": "Bob de Vries"}
STARTUP_TIMEOUT = 20.0  # seconds for node to load oidc-provider and listen


def _node_or_missing() -> str:
    """The node executable; skips locally and fails under CI when node or the package is missing."""
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node is not installed (Node 20+ runs the oidc-provider interop tests)"
    elif not PROVIDER_PACKAGE.is_file():
        reason = f"oidc-provider is not installed (run `npm install` in {TESTS})"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; the interop tests are required in CI")
        pytest.skip(reason)
    assert node is not None
    return node


class NodeProvider:
    """oidc-provider in a Node subprocess; its output is collected line by line."""

    def __init__(self, node: str, port: int, client: Mapping[str, object]) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [node, str(PROVIDER_SCRIPT), "--port", str(port), "--issuer", self.issuer],
            env={**os.environ, "OP_CLIENT": json.dumps(client)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, prefix: str, timeout: float, after: int = 0) -> str:
        """The first output line from index ``after`` on that starts with ``prefix``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"oidc-provider printed no {prefix!r} line; its output:\n"
                        + "\n".join(self.lines)
                    )
                self._cond.wait(min(left, 0.1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@dataclass
class Interop:
    op: NodeProvider
    portal: LiveServer
    settings: Settings

    def browser(self) -> httpx.Client:
        return httpx.Client(follow_redirects=False, timeout=10)


@pytest.fixture
def interop(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], sqlite_url: str
) -> Iterator[Interop]:
    """The provider and the portal; ``indirect`` parameters override the client's registration."""
    node = _node_or_missing()
    overrides: dict[str, str] = getattr(request, "param", {})
    secret = overrides.get("client_secret", CLIENT_SECRET)
    op_port, portal_port = free_port(), free_port()
    portal_url = f"http://127.0.0.1:{portal_port}"
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{portal_url}/auth/callback"],
        "post_logout_redirect_uris": [f"{portal_url}/signed-out"],
        "backchannel_logout_uri": f"{portal_url}/auth/backchannel-logout",
        **overrides,
    }
    op = NodeProvider(node, op_port, client)
    try:
        op.wait_for("ready ", STARTUP_TIMEOUT)
        settings = make_settings(
            oidc_issuer=op.issuer,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=secret,
            oidc_scopes=SCOPES,
            base_url=portal_url,
            database_url=sqlite_url,
        )
        with LiveServer(create_app(settings), portal_port) as portal:
            yield Interop(op, portal, settings)
    finally:
        op.stop()


# --- a browser, as far as these pages need one -----------------------------------------------
@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (name, value)


class _FormParser(html.parser.HTMLParser):
    """Forms with their inputs, and submit buttons (also those outside, with ``form=id``)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, Form] = {}
        self._current: str | None = None
        self._button: tuple[str, str, str] | None = None  # form key, name, value
        self._label: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = a.get("id") or f"form{len(self.forms)}"
            self.forms[self._current] = Form(action=a.get("action", ""))
        elif tag == "input" and self._current and a.get("name"):
            if a.get("type", "text") not in ("submit", "button", "checkbox", "radio"):
                self.forms[self._current].fields[a["name"]] = a.get("value", "")
        elif tag == "button":
            key = a.get("form") or self._current
            if key is not None:
                self._button, self._label = (key, a.get("name", ""), a.get("value", "")), []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._label.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag == "button" and self._button is not None:
            key, name, value = self._button
            if key in self.forms:
                self.forms[key].buttons["".join(self._label).strip()] = (name, value)
            self._button = None


def forms_of(page: httpx.Response) -> list[Form]:
    parser = _FormParser()
    parser.feed(page.text)
    parser.close()
    return list(parser.forms.values())


def submit(
    client: httpx.Client,
    page: httpx.Response,
    form: Form,
    button: str | None = None,
    **values: str,
) -> httpx.Response:
    """Post ``form`` as a browser would: its fields, the clicked button's name/value, an Origin."""
    data = {**form.fields, **values}
    if button is not None:
        name, value = form.buttons[button]
        if name:
            data[name] = value
    url = page.url.join(form.action)
    return client.post(url, data=data, headers={"Origin": f"{url.scheme}://{url.netloc.decode()}"})


def follow(client: httpx.Client, resp: httpx.Response, stop_at: str = "") -> httpx.Response:
    """Follow redirects (GET), stopping at the redirect whose target starts with ``stop_at``."""
    for _ in range(10):
        if not resp.is_redirect:
            return resp
        target = resp.url.join(resp.headers["location"])
        if stop_at and str(target).startswith(stop_at):
            return resp
        resp = client.get(target)
    raise AssertionError(f"too many redirects, last at {resp.url}")


def form_with(page: httpx.Response, name: str, value: str) -> Form:
    matches = [f for f in forms_of(page) if f.fields.get(name) == value]
    assert len(matches) == 1, f"no single form with {name}={value} at {page.url}:\n{page.text}"
    return matches[0]


def sign_in(env: Interop, client: httpx.Client, login: str, next_path: str = "/") -> httpx.Response:
    """Portal /login -> provider login form -> consent form -> portal callback (its answer)."""
    portal = env.portal.url
    start = client.get(f"{portal}/login", params={"next": next_path})
    assert start.status_code in (302, 303), start.text
    authorize = httpx.URL(start.headers["location"])
    assert str(authorize).startswith(f"{env.op.issuer}/auth?")
    query = parse_qs(authorize.query.decode())
    assert query["client_id"] == [CLIENT_ID]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"{portal}/auth/callback"]
    assert query["scope"] == [SCOPES]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"][0] and query["state"][0] and query["nonce"][0]

    login_page = follow(client, client.get(authorize))
    assert login_page.status_code == 200, login_page.text
    login_form = form_with(login_page, "prompt", "login")
    consent_page = follow(client, submit(client, login_page, login_form, login=login, password="x"))
    assert consent_page.status_code == 200, consent_page.text
    assert "<li>groups</li>" in consent_page.text  # the provider asks to release groups
    consent = submit(client, consent_page, form_with(consent_page, "prompt", "consent"))
    to_callback = follow(client, consent, stop_at=f"{portal}/auth/callback")
    assert to_callback.is_redirect, to_callback.text
    callback_url = to_callback.url.join(to_callback.headers["location"])
    answer = parse_qs(callback_url.query.decode())
    assert answer["iss"] == [env.op.issuer]  # RFC 9207, which the portal checks
    assert answer["state"] == query["state"] and answer["code"][0]
    return client.get(callback_url)


def provider_logout(client: httpx.Client, page: httpx.Response) -> httpx.Response:
    """Confirm oidc-provider's "Do you want to sign-out?" page with "Yes, sign me out"."""
    assert page.status_code == 200, page.text
    (form,) = forms_of(page)
    assert "xsrf" in form.fields
    return submit(client, page, form, "Yes, sign me out")


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _session_cookie(env: Interop, client: httpx.Client) -> str:
    value = client.cookies.get(env.settings.session_cookie)
    assert value, "no portal session cookie"
    return value


def _signed_in(env: Interop, cookie: str) -> bool:
    """Whether a browser holding only this portal cookie is signed in."""
    with httpx.Client(follow_redirects=False, timeout=10) as other:
        other.cookies.set(env.settings.session_cookie, cookie)
        resp = other.get(f"{env.portal.url}/")
    if resp.status_code == 303:
        assert resp.headers["location"] == "/login?next=/"
        return False
    assert resp.status_code == 200, resp.text
    return True


# --- the tests ---------------------------------------------------------------------------------
def test_sign_in_grid_launch_sign_out(interop: Interop) -> None:
    env, portal = interop, interop.portal.url
    with env.browser() as client:
        anonymous = client.get(f"{portal}/")
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/login?next=/"

        landed = sign_in(env, client, ALICE["login"], next_path="/")
        assert landed.status_code == 303, landed.text
        assert landed.headers["location"] == "/"
        grid = client.get(f"{portal}/")
        assert grid.status_code == 200
        assert ALICE["name"] in grid.text  # from userinfo: the ID token carries only sub
        assert 'href="/launch/ehr"' in grid.text  # groups released by the provider: clinicians
        assert 'href="/launch/teams"' in grid.text
        assert '<form method="post" action="/logout"' in grid.text

        launched = client.get(f"{portal}/launch/teams")
        assert launched.status_code == 303
        assert launched.headers["location"] == (
            "https://teams.microsoft.com/?login_hint=alice%2Bportal%40zorggroep-noord.example"
        )
        ehr = client.get(f"{portal}/launch/ehr")  # {upn} falls back to preferred_username
        assert ehr.status_code == 303
        assert ehr.headers["location"] == "https://epd.zorggroep-noord.example/?user=alice"

        engine = sa.create_engine(env.settings.database_url)
        try:

            def launches() -> list[tuple[str, str | None]]:
                with engine.connect() as conn:
                    query = sa.text("SELECT app_id, department FROM launch_event ORDER BY id")
                    return [(r.app_id, r.department) for r in conn.execute(query)]

            assert _wait_for(lambda: len(launches()) == 2)
            assert launches() == [("teams", "nursing"), ("ehr", "nursing")]
        finally:
            engine.dispose()

        cookie = _session_cookie(env, client)
        csrf = grid.text.split('name="csrf_token" value="')[1].split('"')[0]
        seen = len(env.op.lines)
        out = client.post(f"{portal}/logout", data={"csrf_token": csrf}, headers={"Origin": portal})
        assert out.status_code == 303
        end_session = httpx.URL(out.headers["location"])
        assert str(end_session).startswith(f"{env.op.issuer}/session/end?")
        assert parse_qs(end_session.query.decode()) == {
            "client_id": [CLIENT_ID],
            "post_logout_redirect_uri": [f"{portal}/signed-out"],
        }
        confirmed = provider_logout(client, client.get(end_session))
        assert confirmed.status_code == 303
        assert confirmed.headers["location"] == f"{portal}/signed-out"
        signed_out = client.get(confirmed.headers["location"])
        assert signed_out.status_code == 200
        # Ending the provider session also notifies the portal over the back channel.
        env.op.wait_for(f"backchannel.success {CLIENT_ID} ", timeout=5, after=seen)

        assert client.get(f"{portal}/").status_code == 303
        assert not _signed_in(env, cookie), "the session cookie still works after sign-out"

        # The provider session is over too: signing in again asks for a login.
        again = client.get(f"{portal}/login", params={"next": "/"})
        login_page = follow(client, client.get(again.headers["location"]))
        assert login_page.status_code == 200
        form_with(login_page, "prompt", "login")


def test_groups_from_the_provider_decide_the_tiles(interop: Interop) -> None:
    env, portal = interop, interop.portal.url
    with env.browser() as client:
        assert sign_in(env, client, BOB["login"]).status_code == 303
        grid = client.get(f"{portal}/")
        assert grid.status_code == 200
        assert BOB["name"] in grid.text
        assert 'href="/launch/teams"' in grid.text
        assert 'href="/launch/ehr"' not in grid.text  # staff only, not clinicians
        assert 'href="/launch/medication"' not in grid.text
        assert client.get(f"{portal}/launch/ehr").status_code == 404


def test_backchannel_logout_from_the_provider_ends_the_portal_session(interop: Interop) -> None:
    env, portal = interop, interop.portal.url
    with env.browser() as first, env.browser() as second:
        assert sign_in(env, first, ALICE["login"]).status_code == 303
        assert sign_in(env, second, ALICE["login"]).status_code == 303  # another device
        first_cookie = _session_cookie(env, first)
        second_cookie = _session_cookie(env, second)
        assert _signed_in(env, first_cookie) and _signed_in(env, second_cookie)

        # Sign out at the provider itself (not through the portal) in the first browser.
        seen = len(env.op.lines)
        confirmed = provider_logout(first, first.get(f"{env.op.issuer}/session/end"))
        assert confirmed.status_code == 303
        done = follow(first, confirmed)
        assert done.status_code == 200 and "Sign-out Success" in done.text
        line = env.op.wait_for(f"backchannel.success {CLIENT_ID} ", timeout=5, after=seen)
        assert "backchannel.error" not in env.op.output(), env.op.output()
        sid = line.split()[2]
        assert sid not in ("", "undefined")  # a sid was sent: only that provider session ends

        # The portal never saw this browser sign out, yet its session is dead on the server.
        assert first.cookies.get(env.settings.session_cookie) == first_cookie
        assert first.get(f"{portal}/").status_code == 303
        assert not _signed_in(env, first_cookie)
        # The same user's session from the other device belongs to another provider session.
        assert _signed_in(env, second_cookie)
        assert second.get(f"{portal}/").status_code == 200


@pytest.mark.parametrize(
    "interop",
    [
        pytest.param(
            {
                "client_secret": "base64+like/secret%with=reserved",
                "token_endpoint_auth_method": "client_secret_post",
            },
            id="secret with + and %",
        )
    ],
    indirect=True,
)
def test_secret_with_reserved_characters_signs_in(interop: Interop) -> None:
    # Inside HTTP Basic, RFC 6749 2.3.1 wants the secret form-encoded; oidc-provider decodes it
    # ("+" becomes a space), Authlib sends it raw. The portal posts such a secret instead.
    env = interop
    with env.browser() as client:
        landed = sign_in(env, client, BOB["login"])
        assert landed.status_code == 303, landed.text
        grid = client.get(f"{env.portal.url}/")
        assert grid.status_code == 200 and BOB["name"] in grid.text

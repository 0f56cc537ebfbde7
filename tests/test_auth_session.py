"""Sessions (launcher/auth/session.py): new at each sign-in, timeouts, forgery, revocation,
what the cookie holds (README, "Security").

Handler tests run in process with minted cookies; a real sign-in over HTTP only where the
sign-in is what is tested (a new session id, the cookies the flow sets, tokens kept out).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from launcher import db
from launcher.app import create_app
from launcher.auth.session import Revocations, SessionCodec
from launcher.models import Revocation, table
from launcher.settings import Settings
from tests.conftest import MakePortal
from tests.helpers import (
    ADMIN,
    EXAMPLE_APPS,
    STAFF,
    DemoUser,
    InProcess,
    LiveServer,
    TestClient,
    create_devidp,
    demo_settings,
    dev_client,
    free_port,
    live_demo,
    pick_user,
    sign_in,
    wait_until,
)
from tests.web import (
    API,
    b64,
    client,
    csrf_of,
    header_problems,
    login_set_cookie,
    payload,
    set_cookie,
)

Demo = tuple[LiveServer, Settings]


def _live_get(server: LiveServer, settings: Settings, path: str, cookie: str) -> int:
    with client() as other:
        return other.get(
            f"{server.url}{path}", headers={"Cookie": f"{settings.session_cookie}={cookie}"}
        ).status_code


# --- a new session at every sign-in: the flow over HTTP --------------------------------------
def test_every_sign_in_makes_a_new_session_and_kills_the_previous_one(
    demo_server_sqlite: Demo,
) -> None:
    server, settings = demo_server_sqlite
    name = settings.session_cookie
    with client() as browser:
        # a second tab starts its sign-in first; the first tab signs in, then the second does
        second_tab = browser.get(f"{server.url}/login", params={"next": "/admin"})
        assert second_tab.status_code in (302, 303)
        sign_in(browser, server.url, STAFF.sub)
        first = browser.cookies[name]
        assert _live_get(server, settings, "/", first) == 200

        landed = pick_user(browser, second_tab.headers["location"], ADMIN.sub)
        assert landed.status_code == 303 and landed.headers["location"] == "/admin"
        second = set_cookie(landed, name)[0]

    assert second != first
    old, new = payload(first), payload(second)
    assert old[0] != new[0], "the session id must change at sign-in"
    assert new[4][1] == ADMIN.sub and old[4][1] == STAFF.sub
    assert _live_get(server, settings, "/admin", second) == 200
    with client() as other:  # a copy of the old cookie is dead now
        stale = other.get(f"{server.url}/", headers={"Cookie": f"{name}={first}"})
    assert stale.status_code == 303 and stale.headers["location"] == "/login?next=/"


def test_consecutive_sign_ins_never_reuse_a_session_id(demo_server_sqlite: Demo) -> None:
    server, settings = demo_server_sqlite
    sids = set()
    for _ in range(3):
        with client() as browser:
            sign_in(browser, server.url, STAFF.sub)
            sids.add(payload(browser.cookies[settings.session_cookie])[0])
    assert len(sids) == 3


# --- sign-out, timeouts, forgery: in process ------------------------------------------------
def test_copied_cookie_is_refused_after_logout_in_another_worker_too(
    make_portal: MakePortal, database_url: str
) -> None:
    """Sign-out reaches every worker through the revocation table within ~2 s."""
    here = make_portal(database_url=database_url)
    other = make_portal(database_url=database_url)  # the same database: a second worker
    cookie = here.cookie(STAFF)
    assert here.get("/", cookie).status_code == 200
    assert other.get("/", cookie).status_code == 200

    grid = here.get("/", cookie)
    out = here.post("/logout", cookie, data={"csrf_token": csrf_of(grid.text)})
    assert out.status_code == 303
    logged_out = time.monotonic()

    refused = here.get("/", cookie)
    assert refused.status_code == 303 and refused.headers["location"] == "/login?next=/"
    # workers poll the revocations once a second; allow one poll plus a little slack
    assert wait_until(lambda: other.get("/", cookie).status_code == 303, 2.5)
    assert time.monotonic() - logged_out <= 2.5
    assert other.get(API, cookie).status_code == 401


def test_idle_timeout_refuses_an_idle_cookie_and_activity_moves_the_clock(
    portal: InProcess,
) -> None:
    codec, settings = portal.codec, portal.settings
    session = codec.loads(portal.cookie(STAFF))
    assert session is not None
    idle = settings.session_idle_timeout
    now = time.time()

    too_idle = codec.dumps(dataclasses.replace(session, seen=int(now - idle - 2)))
    refused = portal.get("/", too_idle)
    assert refused.status_code == 303 and refused.headers["location"] == "/login?next=/"
    assert portal.get(API, too_idle).status_code == 401

    nearly_idle = codec.dumps(dataclasses.replace(session, seen=int(now - idle + 30)))
    page = portal.get("/", nearly_idle)
    assert page.status_code == 200
    # the visit re-issued the cookie with a fresh idle clock (same session, same start)
    renewed = codec.loads(set_cookie(page, settings.session_cookie)[0])
    assert renewed is not None
    assert renewed.sid == session.sid and renewed.created == session.created
    assert renewed.seen >= int(now)
    later = now + 60
    assert codec.loads(nearly_idle, now=later) is None
    assert codec.loads(codec.dumps(renewed), now=later) is not None


def test_absolute_timeout_ends_a_session_however_active(portal: InProcess) -> None:
    codec, settings = portal.codec, portal.settings
    session = codec.loads(portal.cookie(STAFF))
    assert session is not None
    absolute = settings.session_absolute_timeout
    now = time.time()

    too_old = codec.dumps(dataclasses.replace(session, created=now - absolute - 2, seen=int(now)))
    refused = portal.get("/", too_old)
    assert refused.status_code == 303 and refused.headers["location"] == "/login?next=/"

    old_but_alive = dataclasses.replace(
        session, created=round(now - absolute + 30, 3), seen=int(now) - 120
    )
    page = portal.get("/", codec.dumps(old_but_alive))
    assert page.status_code == 200
    renewed = codec.loads(set_cookie(page, settings.session_cookie)[0])
    assert renewed is not None
    assert renewed.created == old_but_alive.created, "activity must not extend the session"
    assert codec.loads(codec.dumps(renewed), now=now + 31) is None


def _resign_payload(cookie: str, settings: Settings, codec: SessionCodec) -> str:
    signature = cookie.rpartition(".")[2]
    edited_payload = payload(cookie)
    edited_payload[4][6] = [*edited_payload[4][6], "launcher-admins"]
    edited = b64(json.dumps(edited_payload, separators=(",", ":")).encode())
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
    data, _, signature = cookie.rpartition(".")
    return f"{data}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


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
    portal: InProcess, tamper: Callable[[str, Settings, SessionCodec], str]
) -> None:
    cookie = portal.cookie(STAFF)
    assert portal.get("/admin", cookie).status_code == 403  # signed in, not admin

    forged = tamper(cookie, portal.settings, portal.codec)
    assert forged != cookie
    admin = portal.get("/admin", forged)
    assert admin.status_code == 303 and admin.headers["location"] == "/login?next=/admin"
    assert portal.get("/", forged).status_code == 303
    assert portal.get(API, forged).status_code == 401


# --- what the sign-in puts in the cookie: the flow over HTTP --------------------------------
@pytest.mark.slow
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
    with live_demo(tmp_path, sqlite_url, users=[user, STAFF]) as live, client() as browser:
        landed = sign_in(browser, live.url, user.sub)
        value, _ = set_cookie(landed, live.settings.session_cookie)
        size = len(live.settings.session_cookie) + 1 + len(value)
        assert size < 4096, f"session cookie is {size} bytes"

        inside = payload(value)
        strings = json.dumps(inside)
        assert set(inside[4][6]) == {"clinicians", "launcher-reviewers"}
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

    with live_demo(tmp_path / "small", sqlite_url, users=[STAFF]) as live, client() as browser:
        landed = sign_in(browser, live.url, STAFF.sub)
        value, _ = set_cookie(landed, live.settings.session_cookie)
        assert len(value) < 1024


def test_cookies_are_httponly_samesite_lax_and_not_secure_on_http(
    demo_server_sqlite: Demo,
) -> None:
    server, settings = demo_server_sqlite
    assert not settings.https
    with client() as browser:
        started = browser.get(f"{server.url}/login")
        landed = sign_in(browser, server.url, STAFF.sub)
        grid = browser.get(f"{server.url}/")
        out = browser.post(f"{server.url}/logout", data={"csrf_token": csrf_of(grid.text)})
    cookies = {
        "login cookie": login_set_cookie(started, settings.login_cookie)[1],
        "session cookie": set_cookie(landed, settings.session_cookie)[1],
        "session cookie cleared at logout": set_cookie(out, settings.session_cookie)[1],
    }
    assert settings.session_cookie == "launcher_session"
    for what, attributes in cookies.items():
        assert "httponly" in attributes, what
        assert attributes.get("samesite", "").lower() == "lax", what
        assert "secure" not in attributes, what
        assert attributes.get("path") == "/", what
        assert "domain" not in attributes, what
    assert int(set_cookie(out, settings.session_cookie)[1]["max-age"]) <= 0


@pytest.mark.slow
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
    idp = create_devidp(issuer, [dev_client(settings)])
    provider = Starlette(routes=[Mount("/_devidp", app=idp)])
    with (
        LiveServer(provider, idp_port),
        TestClient(
            create_app(settings, migrate=True, writer="thread"),
            base_url=base,
            follow_redirects=False,
        ) as portal,
        client() as at_provider,
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
            "/logout", data={"csrf_token": csrf_of(grid.text)}, headers={"Origin": base}
        )
        assert out.status_code == 303
        missing = portal.get("/launch/nope")

    cookies = {
        "__Host-launcher-login": login_set_cookie(started, "__Host-launcher-login")[1],
        "__Host-launcher": set_cookie(landed, "__Host-launcher")[1],
        "__Host-launcher (cleared)": set_cookie(out, "__Host-launcher")[1],
    }
    for what, attributes in cookies.items():
        assert "secure" in attributes, what
        assert attributes.get("path") == "/", what
        assert "domain" not in attributes, what
        assert "httponly" in attributes, what
        assert attributes.get("samesite", "").lower() == "lax", what
    for response in (started, landed, grid, out, missing):
        assert header_problems(response, https=True) == [], response.url


# --- Revocations: the table and this worker's memory ----------------------------------------
def test_a_revocation_committed_late_is_not_missed(database_url: str) -> None:
    """On PostgreSQL ids are handed out at insert and rows appear at commit: a sign-out that
    commits after a later one was already read must still reach every worker."""
    engine = db.make_engine(database_url)
    revocation = table(Revocation)
    worker = Revocations(engine)
    worker.poll()
    now = dt.datetime.now(dt.UTC)
    row = {"created_at": now, "expires_at": now + dt.timedelta(hours=1)}
    # a row with a higher id becomes visible first ...
    with engine.begin() as conn:
        conn.execute(sa.insert(revocation), [{"id": 5, "kind": "sid", "value": "late", **row}])
        conn.execute(sa.insert(revocation), [{"id": 9, "kind": "sid", "value": "early", **row}])
        conn.execute(sa.delete(revocation).where(revocation.c.id == 5))
    worker.poll()
    assert "early" in worker._sids and worker._last_id == 9
    # ... and the lower id commits only now
    with engine.begin() as conn:
        conn.execute(sa.insert(revocation), [{"id": 5, "kind": "sid", "value": "late", **row}])
    worker.poll()
    assert "late" in worker._sids
    engine.dispose()


def test_expired_revocations_are_forgotten(sqlite_url: str) -> None:
    worker = Revocations(db.make_engine(sqlite_url))
    now = dt.datetime.now(dt.UTC)
    worker._apply("sid", "old", now, now - dt.timedelta(seconds=1))
    worker._apply("sid", "live", now, now + dt.timedelta(hours=1))
    worker.purge()
    assert set(worker._sids) == {"live"}

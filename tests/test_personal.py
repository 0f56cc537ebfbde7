"""Favourites, recently used apps and requests for missing apps: the domain functions on both
databases, and the grid and admin page over real HTTP (CSRF, who may do what, injection)."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from launcher import app_requests, db, personal
from launcher.demo.devidp import DEMO_USERS
from launcher.errors import BadRequest, TooManyRequests
from launcher.events import BatchWriter, Launch
from launcher.settings import Settings
from tests.conftest import LiveServer, sign_in

STAFF = next(u for u in DEMO_USERS if u.groups == ("staff",))
ADMIN = next(u for u in DEMO_USERS if "launcher-admins" in u.groups)
NOW = dt.datetime(2026, 5, 20, 12, tzinfo=dt.UTC)


def _engine(database_url: str) -> sa.Engine:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    return engine


def test_favourites_are_per_user_ordered_and_idempotent(database_url: str) -> None:
    engine = _engine(database_url)
    for app in ("teams", "ehr", "teams", "outlook"):  # starring twice changes nothing
        personal.set_favourite(engine, "u1", app, True)
        time.sleep(0.002)  # distinct star times
    personal.set_favourite(engine, "u2", "rooster", True)
    personal.set_favourite(engine, "u1", "ehr", False)
    personal.set_favourite(engine, "u1", "ehr", False)  # un-starring twice too
    with engine.connect() as conn:
        assert personal.favourites(conn, "u1") == ["teams", "outlook"]
        assert personal.favourites(conn, "u2") == ["rooster"]
        assert personal.favourites(conn, "nobody") == []
    engine.dispose()


def test_recent_is_the_users_latest_launches_within_the_window(
    database_url: str, tmp_path: Path
) -> None:
    engine = _engine(database_url)
    hour = dt.timedelta(hours=1)
    launches = [
        Launch(NOW - 5 * hour, "teams", "u1", None, "portal"),
        Launch(NOW - 4 * hour, "ehr", "u1", None, "portal"),
        Launch(NOW - 3 * hour, "teams", "u1", None, "portal"),  # teams again: most recent now
        Launch(NOW - 1 * hour, "outlook", "u2", None, "portal"),  # someone else's
        Launch(NOW - dt.timedelta(days=personal.RECENT_DAYS + 1), "hr", "u1", None, "portal"),
    ]
    BatchWriter(engine, tmp_path / "spool", None).write("b1", launches, [], ZoneInfo("UTC"))
    with engine.connect() as conn:
        assert personal.recent(conn, "u1", now=NOW) == ["teams", "ehr"]
        assert personal.recent(conn, "u2", now=NOW) == ["outlook"]
        assert personal.recent(conn, "nobody", now=NOW) == []
    engine.dispose()


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match[1]


def _section(page: str, heading_id: str) -> list[str]:
    """The app ids of the tiles in the section headed by ``heading_id`` (empty if absent)."""
    match = re.search(rf'<section [^>]*aria-labelledby="{heading_id}">(.*?)</section>', page, re.S)
    return re.findall(r'href="/launch/([^"]+)"', match[1]) if match else []


def _star(client: httpx.Client, base: str, app: str, on: bool, token: str) -> httpx.Response:
    return client.post(
        f"{base}/favourites/{app}",
        data={"csrf_token": token, "favourite": "on" if on else "off"},
    )


def test_star_and_unstar_on_the_grid(demo_server: tuple[LiveServer, Settings]) -> None:
    server, _ = demo_server
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        sign_in(client, server.url, STAFF.sub)
        grid = client.get(f"{server.url}/")
        assert _section(grid.text, "cat-favourites") == []
        token = _csrf(grid.text)
        # each tile has its own toggle, not pressed yet
        assert 'action="/favourites/teams"' in grid.text
        assert 'aria-pressed="true"' not in grid.text

        starred = _star(client, server.url, "teams", True, token)
        assert starred.status_code == 303 and starred.headers["location"] == "/#app-teams"
        _star(client, server.url, "outlook", True, token)
        grid = client.get(f"{server.url}/")
        assert _section(grid.text, "cat-favourites") == ["teams", "outlook"]
        assert grid.text.count('aria-pressed="true"') == 4  # in Favourites and in its category

        _star(client, server.url, "teams", False, token)
        grid = client.get(f"{server.url}/")
        assert _section(grid.text, "cat-favourites") == ["outlook"]


def test_starring_needs_the_csrf_token_and_a_visible_app(
    demo_server: tuple[LiveServer, Settings],
) -> None:
    server, _ = demo_server
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        sign_in(client, server.url, STAFF.sub)
        token = _csrf(client.get(f"{server.url}/").text)
        assert _star(client, server.url, "teams", True, "forged").status_code == 403
        assert client.post(f"{server.url}/favourites/teams").status_code == 403
        assert _star(client, server.url, "ehr", True, token).status_code == 404  # clinicians'
        assert _star(client, server.url, "time-tracking", True, token).status_code == 404  # hidden
        assert _star(client, server.url, "no-such-app", True, token).status_code == 404
        grid = client.get(f"{server.url}/")
        assert _section(grid.text, "cat-favourites") == []
        assert "ehr" not in grid.text
    with httpx.Client(follow_redirects=False, timeout=10) as anonymous:
        refused = anonymous.post(f"{server.url}/favourites/teams", data={"favourite": "on"})
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")


def test_recently_used_follows_launches(demo_server: tuple[LiveServer, Settings]) -> None:
    server, _ = demo_server
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        sign_in(client, server.url, STAFF.sub)
        assert _section(client.get(f"{server.url}/").text, "cat-recent") == []
        for app in ("teams", "outlook", "teams"):
            assert client.get(f"{server.url}/launch/{app}").status_code == 303
            time.sleep(0.05)
        client.get(f"{server.url}/launch/time-tracking")  # hidden apps have no tile anywhere

        deadline = time.monotonic() + 10
        while _section(client.get(f"{server.url}/").text, "cat-recent") != ["teams", "outlook"]:
            assert time.monotonic() < deadline, client.get(f"{server.url}/").text
            time.sleep(0.1)


def test_the_grid_works_when_the_database_does_not(
    demo_server_sqlite: tuple[LiveServer, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = demo_server_sqlite

    def down(engine: sa.Engine, user_id: str) -> tuple[list[str], list[str]]:
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is down (deliberate)"))

    with httpx.Client(follow_redirects=False, timeout=10) as client:
        sign_in(client, server.url, STAFF.sub)
        monkeypatch.setattr(personal, "for_grid", down)
        grid = client.get(f"{server.url}/")
    assert grid.status_code == 200
    assert 'href="/launch/teams"' in grid.text
    assert _section(grid.text, "cat-favourites") == _section(grid.text, "cat-recent") == []


# --- requests for missing apps --------------------------------------------------------------
def test_requests_are_tidied_grouped_limited_and_dismissed(database_url: str) -> None:
    engine = _engine(database_url)
    app_requests.add(engine, "u1", "nursing", "  Zorgdomein  ")
    app_requests.add(engine, "u1", "nursing", "zorgdomein")  # the same person again: once
    app_requests.add(engine, "u2", "medical", "ZorgDomein")
    app_requests.add(engine, "u3", None, "Miro")
    summary = app_requests.summary(engine)
    assert [(s.key, s.name, s.people, s.departments) for s in summary] == [
        ("zorgdomein", "ZorgDomein", 2, ("medical", "nursing")),
        ("miro", "Miro", 1, ()),
    ]
    for bad in ("", "   ", "x" * (app_requests.MAX_NAME + 1), "bell\x07", None, 42):
        with pytest.raises(BadRequest):
            app_requests.add(engine, "u1", None, bad)
    for i in range(app_requests.PER_DAY - 1):  # u1 has one already
        app_requests.add(engine, "u1", None, f"app {i}")
    with pytest.raises(TooManyRequests):
        app_requests.add(engine, "u1", None, "one too many")
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1, minutes=1)
    app_requests.add(engine, "u1", None, "one too many", now=tomorrow)
    assert app_requests.dismiss(engine, "zorgdomein") == 2
    assert "zorgdomein" not in {s.key for s in app_requests.summary(engine)}
    engine.dispose()


def test_asking_for_an_app_reaches_the_admin_page(
    demo_server: tuple[LiveServer, Settings],
) -> None:
    server, _ = demo_server
    u = server.url
    injected = '<img src=x onerror="alert(1)">Visio'
    with (
        httpx.Client(follow_redirects=False, timeout=10) as staff,
        httpx.Client(follow_redirects=False, timeout=10) as admin,
    ):
        sign_in(staff, u, STAFF.sub)
        sign_in(admin, u, ADMIN.sub)
        grid = staff.get(f"{u}/")
        assert 'action="/requests"' in grid.text
        token = _csrf(grid.text)
        asked = staff.post(f"{u}/requests", data={"csrf_token": token, "name": "ZorgDomein"})
        assert asked.status_code == 303 and asked.headers["location"] == "/?asked=1#missing"
        assert 'role="status"' in staff.get(f"{u}/?asked=1").text
        staff.post(f"{u}/requests", data={"csrf_token": token, "name": injected})
        admin.post(f"{u}/requests", data={"csrf_token": _csrf(admin.get(f"{u}/").text),
                                         "name": " zorgdomein "})  # fmt: skip

        assert staff.post(f"{u}/requests", data={"name": "Miro"}).status_code == 403  # no token
        assert (
            staff.post(f"{u}/requests", data={"csrf_token": token, "name": " "}).status_code == 400
        )
        assert staff.get(f"{u}/admin").status_code == 403

        page = admin.get(f"{u}/admin")
        assert page.status_code == 200
        rows = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td class=\"num\">(\d+)</td>", page.text)
        assert rows[0] == ("zorgdomein", "2")  # two people, the latest spelling
        assert injected not in page.text and "&lt;img src=x" in page.text

        # only admins dismiss, with the token
        form = {"csrf_token": token, "key": "zorgdomein"}
        assert staff.post(f"{u}/admin/requests/dismiss", data=form).status_code == 403
        admin_token = _csrf(page.text)
        refused = admin.post(f"{u}/admin/requests/dismiss", data={"key": "zorgdomein"})
        assert refused.status_code == 403
        done = admin.post(
            f"{u}/admin/requests/dismiss", data={"csrf_token": admin_token, "key": "zorgdomein"}
        )
        assert done.status_code == 303 and done.headers["location"] == "/admin#requests"
        page = admin.get(f"{u}/admin")
        assert "zorgdomein" not in page.text.lower() and "&lt;img src=x" in page.text

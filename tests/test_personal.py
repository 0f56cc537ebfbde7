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
from launcher.errors import BadRequest, TooManyRequests
from tests.helpers import ADMIN, STAFF, BatchWriter, InProcess, Launch

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
    return re.findall(r'href="/launch/([^"?]+)', match[1]) if match else []


def _star(portal: InProcess, who: str, app: str, on: bool, token: str) -> httpx.Response:
    return portal.post(
        f"/favourites/{app}", who, data={"csrf_token": token, "favourite": "on" if on else "off"}
    )


def test_star_and_unstar_on_the_grid(portal_any_db: InProcess) -> None:
    portal = portal_any_db
    staff = portal.cookie(STAFF)
    grid = portal.get("/", staff)
    assert _section(grid.text, "cat-favourites") == []
    token = _csrf(grid.text)
    # each tile has its own toggle, not pressed yet
    assert 'action="/favourites/teams"' in grid.text
    assert 'aria-pressed="true" title=' not in grid.text  # (the language switch has its own)

    starred = _star(portal, staff, "teams", True, token)
    assert starred.status_code == 303 and starred.headers["location"] == "/#app-teams"
    _star(portal, staff, "outlook", True, token)
    grid = portal.get("/", staff)
    assert _section(grid.text, "cat-favourites") == ["teams", "outlook"]
    assert 'href="/launch/teams?source=favourite"' in grid.text  # counted as from favourites
    # in Favourites and in its category
    assert grid.text.count('aria-pressed="true" title=') == 4

    _star(portal, staff, "teams", False, token)
    grid = portal.get("/", staff)
    assert _section(grid.text, "cat-favourites") == ["outlook"]


def test_starring_needs_the_csrf_token_and_a_visible_app(portal_any_db: InProcess) -> None:
    portal = portal_any_db
    staff = portal.cookie(STAFF)
    token = _csrf(portal.get("/", staff).text)
    assert _star(portal, staff, "teams", True, "forged").status_code == 403
    assert portal.post("/favourites/teams", staff).status_code == 403
    assert _star(portal, staff, "ehr", True, token).status_code == 404  # clinicians'
    assert _star(portal, staff, "time-tracking", True, token).status_code == 404  # hidden
    assert _star(portal, staff, "no-such-app", True, token).status_code == 404
    grid = portal.get("/", staff)
    assert _section(grid.text, "cat-favourites") == []
    assert "ehr" not in grid.text
    refused = portal.post("/favourites/teams", data={"favourite": "on"})
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")


def test_recently_used_follows_launches(portal_any_db: InProcess) -> None:
    portal = portal_any_db
    staff = portal.cookie(STAFF)
    assert _section(portal.get("/", staff).text, "cat-recent") == []
    for app in ("teams", "outlook", "teams"):
        assert portal.get(f"/launch/{app}", staff).status_code == 303
        portal.flush()  # one batch each: distinct launch times
    portal.get("/launch/time-tracking", staff)  # hidden apps have no tile anywhere
    portal.flush()
    grid = portal.get("/", staff).text
    assert _section(grid, "cat-recent") == ["teams", "outlook"], grid


def test_the_grid_works_when_the_database_does_not(
    portal: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(engine: sa.Engine, user_id: str) -> tuple[list[str], list[str]]:
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is down (deliberate)"))

    staff = portal.cookie(STAFF)
    monkeypatch.setattr(personal, "for_grid", down)
    grid = portal.get("/", staff)
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


def test_asking_for_an_app_reaches_the_admin_page(portal_any_db: InProcess) -> None:
    portal = portal_any_db
    injected = '<img src=x onerror="alert(1)">Visio'
    staff, admin = portal.cookie(STAFF), portal.cookie(ADMIN)
    grid = portal.get("/", staff)
    assert 'action="/requests"' in grid.text
    token = _csrf(grid.text)
    asked = portal.post("/requests", staff, data={"csrf_token": token, "name": "ZorgDomein"})
    assert asked.status_code == 303 and asked.headers["location"] == "/?asked=1#missing"
    assert 'role="status"' in portal.get("/?asked=1", staff).text
    portal.post("/requests", staff, data={"csrf_token": token, "name": injected})
    admin_grid_token = _csrf(portal.get("/", admin).text)
    portal.post("/requests", admin, data={"csrf_token": admin_grid_token, "name": " zorgdomein "})

    assert portal.post("/requests", staff, data={"name": "Miro"}).status_code == 403  # no token
    assert (
        portal.post("/requests", staff, data={"csrf_token": token, "name": " "}).status_code == 400
    )
    assert portal.get("/admin", staff).status_code == 403

    page = portal.get("/admin", admin)
    assert page.status_code == 200
    rows = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td class=\"num\">(\d+)</td>", page.text)
    assert rows[0] == ("zorgdomein", "2")  # two people, the latest spelling
    assert injected not in page.text and "&lt;img src=x" in page.text

    # only admins dismiss, with the token
    form = {"csrf_token": token, "key": "zorgdomein"}
    assert portal.post("/admin/requests/dismiss", staff, data=form).status_code == 403
    admin_token = _csrf(page.text)
    refused = portal.post("/admin/requests/dismiss", admin, data={"key": "zorgdomein"})
    assert refused.status_code == 403
    done = portal.post(
        "/admin/requests/dismiss", admin, data={"csrf_token": admin_token, "key": "zorgdomein"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/admin#requests"
    page = portal.get("/admin", admin)
    assert "zorgdomein" not in page.text.lower() and "&lt;img src=x" in page.text


def test_favourites_move_up_and_down_and_to_a_place(database_url: str) -> None:
    engine = _engine(database_url)
    for app in ("teams", "outlook", "ehr", "rooster"):
        personal.set_favourite(engine, "u1", app, True)
    personal.set_favourite(engine, "u2", "teams", True)

    def order(user: str = "u1") -> list[str]:
        with engine.connect() as conn:
            return personal.favourites(conn, user)

    assert order() == ["teams", "outlook", "ehr", "rooster"]  # the order of starring
    assert personal.move_favourite(engine, "u1", "ehr", "up")
    assert order() == ["teams", "ehr", "outlook", "rooster"]
    assert personal.move_favourite(engine, "u1", "teams", "down")
    assert order() == ["ehr", "teams", "outlook", "rooster"]
    assert not personal.move_favourite(engine, "u1", "ehr", "up")  # already first
    assert not personal.move_favourite(engine, "u1", "rooster", "down")  # already last
    assert not personal.move_favourite(engine, "u1", "sharepoint", "up")  # not a favourite
    assert personal.place_favourite(engine, "u1", "rooster", 0)
    assert order() == ["rooster", "ehr", "teams", "outlook"]
    assert personal.place_favourite(engine, "u1", "rooster", 99)
    assert order() == ["ehr", "teams", "outlook", "rooster"]
    personal.set_favourite(engine, "u1", "sharepoint", True)  # a new one goes last
    personal.set_favourite(engine, "u1", "teams", False)
    assert order() == ["ehr", "outlook", "rooster", "sharepoint"]
    assert order("u2") == ["teams"]  # per person
    with pytest.raises(ValueError, match="direction"):
        personal.move_favourite(engine, "u1", "ehr", "sideways")
    engine.dispose()


def test_moving_favourites_on_the_grid(portal_any_db: InProcess) -> None:
    portal = portal_any_db
    cookie = portal.cookie(STAFF)
    token = _csrf(portal.get("/", cookie).text)
    for app in ("teams", "outlook", "sharepoint"):
        assert _star(portal, cookie, app, True, token).status_code == 303
    page = portal.get("/", cookie).text
    assert _section(page, "cat-favourites") == ["teams", "outlook", "sharepoint"]
    # the first has no "up", the last no "down"
    assert 'action="/favourites/teams/move"' in page
    assert page.count('name="direction" value="up"') == 2
    assert page.count('name="direction" value="down"') == 2

    def move(app: str, **fields: str) -> httpx.Response:
        return portal.post(
            f"/favourites/{app}/move",
            cookie,
            data={"csrf_token": token, **fields},
            headers={"Origin": portal.settings.base_url},
        )

    moved = move("sharepoint", direction="up")
    assert moved.status_code == 303 and moved.headers["location"] == "/#fav-sharepoint"
    assert _section(portal.get("/", cookie).text, "cat-favourites") == [
        "teams",
        "sharepoint",
        "outlook",
    ]
    assert move("outlook", to="0").status_code == 303
    assert _section(portal.get("/", cookie).text, "cat-favourites") == [
        "outlook",
        "teams",
        "sharepoint",
    ]
    for bad in (
        {"direction": "left"},
        {},
        {"to": "-1"},
        {"to": "x"},
        {"direction": "up", "to": "1"},
    ):
        assert move("teams", **bad).status_code == 400, bad
    no_token = portal.post(
        "/favourites/teams/move",
        cookie,
        data={"direction": "up"},
        headers={"Origin": portal.settings.base_url},
    )
    assert no_token.status_code == 403
    assert _section(portal.get("/", cookie).text, "cat-favourites") == [
        "outlook",
        "teams",
        "sharepoint",
    ]

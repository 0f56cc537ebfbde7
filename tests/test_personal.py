"""Favourites, recently used apps and requests for missing apps: the domain functions on both
databases, and the grid and admin page over real HTTP (CSRF, who may do what, injection)."""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from launcher import app_requests, db, i18n, personal
from launcher.errors import BadRequest, TooManyRequests
from launcher.logs import AUDIT_ATTRIBUTE
from launcher.reports import rebuild
from tests.helpers import ADMIN, CLINICIAN, STAFF, BatchWriter, InProcess, Launch
from tests.web import csrf_of

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


def test_the_grid_reads_the_same_favourites_and_recent_apps_on_each_database(
    database_url: str, tmp_path: Path
) -> None:
    """personal.for_grid, outside a transaction on PostgreSQL (db.reading), answers what
    favourites() and recent() do in one, in their order."""
    engine = _engine(database_url)
    now = dt.datetime.now(dt.UTC)
    for app in ("teams", "ehr", "outlook"):
        personal.set_favourite(engine, "u1", app, True)
    personal.move_favourite(engine, "u1", "outlook", "up")
    apps = ["rooster", "hr", "teams", "rooster", "mail", "ehr"]
    launches = [
        Launch(now - dt.timedelta(hours=i + 1), app, "u1", None, "portal")
        for i, app in enumerate(apps)
    ]
    launches.append(Launch(now - dt.timedelta(days=91), "old", "u1", None, "portal"))
    BatchWriter(engine, tmp_path / "spool", None).write("b1", launches, [], ZoneInfo("UTC"))
    read = personal.for_grid(engine, "u1")
    assert read == (["teams", "outlook", "ehr"], ["rooster", "hr", "teams", "mail", "ehr"])
    with engine.connect() as conn:
        assert read == (personal.favourites(conn, "u1"), personal.recent(conn, "u1"))
    assert personal.for_grid(engine, "nobody") == ([], [])
    engine.dispose()


def _recent_from_launches(conn: sa.Connection, user_id: str, now: dt.datetime) -> list[str]:
    """The definition: apps by their last launch in the window, newest first, at most 20."""
    t = personal.T_LAUNCH
    last = sa.func.max(t.c.ts)
    query = (
        sa.select(t.c.app_id)
        .where(t.c.user_id == user_id, t.c.ts >= now - dt.timedelta(days=personal.RECENT_DAYS))
        .group_by(t.c.app_id)
        .order_by(last.desc(), t.c.app_id)
        .limit(personal.RECENT_READ)
    )
    return list(conn.execute(query).scalars())


def _recent_as_it_was(conn: sa.Connection, user_id: str, now: dt.datetime) -> list[str]:
    """The grid's read before user_recent: the person's newest 300 launches of the window."""
    t = personal.T_LAUNCH
    since = now - dt.timedelta(days=personal.RECENT_DAYS)
    query = (
        sa.select(t.c.app_id)
        .where(t.c.user_id == user_id, t.c.ts >= since)
        .order_by(t.c.ts.desc())
        .limit(300)
    )
    found: dict[str, None] = {}
    for app_id in conn.execute(query).scalars():
        found.setdefault(app_id)
        if len(found) == 20:
            break
    return list(found)


def test_recently_used_is_kept_by_the_flush_as_the_launches_say(
    database_url: str, tmp_path: Path
) -> None:
    """user_recent, kept batch by batch (out of order too: a spool replayed late), rebuilt and
    purged, answers what the launches themselves do, and what the grid read from them before."""
    engine = _engine(database_url)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rng = random.Random(12)
    people = ["u1", "u2", "u3", "u4"]
    apps = [f"app-{n:02d}" for n in range(40)]
    moments = rng.sample(range(1, 120 * 86400), 4000)  # seconds ago, distinct: no ties
    launches = [
        Launch(
            now - dt.timedelta(seconds=s), rng.choice(apps[: 3 + 12 * p]), people[p], None, "tile"
        )
        for s in moments
        for p in [rng.randrange(4)]
    ]
    launches.append(Launch(now - dt.timedelta(days=3), "only-once", "u5", None, "tile"))
    launches.append(Launch(now - dt.timedelta(days=95), "too-old", "u5", None, "tile"))
    writer = BatchWriter(engine, tmp_path / "spool", None)
    batches = [launches[i : i + 500] for i in range(0, len(launches), 500)]
    rng.shuffle(batches)  # newer launches before older ones
    for n, batch in enumerate(batches):
        writer.write(f"b{n}", batch, [], ZoneInfo("UTC"))

    def check() -> None:
        with engine.connect() as conn:
            for user in [*people, "u5", "nobody"]:
                expected = _recent_from_launches(conn, user, now)
                assert personal.recent(conn, user, now=now) == expected, user
                assert personal.for_grid(engine, user, now=now)[1] == expected, user
                # the newest 300 launches named every app these people used
                assert _recent_as_it_was(conn, user, now) == expected, user
            assert sorted(personal.recent(conn, "u1", now=now)) == apps[:3]
            assert personal.recent(conn, "u5", now=now) == ["only-once"]
            assert len(personal.recent(conn, "u4", now=now)) == personal.RECENT_READ

    check()
    rebuild.rebuild(engine, ZoneInfo("UTC"))  # launcher db rebuild-rollups: the same answers
    check()
    with engine.connect() as conn:
        kept = conn.execute(sa.select(sa.func.count()).select_from(personal.T_RECENT)).scalar()
    assert kept == sum(len(_distinct_recent(engine, u, now)) for u in [*people, "u5"])
    rebuild.purge_raw(engine, retention_days=30, tz=ZoneInfo("UTC"), now=now)
    with engine.connect() as conn:
        oldest = conn.execute(sa.select(sa.func.min(personal.T_RECENT.c.last_ts))).scalar()
        raw_oldest = conn.execute(sa.select(sa.func.min(personal.T_LAUNCH.c.ts))).scalar()
        assert oldest is not None and raw_oldest is not None
        assert _aware(oldest) >= _aware(raw_oldest)  # nothing older than the raw events kept
        for user in people:
            assert personal.recent(conn, user, now=now) == _recent_from_launches(conn, user, now)
    engine.dispose()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _distinct_recent(engine: sa.Engine, user_id: str, now: dt.datetime) -> set[str]:
    t = personal.T_LAUNCH
    since = now - dt.timedelta(days=personal.RECENT_DAYS)
    with engine.connect() as conn:
        query = sa.select(t.c.app_id).where(t.c.user_id == user_id, t.c.ts >= since).distinct()
        return set(conn.execute(query).scalars())


def _token_field(token: str) -> str:
    return f'<input type="hidden" name="csrf_token" value="{token}">'


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
    token = csrf_of(grid.text)
    # each tile has its own toggle, not pressed yet: a button of the page's one form with the
    # token (templates/tile.html), which posts what _star posts
    assert 'formaction="/favourites/teams" name="favourite" value="on"' in grid.text
    assert f'<form id="tile-actions" method="post" hidden>{_token_field(token)}</form>' in grid.text
    tiles = re.findall('class="tile( later)?"', grid.text)
    assert grid.text.count('form="tile-actions"') == len(tiles)
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


def _restart(engine: sa.Engine) -> int:
    """What a PostgreSQL restart does to the portal's pooled connections: the server closes
    every one of them. Returns how many were closed."""
    with engine.connect() as conn:
        closed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    engine.dispose()  # the connection above, closed too by a real restart
    return int(closed)


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_the_grid_reads_through_a_database_restart(
    make_portal: Callable[..., InProcess],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On PostgreSQL the grid's read runs on the event loop, over connections of its own
    (launcher/loop_reads.py). After a restart the first read finds its connection closed; it
    is tried once more on a new one, and the page has the person's favourites."""
    portal = make_portal(database_url=database_url)
    assert portal.app.state.loop_reads is not None  # the read this test is about

    def through_a_thread(*_: object) -> None:
        raise AssertionError("the grid read through the engine, not on the event loop")

    monkeypatch.setattr(personal, "for_grid", through_a_thread)
    staff = portal.cookie(STAFF)
    personal.set_favourite(portal.context.engine, portal.user(STAFF).user_id, "teams", True)
    assert _section(portal.get("/", staff).text, "cat-favourites") == ["teams"]
    other = db.make_engine(database_url)  # the test's own, as a restart is not the portal's

    caplog.set_level(logging.INFO, logger="launcher")
    for _ in range(2):  # and again: the new connection is kept, and replaced in its turn
        caplog.clear()
        assert _restart(other) >= 1
        grid = portal.get("/", staff)
        assert grid.status_code == 200
        assert _section(grid.text, "cat-favourites") == ["teams"]
        lost = [r for r in caplog.records if r.name == "launcher.loop_reads"]
        assert [r.getMessage().split(":")[0] for r in lost] == [
            "database connection lost; trying once more"
        ]
        assert "favourites and recent apps unavailable" not in caplog.text
    other.dispose()


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_the_engines_reads_go_through_a_database_restart(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without pool_pre_ping (launcher/db.py): a pooled connection the server closed is found
    out by a read, which db.retry_once tries once more on a new connection, or by the ping of
    a connection that was idle for PING_AFTER_IDLE."""
    engine = db.make_engine(database_url)
    other = db.make_engine(database_url)
    user_id = "u-restart"
    personal.set_favourite(engine, user_id, "teams", True)

    def read() -> list[str]:
        return db.retry_once(lambda: personal.for_grid(engine, user_id))[0]

    assert read() == ["teams"]
    caplog.set_level(logging.INFO, logger="launcher.db")
    # a connection used a moment ago is not pinged: the read fails, and is tried again
    assert _restart(other) >= 1
    assert read() == ["teams"]
    assert "database connection lost; trying once more" in caplog.text

    # a connection idle for PING_AFTER_IDLE is pinged when it is handed out: a new one instead
    caplog.clear()
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
    assert _restart(other) >= 1
    assert read() == ["teams"]
    assert "a pooled database connection is gone" in caplog.text
    assert "trying once more" not in caplog.text
    engine.dispose()
    other.dispose()


def test_starring_needs_the_csrf_token_and_a_visible_app(portal_any_db: InProcess) -> None:
    portal = portal_any_db
    staff = portal.cookie(STAFF)
    token = csrf_of(portal.get("/", staff).text)
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
    assert app_requests.dismiss(engine, "zorgdomein", "admin-1") == 2
    assert app_requests.dismiss(engine, "zorgdomein", "admin-1") == 0  # a second click
    assert "zorgdomein" not in {s.key for s in app_requests.summary(engine)}
    engine.dispose()


def test_asking_for_an_app_reaches_the_admin_page(portal_any_db: InProcess) -> None:
    portal = portal_any_db
    injected = '<img src=x onerror="alert(1)">Visio'
    staff, admin = portal.cookie(STAFF), portal.cookie(ADMIN)
    grid = portal.get("/", staff)
    assert 'action="/requests"' in grid.text
    token = csrf_of(grid.text)
    asked = portal.post("/requests", staff, data={"csrf_token": token, "name": "ZorgDomein"})
    assert asked.status_code == 303 and asked.headers["location"] == "/?asked=1#missing"
    assert 'role="status"' in portal.get("/?asked=1", staff).text
    portal.post("/requests", staff, data={"csrf_token": token, "name": injected})
    admin_grid_token = csrf_of(portal.get("/", admin).text)
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
    admin_token = csrf_of(page.text)
    refused = portal.post("/admin/requests/dismiss", admin, data={"key": "zorgdomein"})
    assert refused.status_code == 403
    done = portal.post(
        "/admin/requests/dismiss", admin, data={"csrf_token": admin_token, "key": "zorgdomein"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/admin?done=dismissed#requests"
    page = portal.get("/admin", admin)
    assert _open_requests(page.text) == ["&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Visio"]
    assert injected not in page.text
    # ... and in the history, with who closed it
    assert _history(page.text)[0][:2] == ("zorgdomein", "2")
    nl = i18n.translator("nl")  # the demo registry's default language
    assert _history(page.text)[0][3:5] == (nl("dismissed"), nl("you"))


def _open_requests(page: str) -> list[str]:
    match = re.search(r'<table class="data requests">(.*?)</table>', page, re.S)
    return re.findall(r"<tr>\s*<td>(.*?)</td>", match[1]) if match else []


def _history(page: str) -> list[tuple[str, ...]]:
    match = re.search(r'<table class="data request-history">(.*?)</table>', page, re.S)
    rows = re.findall(r"<tr>(.*?)</tr>", match[1], re.S) if match else []
    return [tuple(re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)) for row in rows if "<td" in row]


def test_closing_requests_keeps_a_history_and_notices(database_url: str) -> None:
    engine = _engine(database_url)
    earlier = NOW - dt.timedelta(days=3)
    app_requests.add(engine, "u1", "nursing", "Miro", now=earlier)
    app_requests.add(engine, "u2", "medical", "miro", now=NOW)
    app_requests.add(engine, "u2", None, "Visio", now=NOW)
    assert app_requests.mark_added(engine, "miro", "teams", "admin-1", now=NOW) == 2
    assert app_requests.dismiss(engine, "visio", "admin-2", now=NOW + dt.timedelta(hours=1)) == 1
    assert app_requests.summary(engine) == []  # nothing open
    visio, miro = app_requests.history(engine)
    assert (miro.name, miro.people, miro.departments) == ("miro", 2, ("medical", "nursing"))
    assert (miro.outcome, miro.app_id, miro.closed_by, miro.closed_at) == (
        "added",
        "teams",
        "admin-1",
        NOW,
    )
    assert (visio.outcome, visio.app_id, visio.closed_by) == ("dismissed", None, "admin-2")
    with pytest.raises(ValueError):
        app_requests.close(engine, "x", "added", "admin-1")  # added needs the app

    # u1 is told once: the grid that shows the notice stamps it, the next visit removes it
    assert app_requests.notices(engine, "u1", {"teams"}) == ["teams"]
    assert app_requests.notices(engine, "u1", {"teams"}) == []
    # u2 may not see the app yet: the notice waits for them, unstamped
    assert app_requests.notices(engine, "u2", {"outlook"}) == []
    assert app_requests.notices(engine, "u2", {"teams"}) == ["teams"]
    assert app_requests.clear_notices(engine, "u2") == 1  # the button
    assert app_requests.notices(engine, "u2", {"teams"}) == []

    # asking again after a dismissal opens a new request
    app_requests.add(engine, "u2", None, "visio", now=NOW + dt.timedelta(days=2))
    assert [s.key for s in app_requests.summary(engine)] == ["visio"]
    engine.dispose()


def test_a_workers_set_of_people_with_a_notice_spares_everyone_else_the_read(
    database_url: str,
) -> None:
    engine = _engine(database_url)
    clock = [100.0]
    pending = app_requests.Pending(seconds=5, clock=lambda: clock[0])
    app_requests.add(engine, "u1", None, "Miro", now=NOW)
    assert app_requests.notices(engine, "u1", {"teams"}, now=NOW, pending=pending) == []
    assert pending.reads == 1
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    for who in ("u1", "u2", "u3"):  # nobody has a notice: nothing is read
        assert app_requests.notices(engine, who, {"teams"}, now=NOW, pending=pending) == []
    assert sent == [] and pending.reads == 1

    # marked added by another worker: told once this worker's set is old
    app_requests.mark_added(engine, "miro", "teams", "admin-1", now=NOW)
    assert app_requests.notices(engine, "u1", {"teams"}, now=NOW, pending=pending) == []
    clock[0] += 5
    assert app_requests.notices(engine, "u1", {"teams"}, now=NOW, pending=pending) == ["teams"]
    assert app_requests.notices(engine, "u1", {"teams"}, now=NOW, pending=pending) == []
    # by this worker's admin page, which clears the set: told at once
    app_requests.add(engine, "u2", None, "Visio", now=NOW)
    app_requests.mark_added(engine, "visio", "outlook", "admin-1", now=NOW)
    pending.clear()
    assert app_requests.notices(engine, "u2", {"outlook"}, now=NOW, pending=pending) == ["outlook"]
    assert pending.reads == 3
    engine.dispose()


def test_notices_nobody_came_back_for_are_removed(database_url: str) -> None:
    engine = _engine(database_url)
    long_ago = NOW - dt.timedelta(days=app_requests.NOTICE_DAYS + 1)
    app_requests.add(engine, "gone", None, "Miro", now=long_ago)
    app_requests.mark_added(engine, "miro", "teams", "admin-1", now=long_ago)
    app_requests.add(engine, "u1", None, "Visio", now=NOW)
    app_requests.dismiss(engine, "visio", "admin-1", now=NOW)  # any close tidies up
    assert app_requests.notices(engine, "gone", {"teams"}) == []
    engine.dispose()


def test_an_admin_marks_a_request_added_and_the_askers_see_it(
    portal_any_db: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    portal = portal_any_db
    caplog.set_level(logging.INFO, logger="launcher.audit")
    staff, clinician, admin = (portal.cookie(u) for u in (STAFF, CLINICIAN, ADMIN))
    for who in (staff, clinician):
        token = csrf_of(portal.get("/", who).text)
        portal.post("/requests", who, data={"csrf_token": token, "name": "Rooster app"})
    page = portal.get("/admin", admin)
    assert 'action="/admin/requests/added"' in page.text
    assert '<option value="teams">' in page.text
    assert '<option value="time-tracking">' not in page.text  # hidden apps are not offered
    admin_token = csrf_of(page.text)
    staff_token = csrf_of(portal.get("/", staff).text)

    def added(who: str, **form: str) -> httpx.Response:
        return portal.post("/admin/requests/added", who, data={"key": "rooster app", **form})

    # who may do what: only admins, only with the token, only with an app of the registry
    assert added(staff, csrf_token=staff_token, app_id="rooster").status_code == 403
    assert added(admin, app_id="rooster").status_code == 403  # no token
    assert added(admin, csrf_token="forged", app_id="rooster").status_code == 403
    refused = portal.post("/admin/requests/added", data={"key": "rooster app"})
    assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
    for bad in ("no-such-app", "", "time-tracking"):
        answer = added(admin, csrf_token=admin_token, app_id=bad)
        assert answer.status_code == 400 and "app_id" in answer.text, bad
    assert _open_requests(portal.get("/admin", admin).text) == ["Rooster app"]  # unchanged
    assert "You asked for" not in portal.get("/", staff).text

    done = added(admin, csrf_token=admin_token, app_id="rooster")
    assert done.status_code == 303 and done.headers["location"] == "/admin?done=added#requests"
    admin_page = portal.get("/admin", admin).text
    assert _open_requests(admin_page) == []
    assert _history(admin_page)[0][:2] == ("Rooster app", "2")
    assert "<code>rooster</code>" in _history(admin_page)[0][3]
    audit = [r.__dict__[AUDIT_ATTRIBUTE] for r in caplog.records if r.name == "launcher.audit"]
    assert audit == [
        {
            "event": "app_request_added",
            "user": portal.user(ADMIN).user_id,  # pseudonymous
            "request": "rooster app",
            "app": "rooster",
            "people": 2,
        }
    ]

    grid = portal.get("/", staff).text
    notice = re.search(r'<section id="asked-added".*?</section>', grid, re.S)
    assert notice and 'href="#app-rooster"' in notice[0]
    assert 'action="/requests/notices/dismiss"' in notice[0]
    assert 'id="asked-added"' not in portal.get("/", staff).text  # the next visit: gone

    # the clinician dismisses it with the button, which needs the token
    grid = portal.get("/", clinician).text
    assert 'id="asked-added"' in grid
    assert portal.post("/requests/notices/dismiss", clinician).status_code == 403
    gone = portal.post("/requests/notices/dismiss", clinician, data={"csrf_token": csrf_of(grid)})
    assert gone.status_code == 303 and gone.headers["location"] == "/"
    assert 'id="asked-added"' not in portal.get("/", clinician).text


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
    token = csrf_of(portal.get("/", cookie).text)
    for app in ("teams", "outlook", "sharepoint"):
        assert _star(portal, cookie, app, True, token).status_code == 303
    page = portal.get("/", cookie).text
    assert _section(page, "cat-favourites") == ["teams", "outlook", "sharepoint"]
    # the first has no "up", the last no "down"
    assert 'formaction="/favourites/teams/move" name="direction" value="down"' in page
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

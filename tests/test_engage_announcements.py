"""Announcements: validation, audience, window, language, dismissal and reach (on both
databases), and the editors' page and the banner through the portal's own routes."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.engage import announcements
from launcher.engage.announcements import T_ANNOUNCEMENT, T_SEEN, InvalidField
from launcher.errors import NotFound
from launcher.settings import Settings
from tests.helpers import bare_portal, make_user, post
from tests.web import csrf_of

TODAY = dt.date(2026, 5, 20)
GOOD: dict[str, Any] = {
    "title": "Nieuwe roosterapp",
    "body": "Vanaf maandag plan je je diensten in de nieuwe app.\nVragen? Bel 1234.",
    "link": "https://intranet.example/rooster",
    "starts": "2026-05-18",
    "ends": "2026-05-31",
    "groups": "staff, clinicians",
    "language": "",
}
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("title", "", id="title missing"),
        pytest.param("title", "x" * 121, id="title too long"),
        pytest.param("title", "bell\x07", id="title control character"),
        pytest.param("body", "   ", id="body empty"),
        pytest.param("body", "x" * 1001, id="body too long"),
        pytest.param("body", "right-to-left \u202e override", id="body bidi override"),
        pytest.param("link", "http://intranet.example/", id="link not https"),
        pytest.param("link", "javascript:alert(1)", id="link javascript"),
        pytest.param("link", "https://user@evil.example/", id="link with user name"),
        pytest.param("link", "https://a.example/ b", id="link with a space"),
        pytest.param("starts", "", id="starts missing"),
        pytest.param("starts", "20-05-2026", id="starts not iso"),
        pytest.param("ends", "2026-05-17", id="ends before starts"),
        pytest.param("groups", "staff, bad\tgroup", id="group with a tab"),
        pytest.param("language", "de", id="language unknown"),
    ],
)
def test_bad_input_names_the_field(field: str, value: str) -> None:
    with pytest.raises(InvalidField) as caught:
        announcements.parse({**GOOD, field: value})
    assert caught.value.field == field
    assert caught.value.status == 400
    assert str(caught.value).startswith(f"{field}: ")


def test_good_input_is_tidied() -> None:
    draft = announcements.parse({**GOOD, "title": "  Nieuwe   roosterapp ", "link": " "})
    assert draft.title == "Nieuwe roosterapp"
    assert draft.body.splitlines() == GOOD["body"].splitlines()
    assert draft.link is None
    assert draft.groups == ("staff", "clinicians")
    assert (draft.starts, draft.ends) == (dt.date(2026, 5, 18), dt.date(2026, 5, 31))
    assert announcements.parse({**GOOD, "groups": " , "}).groups == ()  # everyone


def _engine(url: str) -> sa.Engine:
    engine = db.make_engine(url)
    db.upgrade(engine)
    return engine


def _add(engine: sa.Engine, **changes: str) -> int:
    return announcements.create(engine, announcements.parse({**GOOD, **changes}), "uid-editor")


def _copy(cached: bool) -> announcements.Current | None:
    return announcements.Current() if cached else None


@pytest.mark.parametrize("cached", [False, True], ids=["joined", "worker-copy"])
def test_audience_window_and_language(database_url: str, cached: bool) -> None:
    engine = _engine(database_url)
    copy = _copy(cached)
    everyone = _add(engine, title="for everyone", groups="")
    clinicians = _add(engine, title="for clinicians", groups="clinicians")
    dutch = _add(engine, title="in Dutch", groups="", language="nl")
    _add(engine, title="later", groups="", starts="2026-05-21", ends="2026-06-01")
    _add(engine, title="over", groups="", starts="2026-05-01", ends="2026-05-19")
    last_day = _add(engine, title="last day", groups="", starts="2026-05-01", ends="2026-05-20")

    def shown(who: str, groups: tuple[str, ...], lang: str) -> set[int]:
        return {a.id for a in announcements.for_user(engine, who, groups, lang, TODAY, copy)}

    assert shown("u1", ("staff",), "en") == {everyone, last_day}
    assert shown("u2", ("staff", "clinicians"), "nl") == {everyone, clinicians, dutch, last_day}
    assert shown("u3", (), "nl") == {everyone, dutch, last_day}
    with engine.connect() as conn:  # displays ask for any language
        assert {a.id for a in announcements.current(conn, TODAY, ["clinicians"])} == {
            everyone,
            clinicians,
            dutch,
            last_day,
        }
    engine.dispose()


@pytest.mark.parametrize("cached", [False, True], ids=["joined", "worker-copy"])
def test_views_are_recorded_once_dismissal_hides_and_reach_is_suppressed(
    database_url: str, cached: bool
) -> None:
    engine = _engine(database_url)
    copy = _copy(cached)
    news = _add(engine, groups="")

    def for_user(who: str, lang: str) -> list[int]:
        return [a.id for a in announcements.for_user(engine, who, (), lang, TODAY, copy)]

    for _ in range(3):  # rendering the grid again records nothing new
        assert for_user("u1", "nl") == [news]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T_SEEN)).scalar_one() == 1

    listed = announcements.listing(engine, TODAY, min_group=3)
    assert [(e.item.id, e.reach, e.status) for e in listed] == [(news, None, "current")]
    for who in ("u2", "u3"):
        for_user(who, "en")
    assert announcements.listing(engine, TODAY, min_group=3)[0].reach == 3

    announcements.dismiss(engine, news, "u1", ())
    announcements.dismiss(engine, news, "u1", ())  # twice is fine
    announcements.dismiss(engine, news, "u4", ())  # dismissed unseen: counted as reached
    assert for_user("u1", "nl") == []
    assert for_user("u2", "nl") == [news]
    assert announcements.listing(engine, TODAY, min_group=3)[0].reach == 4

    clinicians = _add(engine, groups="clinicians")
    with pytest.raises(NotFound):
        announcements.dismiss(engine, clinicians, "u1", ("staff",))  # not theirs to see
    with pytest.raises(NotFound):
        announcements.dismiss(engine, 987654, "u1", ())

    assert announcements.delete(engine, news) is True
    assert announcements.delete(engine, news) is False
    with engine.connect() as conn:
        left = conn.execute(sa.select(T_SEEN.c.announcement_id)).scalars().all()
    assert left == []  # who saw it goes with it
    engine.dispose()


class Clock:
    """time.monotonic() for a worker's copy, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _statements(engine: sa.Engine) -> list[str]:
    """Every statement ``engine`` sends from now on."""
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    return sent


def test_a_workers_copy_reads_nothing_for_most_pages_and_shows_a_dismissal_at_once(
    database_url: str,
) -> None:
    engine = _engine(database_url)
    clock = Clock()
    copy = announcements.Current(seconds=5, clock=clock)
    clinicians = _add(engine, groups="clinicians")

    def shown(who: str, groups: tuple[str, ...]) -> list[int]:
        return [a.id for a in announcements.for_user(engine, who, groups, "nl", TODAY, copy)]

    assert shown("u1", ("staff",)) == []
    assert copy.reads == 1
    sent = _statements(engine)
    for _ in range(3):  # nothing for this person: no connection, no statement
        assert shown("u1", ("staff",)) == []
    assert sent == []
    # someone it is for: their own marks are read on every page, so a dismissal shows at once
    assert shown("u2", ("clinicians",)) == [clinicians]
    announcements.dismiss(engine, clinicians, "u2", ("clinicians",))
    assert shown("u2", ("clinicians",)) == []
    assert shown("u3", ("clinicians",)) == [clinicians]
    assert copy.reads == 1

    # written by another worker: shown once this worker's copy is CACHE_SECONDS old
    everyone = _add(engine, groups="", title="for everyone")
    assert shown("u1", ("staff",)) == []
    clock.now += 5
    assert shown("u1", ("staff",)) == [everyone]
    assert copy.reads == 2
    # written by this worker's editor page, which clears the copy: shown at once
    copy.clear()
    dutch = _add(engine, groups="", title="in Dutch", language="nl")
    assert set(shown("u1", ("staff",))) == {everyone, dutch}
    # another day is read anew, whatever the clock says
    later = dt.date(2026, 6, 1)
    assert announcements.for_user(engine, "u1", ("staff",), "nl", later, copy) == []
    assert copy.reads == 4
    engine.dispose()


# --- through the portal ----------------------------------------------------------------------
EDITOR = make_user("editor", "staff", "launcher-editors")
ADMIN = make_user("admin", "staff", "launcher-admins")
STAFF = make_user("anouk", "staff")
NURSE = make_user("bram", "staff", "clinicians")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, report_min_group=2)


def _count(settings: Settings) -> int:
    engine = db.make_engine(settings.database_url)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(T_ANNOUNCEMENT)).scalar_one()
    engine.dispose()
    return int(count)


def _banner(page: str) -> list[str]:
    return re.findall(r'<article class="announcement" id="announcement-(\d+)"', page)


def _window() -> dict[str, str]:
    today = dt.date.today()
    return {
        "starts": (today - dt.timedelta(days=1)).isoformat(),
        "ends": (today + dt.timedelta(days=1)).isoformat(),
    }


def test_editors_publish_people_see_and_dismiss(settings: Settings) -> None:
    with bare_portal(settings) as p:
        editor, staff, nurse = p.browser(EDITOR), p.browser(STAFF), p.browser(NURSE)
        page = editor.get("/admin/announcements")
        assert page.status_code == 200
        assert 'action="/admin/announcements"' in page.text
        token = csrf_of(page.text)
        fields = {**GOOD, **_window(), "title": f"Attention {XSS}", "body": XSS}
        done = post(editor, "/admin/announcements", {**fields, "groups": ""}, token)
        assert done.status_code == 303
        assert done.headers["location"] == "/admin/announcements?done=published"
        post(editor, "/admin/announcements", {**GOOD, **_window(), "groups": "clinicians"}, token)
        post(editor, "/admin/announcements", {**GOOD, **_window(), "groups": "nobody"}, token)

        grid = staff.get("/")
        assert grid.status_code == 200
        assert len(_banner(grid.text)) == 1  # the clinicians' and nobody's are not for Anouk
        for text in (grid.text, editor.get("/admin/announcements").text):
            assert "<script>alert(1)" not in text and "<img src=x" not in text
            assert html.escape("<script>alert(1)</script>", quote=False) in text
        first = _banner(grid.text)[0]
        assert len(_banner(nurse.get("/").text)) == 2
        nurse_grid = nurse.get("/").text
        assert 'href="https://intranet.example/rooster"' in nurse_grid

        # dismissing needs the person's CSRF token
        assert post(staff, f"/announcements/{first}/dismiss", {}, "forged").status_code == 403
        assert _banner(staff.get("/").text) == [first]
        hidden = post(staff, f"/announcements/{first}/dismiss", {}, csrf_of(grid.text))
        assert hidden.status_code == 303 and hidden.headers["location"] == "/"
        assert _banner(staff.get("/").text) == []
        assert len(_banner(nurse.get("/").text)) == 2  # only for the one who dismissed

        # reach: Anouk and Bram saw the first (2 = the minimum group size here); one saw the
        # clinicians' (suppressed); nobody saw the third
        listed = editor.get("/admin/announcements", headers={"Accept-Language": "en"}).text
        reaches = re.findall(r'<td class="num reach">([^<]*)</td>', listed)
        assert sorted(reaches) == ["2", "fewer than 2", "fewer than 2"]


def test_only_editors_and_admins_write(settings: Settings) -> None:
    with bare_portal(settings) as p:
        staff, admin = p.browser(STAFF), p.browser(ADMIN)
        assert staff.get("/admin/announcements").status_code == 403
        token = csrf_of(staff.get("/").text)
        refused = post(staff, "/admin/announcements", {**GOOD, **_window()}, token)
        assert refused.status_code == 403
        assert _count(settings) == 0
        page = admin.get("/admin/announcements")
        assert page.status_code == 200
        made = post(admin, "/admin/announcements", {**GOOD, **_window()}, csrf_of(page.text))
        assert made.status_code == 303 and _count(settings) == 1
        (news,) = _banner(admin.get("/").text)
        assert post(staff, f"/admin/announcements/{news}/delete", {}, token).status_code == 403
        assert _count(settings) == 1
    with bare_portal(settings) as p:
        anonymous = p.browser()
        assert anonymous.get("/admin/announcements").headers["location"].startswith("/login")
        assert anonymous.post("/admin/announcements", data=GOOD).status_code == 303
        assert _count(settings) == 1


def test_bad_input_is_a_400_that_names_the_field_and_stores_nothing(settings: Settings) -> None:
    with bare_portal(settings) as p:
        editor = p.browser(EDITOR)
        token = csrf_of(editor.get("/admin/announcements").text)
        for field, value in (("title", "x" * 121), ("link", "http://plain.example/")):
            bad = post(editor, "/admin/announcements", {**GOOD, **_window(), field: value}, token)
            assert bad.status_code == 400
            assert f"{field}: " in bad.text
            assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', bad.text)
            assert 'value="https://intranet.example/rooster"' in bad.text or field == "link"
        assert post(editor, "/admin/announcements", {**GOOD, **_window()}, "forged").status_code
        assert _count(settings) == 0


def test_editors_delete(settings: Settings) -> None:
    with bare_portal(settings) as p:
        editor = p.browser(EDITOR)
        token = csrf_of(editor.get("/admin/announcements").text)
        post(editor, "/admin/announcements", {**GOOD, **_window(), "groups": ""}, token)
        (news,) = _banner(editor.get("/").text)
        gone = post(editor, f"/admin/announcements/{news}/delete", {}, token)
        assert gone.status_code == 303
        assert _count(settings) == 0 and _banner(editor.get("/").text) == []
        assert post(editor, f"/admin/announcements/{news}/delete", {}, token).status_code == 404


def test_the_grid_renders_when_the_database_does_not_answer(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    # a database without the tables answers every query with an error, as a broken one would
    settings = make_settings(database_url=f"sqlite:///{tmp_path}/empty.db")
    with bare_portal(settings) as p:
        staff = p.browser(STAFF)
        grid = staff.get("/")
        assert grid.status_code == 200
        assert 'href="/launch/teams"' in grid.text and _banner(grid.text) == []

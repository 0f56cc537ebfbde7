"""Hallway screens: configuration, the constant-time token lookup, and the page itself (on
both databases): its announcements, this week's most-launched apps above the minimum group
size, rotation, refresh, and no cookie, no person, no script."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from launcher.engage import announcements, displays
from launcher.engage.displays import T_USER_DAY_APP, Display
from launcher.errors import ConfigError, RegistryError
from launcher.registry import parse_registry
from launcher.settings import Settings
from tests.helpers import bare_portal, make_user

TOKEN = "hall-main-0123456789abcdefghijkl"
STAFF_ROOM = "staff-room-0123456789abcdefghij"
HALL = Display("hall-main", "Main entrance", TOKEN, None)
ROOM = Display("staff-room", "Clinicians' room", STAFF_ROOM, ("clinicians",))
OFFICE_TOKEN = "office-0123456789abcdefghijklmn"
OFFICE = Display("office", "Office", OFFICE_TOKEN, ("staff",))


def test_displays_from_the_registry_entries_and_the_environment() -> None:
    entries: list[dict[str, object]] = [
        {"id": "hall-main", "name": "Main entrance", "token_env": "HALL"},
        {"id": "staff-room", "token_env": "ROOM", "groups": ["clinicians"]},
    ]
    found = displays.from_config(entries, {"HALL": TOKEN, "ROOM": STAFF_ROOM})
    assert found == [HALL, Display("staff-room", "staff-room", STAFF_ROOM, ("clinicians",))]
    with pytest.raises(ConfigError, match="ROOM must hold a token of at least 24"):
        displays.from_config(entries, {"HALL": TOKEN, "ROOM": "short"})
    with pytest.raises(ConfigError, match="HALL"):
        displays.from_config(entries[:1], {})


def test_a_token_opens_its_own_display_only() -> None:
    both = [HALL, ROOM]
    assert displays.find(both, TOKEN) is HALL
    assert displays.find(both, STAFF_ROOM) is ROOM
    for guess in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "é" * 30):
        assert displays.find(both, guess) is None


def _launches(engine: sa.Engine, today: dt.date) -> None:
    """Launch rollups: teams by 3 people, outlook by 2 (fewer than 3), the hidden app by 4,
    rooster by 3 but last week."""
    monday = displays.week_start(today)
    rows = []
    for app, people, day, each in (
        ("teams", 3, today, 2),
        ("outlook", 2, today, 10),
        ("time-tracking", 4, today, 1),
        ("rooster", 3, monday - dt.timedelta(days=1), 1),
        ("ehr", 3, monday, 1),
    ):
        rows += [
            {"day": day, "app_id": app, "user_id": f"u{i}", "department": "", "launches": each}
            for i in range(people)
        ]
    with engine.begin() as conn:
        conn.execute(sa.insert(T_USER_DAY_APP), rows)


def _news(engine: sa.Engine, title: str, groups: str = "", days: int = 1) -> None:
    today = dt.date.today()
    draft = announcements.parse(
        {
            "title": title,
            "body": "Details <b>here</b>",
            "starts": (today - dt.timedelta(days=days)).isoformat(),
            "ends": (today + dt.timedelta(days=days)).isoformat(),
            "groups": groups,
        }
    )
    announcements.create(engine, draft, "uid-editor")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, report_min_group=3)


def test_display_shows_its_news_and_top_apps_without_cookie_or_person(
    settings: Settings,
) -> None:
    person = make_user("anouk", "staff", "clinicians")
    with bare_portal(settings) as p:
        p.app.state.displays = lambda: [HALL, ROOM, OFFICE]
        engine = p.context.engine
        today = dt.datetime.now(p.context.registry.timezone()).date()
        _launches(engine, today)
        _news(engine, "Flu shots <script>alert(1)</script>")
        _news(engine, "For the ward", groups="clinicians")

        signed_in = p.browser(person)  # a person's browser: the page still shows nobody
        hall = signed_in.get(f"/display/{TOKEN}")
        assert hall.status_code == 200
        assert "set-cookie" not in hall.headers
        assert hall.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in hall.headers["content-security-policy"]
        scripts = re.findall(r"<script[^>]*>", hall.text)
        assert scripts == ['<script src="/static/display.js" defer>']  # a file: no inline script
        assert "Anouk" not in hall.text and "csrf_token" not in hall.text
        assert re.search(r'<body class="display" data-refresh="30" data-next="/display/', hall.text)
        # without script, the same refresh from <noscript>
        assert re.search(
            r'<noscript><meta http-equiv="refresh" content="30;url=/display/', hall.text
        )
        assert "Flu shots &lt;script&gt;alert(1)" in hall.text
        assert "For the ward" in hall.text  # a display without groups shows every one
        apps = re.findall(r'<span class="display-app">([^<]+)</span>', hall.text)
        # teams 6 launches, ehr 3; outlook by fewer than 3 people, time-tracking hidden,
        # rooster last week
        assert apps == ["Microsoft Teams", "Elektronisch patiëntendossier"]

        room = p.browser().get(f"/display/{STAFF_ROOM}")
        assert "For the ward" in room.text and "Flu shots" in room.text
        office = p.browser().get(f"/display/{OFFICE_TOKEN}")
        assert "For the ward" not in office.text and "Flu shots" in office.text
        # the office's audience may not open the EHR: it is not among their top apps
        office_apps = re.findall(r'<span class="display-app">([^<]+)</span>', office.text)
        assert office_apps == ["Microsoft Teams"]

        for wrong in (TOKEN[:-1], "nope", TOKEN + "0"):
            assert p.browser().get(f"/display/{wrong}").status_code == 404
        p.app.state.displays = lambda: []  # a registry without displays opens nothing
        assert p.browser().get(f"/display/{TOKEN}").status_code == 404


def test_more_announcements_than_fit_rotate_with_each_refresh(settings: Settings) -> None:
    with bare_portal(settings) as p:
        p.app.state.displays = lambda: [HALL]
        for i in range(4):
            _news(p.context.engine, f"News {i}")
        client = p.browser()
        first = client.get(f"/display/{TOKEN}")
        assert len(re.findall(r'<article class="display-item">', first.text)) == 3
        assert f'url=/display/{TOKEN}?page=1"' in first.text
        second = client.get(f"/display/{TOKEN}?page=1")
        assert len(re.findall(r'<article class="display-item">', second.text)) == 1
        assert f'url=/display/{TOKEN}?page=0"' in second.text
        shown = re.findall(r"<h2>(News \d)</h2>", first.text + second.text)
        assert sorted(shown) == [f"News {i}" for i in range(4)]
        assert client.get(f"/display/{TOKEN}?page=x").status_code == 200


REGISTRY_WITH_DISPLAYS = """
apps:
  - {id: teams, name: Teams, url: "https://teams.example.org/"}
displays:
  - {id: hall-main, name: {en: Main entrance, nl: Hoofdingang}, token_env: LAUNCHER_DISPLAY_HALL}
  - {id: staff-room, name: Staff room, token_env: LAUNCHER_DISPLAY_ROOM, groups: [clinicians]}
"""


def test_displays_come_from_the_registry_and_a_missing_token_turns_off_that_one_only(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    apps = tmp_path / "apps.yaml"
    apps.write_text(REGISTRY_WITH_DISPLAYS)
    monkeypatch.setenv("LAUNCHER_DISPLAY_HALL", TOKEN)  # the staff room's token is not set
    with bare_portal(make_settings(apps_file=apps)) as p:
        screen = p.browser()
        page = screen.get(f"/display/{TOKEN}")
        assert page.status_code == 200 and "Main entrance" in page.text
        assert screen.get(f"/display/{STAFF_ROOM}").status_code == 404
        assert "LAUNCHER_DISPLAY_ROOM must hold a token" in caplog.text


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param("{id: a, name: A, token_env: lower}", "should match pattern", id="env name"),
        pytest.param("{id: a, name: A}", "required field is missing", id="no token_env"),
        pytest.param("{id: a, name: A, token_env: X, groups: []}", "omit 'groups'", id="groups"),
        pytest.param("{id: a, name: A, token_env: X, url: x}", "unknown key", id="unknown key"),
    ],
)
def test_bad_display_entries_name_file_line_and_field(entry: str, message: str) -> None:
    text = "apps:\n  - {id: t, name: T, url: 'https://t.example/'}\ndisplays:\n  - " + entry
    with pytest.raises(RegistryError) as info:
        parse_registry(text)
    assert info.value.problems[0].startswith("apps.yaml:4: displays[0]")
    assert message in info.value.problems[0]


def test_duplicate_display_ids_are_refused() -> None:
    text = (
        "apps:\n  - {id: t, name: T, url: 'https://t.example/'}\ndisplays:\n"
        "  - {id: a, name: A, token_env: X}\n  - {id: a, name: B, token_env: Y}\n"
    )
    with pytest.raises(RegistryError, match=r"apps.yaml:5: displays\[1\] \(id: a\).id: dupl"):
        parse_registry(text)

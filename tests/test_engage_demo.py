"""The demo's share of launcher/engage (launcher/demo/command.py): its editor, announcements
and hallway screen."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.demo.command import demo_announcements, demo_displays, demo_settings
from launcher.demo.users import DEMO_USERS
from launcher.engage import announcements
from launcher.engage.displays import MIN_TOKEN
from launcher.registry import load_registry
from tests.helpers import EXAMPLE_APPS


def test_the_demo_has_an_editor() -> None:
    editors = [u for u in DEMO_USERS if "launcher-editors" in u.groups]
    assert len(editors) == 1 and "staff" in editors[0].groups


def test_the_demo_writes_its_announcements_once(tmp_path: Path, sqlite_url: str) -> None:
    settings = demo_settings("127.0.0.1", 8000, var=tmp_path / "var", database_url=sqlite_url)
    assert demo_announcements(settings) == 3
    assert demo_announcements(settings) == 0  # a restart adds nothing
    engine = db.make_engine(sqlite_url)
    today = dt.date.today()
    seen = {
        (who, lang): [a.title for a in announcements.for_user(engine, who, groups, lang, today)]
        for who, groups in (("anouk", ("staff",)), ("bram", ("staff", "clinicians")))
        for lang in ("nl", "en")
    }
    assert seen[("anouk", "nl")] == ["Het intranet staat nu ook op je telefoon"]
    assert seen[("anouk", "en")] == ["The intranet is on your phone now"]
    assert len(seen[("bram", "nl")]) == 2 and len(seen[("bram", "en")]) == 2  # + the EHR one
    with engine.connect() as conn:
        authors = conn.execute(sa.text("SELECT DISTINCT author FROM announcement")).all()
    assert len(authors) == 1 and len(authors[0][0]) == 32  # the editor's pseudonym
    engine.dispose()


def test_the_demo_gives_its_screen_a_kept_token(tmp_path: Path) -> None:
    registry = load_registry(EXAMPLE_APPS)
    assert [d.token_env for d in registry.displays] == ["LAUNCHER_DISPLAY_HALL_MAIN"]
    environ: dict[str, str] = {}
    tokens = demo_displays(registry, tmp_path / "var", environ)
    token = tokens["hall-main"]
    assert len(token) >= MIN_TOKEN and environ == {"LAUNCHER_DISPLAY_HALL_MAIN": token}
    assert (tmp_path / "var" / "display-hall-main").stat().st_mode & 0o777 == 0o600
    assert demo_displays(registry, tmp_path / "var", {}) == tokens  # the same URL next start
    given = {"LAUNCHER_DISPLAY_HALL_MAIN": "x" * 40}  # one already set wins
    assert demo_displays(registry, tmp_path / "other", given) == {"hall-main": "x" * 40}


def test_launcher_demo_prints_the_screens_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    from launcher.demo import command

    served: list[object] = []
    monkeypatch.setattr(command, "demo_history", lambda settings: None)  # half a minute
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.append(app))
    monkeypatch.setenv("LAUNCHER_DISPLAY_HALL_MAIN", "")  # empty is unset; removed afterwards
    monkeypatch.setenv("LAUNCHER_APPS_FILE", str(EXAMPLE_APPS))
    command.run_demo("127.0.0.1", 8123)  # in tmp_path (the autouse fixture changed there)
    out = capsys.readouterr().out
    token = (tmp_path / "var" / "display-hall-main").read_text().strip()
    assert "Launcher demo on http://127.0.0.1:8123" in out
    assert f"Hallway screen hall-main: http://127.0.0.1:8123/display/{token}" in out
    assert "Eva Smit (staff, launcher-editors)" in out
    assert served  # the portal was handed to uvicorn

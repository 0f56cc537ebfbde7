"""The pre-rendered grid (launcher/grid.py): built once per registry, language and day, and
shared by every page after that. In process."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from launcher import grid, i18n
from launcher.registry import load_registry
from tests.conftest import EXAMPLE_APPS
from tests.helpers import CLINICIAN, STAFF, InProcess


def test_the_pieces_are_built_once_per_language_not_per_page(
    portal: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = grid.build

    def counting(*args: Any, **kwargs: Any) -> grid.Pieces:
        built.append(args[2])  # the language
        return real(*args, **kwargs)

    monkeypatch.setattr(grid, "build", counting)
    for _ in range(3):
        assert portal.get("/", STAFF, headers={"Accept-Language": "nl"}).status_code == 200
    assert built == ["nl"]
    for who in (STAFF, CLINICIAN):
        assert portal.get("/", who, headers={"Accept-Language": "en"}).status_code == 200
    assert built == ["nl", "en"]


def test_the_tiles_a_group_sees_are_worked_out_once_per_registry() -> None:
    registry = load_registry(EXAMPLE_APPS)
    cache = grid.PiecesCache()
    staff = cache.allowed(registry, ["staff"])
    assert staff == {a.id for a in registry.visible_apps(["staff"]) if not a.hidden}
    assert cache.allowed(registry, ("staff",)) is staff
    clinicians = cache.allowed(registry, ["staff", "clinicians"])
    assert "ehr" in clinicians and "ehr" not in staff
    reloaded = load_registry(EXAMPLE_APPS)  # a reload: worked out afresh
    assert cache.allowed(reloaded, ["staff"]) is not staff


def test_tiles_after_the_first_screen_are_laid_out_later(
    portal: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted over the whole page, favourites and recently used first: the first FIRST_SCREEN
    tiles are laid out at once, the rest "later" (static/style.css, content-visibility)."""
    registry = load_registry(EXAMPLE_APPS)
    pieces = grid.build(
        portal.context.templates.env, registry, "en", dt.date(2026, 12, 1), i18n.translator("en")
    )
    allowed = {a.id for a in registry.visible_apps(["clinicians"]) if not a.hidden}
    favourites, recent = ["ehr", "teams"], ["rooster"]
    monkeypatch.setattr(grid, "FIRST_SCREEN", 4)
    html = grid.join(pieces, allowed, favourites, recent).html
    tiles = re.findall(r'<li class="(tile(?: later)?)"', html)
    assert len(tiles) == len(allowed) + len(favourites) + len(recent)
    assert tiles[:4] == ["tile"] * 4
    assert tiles[4:] == ["tile later"] * (len(tiles) - 4)
    # the favourites and recently used come first: the fourth is the first category's first
    assert re.findall(r'<li class="tile"[^>]*>', html)[3].startswith('<li class="tile" id="app-')
    monkeypatch.setattr(grid, "FIRST_SCREEN", 1000)
    assert "later" not in grid.join(pieces, allowed, favourites, recent).html


def test_the_usual_page_joins_whole_tiles_to_the_same_markup(portal: InProcess) -> None:
    """Without a search or a "may be down" mark, each category tile is one pre-joined piece
    (grid._Tile.whole); it is the same markup as the tile joined from its parts."""
    registry = load_registry(EXAMPLE_APPS)
    pieces = grid.build(
        portal.context.templates.env, registry, "nl", dt.date(2026, 12, 1), i18n.translator("nl")
    )
    staff = frozenset(a.id for a in registry.visible_apps(["staff"]) if not a.hidden)
    assert "ehr" not in staff  # a clinicians' app: its mark shows on nobody's tile here
    since = {"ehr": dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)}
    for favourites, recent in (([], []), (["teams"], ["rooster", "teams"])):
        usual = grid.join(pieces, staff, favourites, recent).html
        by_parts = grid.join(pieces, staff, favourites, recent, down=since).html
        assert usual == by_parts
        assert usual.count("<li ") == len(staff) + len(favourites) + len(recent)
    # and the sections a set of groups sees are worked out once
    assert pieces.sections_of(staff) is pieces.sections_of(frozenset(staff))

"""The pre-rendered grid (launcher/grid.py): built once per registry, language and day, and
shared by every page after that. In process."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest

from launcher import db, grid, i18n, personal
from launcher.registry import load_registry
from launcher.settings import Settings
from tests.conftest import EXAMPLE_APPS
from tests.helpers import CLINICIAN, STAFF, InProcess, bare_portal


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


@pytest.mark.anyio
async def test_grid_reads_take_a_few_threads_at_once(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve pages at once: at most db.GRID_READ_THREADS of their reads run in threads at the
    same time (all of anyio's shared threads would be 8)."""
    running, most = 0, 0
    lock = threading.Lock()

    def slow_read(*_: Any) -> tuple[list[str], list[str]]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return [], []

    monkeypatch.setattr(personal, "for_grid", slow_read)
    settings = make_settings()
    with bare_portal(settings) as portal:
        async with portal.aclient() as client:
            client.cookies.set(settings.session_cookie, portal.cookie(STAFF))
            pages = await asyncio.gather(*(client.get("/") for _ in range(12)))
    assert [page.status_code for page in pages] == [200] * 12
    assert (
        most == db.GRID_READ_THREADS < anyio.to_thread.current_default_thread_limiter().total_tokens
    )

"""The tile grid, pre-rendered: what does not change per person is rendered once per registry
load, language and day, and each page joins those pieces.

Rendering 60 tiles through a Jinja macro on every request cost most of the grid page's time
(~2.9 ms a page, 80 % of it in the tile macro). A tile's link, its star button in both states
and its move buttons depend only on the app, the language and the date (the "new" badge); the
person's part is which apps, in which order, starred or not. The buttons submit the page's one
form (``#tile-actions`` in templates/portal.html), which carries the CSRF token, so no tile
holds anything of the person.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape

from launcher import i18n, search
from launcher.registry.schema import App, Registry

AGO = "\x00ago\x00"  # stands for "5 minutes" in the pre-rendered "may be down" mark
# Tiles after this many in a page are marked "later": the browser lays them out and paints them
# only when they come near the screen (static/style.css, content-visibility). A first screen
# shows at most about 24 (four across, six rows, on a desktop and on a phone); those are laid out
# at once, so that a first guess at their size can never move what is on screen.
FIRST_SCREEN = 24
SOURCES = ("", "favourite", "recent", "search")


@dataclass
class _Tile:
    """A tile's pieces, as UTF-8 (see Pieces)."""

    app: App
    text: str  # normalised search text (launcher/search.py)
    open: dict[tuple[str, bool], bytes]  # (id prefix: "app", "fav" or none; later?) -> <li …>
    link: dict[str, bytes]  # source -> <a …>…</a>
    star: dict[bool, bytes]  # starred? -> <form …>
    move: dict[str, bytes]  # "up"/"down" -> <form …>
    # (later?, starred?) -> the whole <li> of a category's tile, as most pages show it (no
    # search, not down): one piece per tile instead of four
    whole: dict[tuple[bool, bool], bytes] = field(default_factory=dict)


@dataclass
class Pieces:
    """The grid of one registry, language and day, ready to be joined per person.

    The pieces are kept encoded, as the page is sent: a page joined from text had to be
    encoded whole, and one "ë" or "↑" in it makes Python hold all 60 KB as two bytes a
    character, which took 38 µs a page to encode (bench/README.md, bench_grid.py)."""

    tiles: dict[str, _Tile]
    sections: list[tuple[bytes, list[str]]]  # (opening markup, app ids) per category, in order
    personal: dict[str, bytes]  # "favourites"/"recent" -> opening markup
    lang: str = "en"
    down: str = ""  # "may be down for AGO", put into a tile's link (launcher/status.py)
    empty: Markup = field(default_factory=Markup)
    _mine: dict[frozenset[str], list[tuple[bytes, list[str]]]] = field(default_factory=dict)

    def sections_of(self, allowed: Set[str]) -> list[tuple[bytes, list[str]]]:
        """The sections with the tiles of ``allowed`` in them, each with those tiles: the same
        for everyone in the same groups (PiecesCache.allowed), so worked out once per set."""
        key = allowed if isinstance(allowed, frozenset) else frozenset(allowed)
        found = self._mine.get(key)
        if found is None:
            if len(self._mine) > 1000:
                self._mine.clear()
            found = [(o, [a for a in ids if a in key]) for o, ids in self.sections]
            found = self._mine[key] = [(o, ids) for o, ids in found if ids]
        return found


@dataclass
class Grid:
    """One person's grid: its markup in UTF-8, as the plain page joins it into its frame
    (launcher/views/portal.py, Frames)."""

    data: bytes
    shown: int  # tiles that match the search (all of them without one)
    favourites: list[str]

    @property
    def html(self) -> Markup:
        """The markup, for templates/portal.html."""
        return Markup(self.data.decode())  # noqa: S704 (joined from autoescaped templates)


def build(
    env: Environment,
    registry: Registry,
    lang: str,
    today: dt.date,
    translate: Callable[[str], str],
) -> Pieces:
    """Render every tile piece of ``registry`` in ``lang`` (slow: once per registry and day)."""
    macros: Any = env.get_template("tile.html").make_module(
        {"lang": lang, "t": translate, "today": today, "ago": AGO}
    )
    tiles: dict[str, _Tile] = {}
    for app in registry.apps:
        if app.hidden:
            continue
        category = registry.category(app.category)
        text = search.haystack(
            [
                app.name.en,
                app.name.nl,
                app.description.en if app.description else None,
                app.description.nl if app.description else None,
                " ".join(app.keywords),
                category.name.en if category else None,
                category.name.nl if category else None,
            ]
        )
        tiles[app.id] = _Tile(
            app=app,
            text=text,
            open={
                (anchor, later): _utf8(macros.open_tile(app, anchor, text, later))
                for anchor in ("app", "fav", "")
                for later in (False, True)
            },
            link={source: _utf8(macros.link(app, source)) for source in SOURCES},
            star={starred: _utf8(macros.star(app, starred)) for starred in (True, False)},
            move={d: _utf8(macros.move(app, d)) for d in ("up", "down")},
        )
        tile = tiles[app.id]
        tile.whole = {
            (later, starred): tile.open["app", later]
            + tile.link[""]
            + tile.star[starred]
            + b"</li>"
            for later in (False, True)
            for starred in (True, False)
        }
    sections = []
    visible = [app for app in registry.apps if not app.hidden]
    for index, (category_id, apps) in enumerate(groupby(visible, key=lambda a: a.category)):
        category = registry.category(category_id)
        heading = category.name.get(lang) if category else translate("Other")
        opening = _utf8(macros.open_section(f"cat-{index + 1}", heading, ""))
        sections.append((opening, [a.id for a in apps]))
    personal = {
        "favourites": _utf8(
            macros.open_section("cat-favourites", translate("Favourites"), "favourites")
        ),
        "recent": _utf8(macros.open_section("cat-recent", translate("Recently used"), "recent")),
    }
    down = str(macros.down())
    assert all(link.endswith(b"</a>") for t in tiles.values() for link in t.link.values())
    return Pieces(tiles=tiles, sections=sections, personal=personal, lang=lang, down=down)


class PiecesCache:
    """The pieces of the registry in use and today, per language; a reload or a new day starts
    afresh. Handlers run on one event loop, so no lock is needed."""

    def __init__(self) -> None:
        self._registry: Registry | None = None
        self._day: dt.date | None = None
        self._pieces: dict[str, Pieces] = {}
        self._groups_of: Registry | None = None
        self._allowed: dict[frozenset[str], frozenset[str]] = {}

    def allowed(self, registry: Registry, groups: Iterable[str]) -> frozenset[str]:
        """The ids of the tiles people with these ``groups`` see (not the hidden apps): the
        same for everyone in the same groups, so worked out once per registry and groups."""
        key = frozenset(groups)
        if registry is not self._groups_of or len(self._allowed) > 1000:
            self._groups_of, self._allowed = registry, {}
        found = self._allowed.get(key)
        if found is None:
            visible = registry.visible_apps(key)
            found = self._allowed[key] = frozenset(a.id for a in visible if not a.hidden)
        return found

    def get(
        self,
        env: Environment,
        registry: Registry,
        lang: str,
        today: dt.date,
        translate: Callable[[str], str],
    ) -> Pieces:
        if registry is not self._registry or today != self._day:
            self._registry, self._day, self._pieces = registry, today, {}
        pieces = self._pieces.get(lang)
        if pieces is None:
            pieces = self._pieces[lang] = build(env, registry, lang, today, translate)
        return pieces


def join(
    pieces: Pieces,
    allowed: Set[str],
    favourites: Sequence[str],
    recent: Sequence[str],
    query: str = "",
    down: Mapping[str, dt.datetime] | None = None,
    now: dt.datetime | None = None,
) -> Grid:
    """One person's grid: their apps (``allowed``), favourites in their order, recently used;
    with a ``query``, the tiles that do not match are hidden (the server's search, ``/?q=``).
    ``down``: app id -> since when it may be down (launcher/status.py), marked on its tiles."""
    tiles = pieces.tiles
    starred = set(favourites)
    searching = bool(search.normalise(query))
    out: list[bytes] = []
    marks = _down_marks(pieces, down or {}, now)
    placed = 0  # tiles in the page so far

    def open_tile(tile: _Tile, anchor: str) -> bytes:
        nonlocal placed
        placed += 1
        return tile.open[anchor, placed > FIRST_SCREEN]

    def link(app_id: str, source: str) -> bytes:
        html = pieces.tiles[app_id].link[source]
        mark = marks.get(app_id)
        # the mark goes inside the link (before its "</a>"), so that its name says it too
        return html if mark is None else html[:-4] + mark + html[-4:]

    def personal(name: str) -> bytes:
        # while searching the personal rows step aside, so that each app is found once
        opening = pieces.personal[name]
        return opening.replace(b"<section ", b"<section hidden ", 1) if searching else opening

    fav = [a for a in favourites if a in allowed and a in tiles]
    if fav:
        out.append(personal("favourites"))
        for i, app_id in enumerate(fav):
            tile = tiles[app_id]
            out += [open_tile(tile, "fav"), link(app_id, "favourite"), tile.star[True]]
            if len(fav) > 1:
                out.append(b'<div class="moves">')
                if i > 0:
                    out.append(tile.move["up"])
                if i < len(fav) - 1:
                    out.append(tile.move["down"])
                out.append(b"</div>")
            out.append(b"</li>")
        out.append(b"</ul></section>")
    used = [a for a in recent if a in allowed and a in tiles]
    if used:
        out.append(personal("recent"))
        for app_id in used:
            tile = tiles[app_id]
            out += [open_tile(tile, ""), link(app_id, "recent"), tile.star[app_id in starred]]
            out.append(b"</li>")
        out.append(b"</ul></section>")
    shown = 0
    source = "search" if searching else ""
    for opening, mine in pieces.sections_of(allowed):
        if not (searching or marks):  # most pages: one piece per tile
            out.append(opening)
            for app_id in mine:
                placed += 1
                out.append(tiles[app_id].whole[placed > FIRST_SCREEN, app_id in starred])
            shown += len(mine)
            out.append(b"</ul></section>")
            continue
        found = [search.matches(query, tiles[a].text) for a in mine] if searching else None
        hide_section = found is not None and not any(found)
        out.append(
            opening.replace(b"<section ", b"<section hidden ", 1) if hide_section else opening
        )
        for index, app_id in enumerate(mine):
            tile = tiles[app_id]
            opening_li = open_tile(tile, "app")
            if found is not None and not found[index]:
                opening_li = opening_li.replace(b"<li ", b"<li hidden ", 1)
            else:
                shown += 1
            out += [opening_li, link(app_id, source), tile.star[app_id in starred], b"</li>"]
        out.append(b"</ul></section>")
    # every piece is the output of autoescaped templates
    return Grid(data=b"".join(out), shown=shown, favourites=fav)


def _utf8(markup: object) -> bytes:
    return str(markup).encode()


def _down_marks(
    pieces: Pieces, down: Mapping[str, dt.datetime], now: dt.datetime | None
) -> dict[str, bytes]:
    """App id -> its "may be down for 5 minutes" mark, for the apps on this grid that may be."""
    if not down:
        return {}
    now = now or dt.datetime.now(dt.UTC)
    marks = {}
    for app_id, since in down.items():
        if app_id in pieces.tiles:
            ago = i18n.format_ago(max(0.0, (now - since).total_seconds()), pieces.lang)
            marks[app_id] = pieces.down.replace(AGO, str(escape(ago))).encode()
    return marks

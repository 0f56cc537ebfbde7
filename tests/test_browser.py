"""The portal in a real browser: headless Chromium against the live demo server.

Sign-in goes through the development provider's own page, as a person would click it. External
app URLs are never fetched: the browser context answers every request outside the portal with a
stub page, so a launch ends on the app's URL without leaving the machine.

Accessibility: axe-core is injected with ``page.evaluate`` (DevTools protocol), which the page's
Content-Security-Policy does not govern. The pages are checked with their real CSP in force;
``bypass_csp`` would switch the policy off for the whole context and hide exactly the violations
these tests look for.

Chromium is Debian's ``/usr/bin/chromium`` (Playwright cannot download browsers here). Without
it, or without axe-core under ``tests/node_modules`` (``npm ci`` in ``tests/``), the tests skip
locally and fail under CI. ``LAUNCHER_SCREENSHOTS=docs/screenshots`` copies the grid screenshots
there for the README.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from launcher import i18n
from launcher.demo.devidp import DEMO_USERS, DemoUser
from launcher.settings import Settings
from tests.conftest import ROOT, LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_JS = ROOT / "tests" / "node_modules" / "axe-core" / "axe.min.js"
# Read at import: conftest's autouse fixture removes every LAUNCHER_* variable inside a test.
SCREENSHOTS = os.environ.get("LAUNCHER_SCREENSHOTS")

CLINICIAN = next(u for u in DEMO_USERS if "clinicians" in u.groups)
ADMIN = next(u for u in DEMO_USERS if "launcher-admins" in u.groups)
NL = i18n.translator("nl")
# The example registry (config/apps.yaml) as the clinician sees it, in Dutch.
CATEGORIES = ["Communicatie", "Zorg", "Planning en HR", "Documenten en kennis", "Hulp en leren"]
EHR_URL = f"https://epd.zorggroep-noord.example/?user={quote(CLINICIAN.upn, safe='')}"
ROOSTER_LOGIN = "https://rooster.zorggroep-noord.example/oidc/login?"
STUB_PAGE = "<!doctype html><html lang=en><title>App</title><h1>An external app</h1></html>"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
MOBILE: ViewportSize = {"width": 390, "height": 844}


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not installed (runs in CI)")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        _missing(f"Chromium at {CHROMIUM}")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def server(demo_server_sqlite: tuple[LiveServer, Settings]) -> LiveServer:
    return demo_server_sqlite[0]


class Tab:
    """A page in a fresh browser context, with what it logged and which apps it reached.

    Requests that leave the portal are answered by a stub page. ``stub=False`` leaves them
    alone (they still show in the page's network log): Playwright's routing turns Chromium's
    HTTP cache off, so a measure of a returning visitor's page goes without it."""

    def __init__(self, context: BrowserContext, base: str, *, stub: bool = True) -> None:
        self.context, self.base = context, base
        self.page = context.new_page()
        self.console: list[str] = []
        self.external: list[str] = []
        self.watch(self.page)
        if stub:
            context.route(lambda url: not url.startswith(base + "/"), self._stub)

    def watch(self, page: Page) -> None:
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text} ({page.url})"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e} ({page.url})"))

    def _stub(self, route: Any) -> None:
        self.external.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body=STUB_PAGE)

    def errors(self) -> list[str]:
        return [m for m in self.console if m.startswith(("error", "warning", "pageerror"))]


@pytest.fixture
def open_tab(browser: Browser, server: LiveServer) -> Iterator[Callable[..., Tab]]:
    contexts: list[BrowserContext] = []

    def factory(viewport: ViewportSize = DESKTOP, **options: Any) -> Tab:
        context = browser.new_context(viewport=viewport, locale="nl-NL", **options)
        context.set_default_timeout(10_000)
        # Runs in every document through the DevTools protocol; the page's CSP cannot block it.
        context.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => "
            "(window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI))"
        )
        contexts.append(context)
        return Tab(context, server.url)

    yield factory
    for context in contexts:
        context.close()


def sign_in(tab: Tab, user: DemoUser) -> Page:
    """From the portal's front door through the provider's picker back to the grid."""
    page = tab.page
    page.goto(f"{tab.base}/")
    expect(page).to_have_url(re.compile(re.escape(tab.base) + r"/_devidp/authorize\?"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in as…")
    page.get_by_role("button", name=user.name).click()
    expect(page).to_have_url(f"{tab.base}/")
    page.wait_for_load_state()  # portal.js (deferred) is listening from here on
    expect(page.get_by_role("button", name=NL("Sign out"))).to_be_visible()
    return page


def tile_links(page: Page) -> list[str]:
    links: list[str] = page.locator(".tile a").evaluate_all(
        "els => els.map(a => a.getAttribute('href'))"
    )
    return links


def visible_tiles(page: Page) -> list[str]:
    links: list[str] = page.locator(".tile a:visible").evaluate_all(
        "els => els.map(a => a.getAttribute('href'))"
    )
    return links


def launches_within(
    url: str, expected: list[tuple[str, str]] | None = None, timeout: float = 5.0
) -> list[tuple[str, str]]:
    """The recorded launches as (app_id, source), once they equal ``expected`` or time is up."""
    engine = sa.create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT app_id, source FROM launch_event")).all()
            found = [(r.app_id, r.source) for r in rows]
            if found == expected or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
    finally:
        engine.dispose()


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now."""
    if not AXE_JS.is_file():
        _missing(f"axe-core at {AXE_JS}")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return {passes: r.passes.length, violations: r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))};
        }"""
    )
    assert result["passes"] > 0, "axe-core checked nothing"
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


# Tiles and categories off screen are not laid out until near (content-visibility: auto in
# static/style.css): each is laid out here as it is when scrolled to, and the page left as it was.
LAYOUT_PROBLEMS = """() => {
    const lazy = document.querySelectorAll('.category, .tile');
    for (const el of lazy) el.style.contentVisibility = 'visible';
    const problems = [], inside = (r, box) => r.left >= box.left - 0.5 && r.top >= box.top - 0.5
        && r.right <= box.right + 0.5 && r.bottom <= box.bottom + 0.5;
    if (document.documentElement.scrollWidth > window.innerWidth)
        problems.push(`page scrolls sideways: ${document.documentElement.scrollWidth}px`);
    const boxes = [];
    for (const a of document.querySelectorAll('.tile a')) {
        const box = a.getBoundingClientRect(), href = a.getAttribute('href');
        if (!inside(box, a.closest('.tile').getBoundingClientRect())
                || !inside(box, a.closest('.tiles').getBoundingClientRect()))
            problems.push(`${href} is wider than its place in the grid`);
        for (const part of a.querySelectorAll('.name, .description, .badge, .icon'))
            if (!inside(part.getBoundingClientRect(), box))
                problems.push(`${href} .${part.className} sticks out of the tile`);
        for (const [other, r] of boxes)
            if (box.left < r.right && r.left < box.right
                    && box.top < r.bottom && r.top < box.bottom)
                problems.push(`${href} overlaps ${other}`);
        boxes.push([href, box]);
    }
    for (const el of lazy) el.style.contentVisibility = '';
    return problems;
}"""


# --- the grid ---------------------------------------------------------------------------
def test_sign_in_by_clicking_through_the_provider_shows_the_grid(
    open_tab: Callable[..., Tab],
) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)

    expect(page.locator(".who")).to_contain_text(CLINICIAN.name)
    expect(page.locator(".category h2")).to_have_text(CATEGORIES)
    hrefs = tile_links(page)
    assert len(hrefs) >= 10
    assert "/launch/ehr" in hrefs  # clinicians only
    assert "/launch/admin-console" not in hrefs and "/launch/time-tracking" not in hrefs
    assert all(re.fullmatch(r"/launch/[a-z0-9][a-z0-9-]*", h) for h in hrefs), hrefs
    assert len(set(hrefs)) == len(hrefs)
    for link in page.locator(".tile a").all():
        expect(link).to_be_visible()
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", re.compile(r"(^|\s)noopener(\s|$)"))
        expect(link).to_have_accessible_name(
            re.compile(r"\w.*" + re.escape(NL("opens in a new tab")))
        )
    # every section has its heading and at least one tile
    for section in page.locator("section.category").all():
        expect(section.get_by_role("heading", level=2)).to_be_visible()
        expect(section.locator(".tile").first).to_be_visible()


def test_grid_has_no_console_errors_or_csp_violations(open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)  # the provider's picker page counts too
    page.get_by_label(NL("Search apps")).press_sequentially("rooster")
    expect(page.locator(".tile a:visible")).to_have_count(1)
    page.keyboard.press("Escape")
    page.wait_for_load_state("networkidle")
    expect(page.locator("img.icon").first).to_be_visible()
    broken = page.locator("img").evaluate_all(
        "els => els.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
    )
    assert broken == [], f"images that did not load: {broken}"
    assert page.evaluate("() => window.__csp || []") == []
    assert tab.errors() == []


def test_grid_layout_at_desktop_and_phone_width(open_tab: Callable[..., Tab]) -> None:
    """No text sticks out of its tile and nothing scrolls sideways, wide or narrow."""
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    columns = page.locator(".tiles").first.evaluate(
        "ul => getComputedStyle(ul).gridTemplateColumns.split(' ').length"
    )
    assert columns >= 3, "the desktop grid should show several tiles per row"
    page.set_viewport_size(MOBILE)
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    expect(page.get_by_role("button", name=NL("Sign out"))).to_be_in_viewport()


# --- keyboard and search ----------------------------------------------------------------
FOCUSED = """() => {
    const el = document.activeElement, style = getComputedStyle(el), r = el.getBoundingClientRect();
    return {
        tag: el.tagName.toLowerCase(), id: el.id, cls: el.className, href: el.getAttribute('href'),
        tile: !!el.closest('.tile'), focusVisible: el.matches(':focus-visible'),
        outline: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth),
        outlineColor: style.outlineColor,
        onScreen: r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0
            && r.right <= window.innerWidth && r.bottom <= window.innerHeight,
    };
}"""


def test_keyboard_reaches_skip_link_search_and_tiles_in_order(
    open_tab: Callable[..., Tab],
) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    page.reload()  # start from the top of a fresh document
    hrefs = tile_links(page)

    stops = []
    for _ in range(12):
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUSED))
    for stop in stops:  # a visible focus: on screen, with a real outline
        assert stop["focusVisible"] and stop["onScreen"], stop
        assert stop["outline"] != "none" and stop["outlineWidth"] >= 2, stop
        assert stop["outlineColor"] not in ("rgba(0, 0, 0, 0)", "transparent"), stop
    assert stops[0]["cls"] == "skip" and stops[0]["href"] == "#main", stops[0]
    search = next(i for i, s in enumerate(stops) if s["id"] == "app-search")
    after = stops[search + 1 :]
    assert all(s["tile"] for s in after), "only tiles follow the search box"
    # each tile: its link, then its favourite toggle
    assert [s["tag"] for s in after] == ["a", "button"] * (len(after) // 2) + ["a"] * (
        len(after) % 2
    )
    tiles = [s["href"] for s in after if s["tag"] == "a"]
    assert tiles == hrefs[: len(tiles)], "tiles are reached in the order they are shown"
    assert not any(s["tile"] for s in stops[:search]), "the search box comes before the tiles"

    # the skip link works: it takes keyboard users past the header, straight to the search
    page.reload()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED)["id"] == "app-search"


def test_search_filters_tiles_and_escape_clears(open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    everything = tile_links(page)  # not :visible: off screen, a tile is not laid out yet
    search = page.get_by_role("searchbox", name=NL("Search apps"))
    status = page.locator("#search-status")
    headings = page.locator(".category h2:visible")

    search.press_sequentially("rooster")
    expect(page.locator(".tile a:visible")).to_have_count(1)
    assert visible_tiles(page) == ["/launch/rooster?source=search"]  # counted as search
    expect(headings).to_have_text(["Planning en HR"])
    expect(status).to_have_text("")

    search.press("Escape")
    expect(search).to_have_value("")
    search.press_sequentially("epd")  # a keyword of the EHR, not its name
    expect(page.locator(".tile a:visible")).to_have_count(1)
    assert visible_tiles(page) == ["/launch/ehr?source=search"]
    expect(headings).to_have_text(["Zorg"])

    search.press("Escape")  # no search: a tile is a tile again
    assert not [href for href in visible_tiles(page) if "source=" in href]
    search.press_sequentially("qwxyzzy")
    expect(page.locator(".tile a:visible")).to_have_count(0)
    expect(headings).to_have_count(0)
    expect(status).to_have_text(NL("No apps match your search."))
    expect(status).to_be_visible()
    expect(status).to_have_attribute("aria-live", "polite")

    search.press("Escape")
    expect(search).to_have_value("")
    expect(search).to_be_focused()
    expect(page.locator(".tile a:visible")).to_have_count(len(everything))
    expect(headings).to_have_text(CATEGORIES)
    expect(status).to_have_text("")


def test_enter_in_search_opens_the_first_match(
    open_tab: Callable[..., Tab], demo_server_sqlite: tuple[LiveServer, Settings]
) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    search = page.get_by_role("searchbox", name=NL("Search apps"))
    search.press_sequentially("epd")
    expect(page.locator(".tile a:visible")).to_have_count(1)
    with tab.context.expect_page() as opened:
        search.press("Enter")
    app = opened.value
    tab.watch(app)
    expect(app).to_have_url(EHR_URL)
    expect(app.get_by_role("heading")).to_have_text("An external app")  # the stub, not the net
    assert tab.external == [EHR_URL]
    expect(page).to_have_url(f"{tab.base}/")  # the portal stays open behind it
    # "search": a search result, and the browser said Sec-Fetch-Site: same-origin
    expected = [("ehr", "search")]
    assert launches_within(demo_server_sqlite[1].database_url, expected) == expected


def test_clicking_a_tile_opens_the_app_and_records_the_launch(
    open_tab: Callable[..., Tab], demo_server_sqlite: tuple[LiveServer, Settings]
) -> None:
    url = demo_server_sqlite[1].database_url
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    # a prefetch or a stray request would be recorded by now (the store flushes every 0.1 s)
    assert launches_within(url, timeout=1.0) == []
    with tab.context.expect_page() as opened:
        page.get_by_role("link", name=re.compile(r"^Roosterplanning")).click()
    app = opened.value
    # rooster uses OIDC third-party-initiated login: the launch lands on its login URI
    expect(app).to_have_url(re.compile("^" + re.escape(ROOSTER_LOGIN)))
    assert "target_link_uri=https%3A%2F%2Frooster.zorggroep-noord.example%2F" in app.url
    assert launches_within(url, [("rooster", "portal")]) == [("rooster", "portal")]


# --- other pages, sign-out and accessibility --------------------------------------------
def test_sign_out_button_ends_the_session(open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    page.get_by_role("button", name=NL("Sign out")).click()
    expect(page).to_have_url(f"{tab.base}/signed-out")
    expect(page.get_by_role("heading", level=1)).to_have_text(NL("You are signed out."))
    expect(page.get_by_role("button", name=NL("Sign out"))).to_have_count(0)
    page.goto(f"{tab.base}/")  # the session is gone: back to the provider
    expect(page).to_have_url(re.compile(re.escape(tab.base) + r"/_devidp/authorize\?"))


def test_axe_finds_no_serious_problems_on_the_portal_pages(
    open_tab: Callable[..., Tab],
) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    assert run_axe(page) == [], "grid"

    page.get_by_role("searchbox", name=NL("Search apps")).press_sequentially("qwxyzzy")
    expect(page.locator("#search-status")).not_to_be_empty()
    assert run_axe(page) == [], "grid, nothing found"

    response = page.goto(f"{tab.base}/launch/nope")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text(NL("Not found"))
    assert run_axe(page) == [], "error page"

    page.goto(f"{tab.base}/")
    page.get_by_role("button", name=NL("Sign out")).click()
    expect(page).to_have_url(f"{tab.base}/signed-out")
    assert run_axe(page) == [], "signed-out page"


def test_axe_finds_no_serious_problems_on_the_admin_page_and_phone_grid(
    open_tab: Callable[..., Tab],
) -> None:
    tab = open_tab(viewport=MOBILE, is_mobile=True, has_touch=True)
    page = sign_in(tab, ADMIN)
    assert run_axe(page) == [], "grid on a phone"
    page.get_by_label(NL("Which app do you miss?")).fill("ZorgDomein")
    page.get_by_role("button", name=NL("Ask for it")).click()
    expect(page.get_by_role("status")).to_have_text(
        NL("Thank you. The portal's administrators will see your request.")
    )
    assert run_axe(page) == [], "grid on a phone, after asking for an app"
    page.get_by_role("link", name=NL("Admin"), exact=True).click()
    expect(page).to_have_url(f"{tab.base}/admin")
    expect(page.get_by_role("heading", level=1)).to_have_text(NL("App registry"))
    expect(page.get_by_role("cell", name="ZorgDomein", exact=True)).to_be_visible()
    assert run_axe(page) == [], "admin page"
    assert page.evaluate(LAYOUT_PROBLEMS) == []


def test_axe_check_catches_a_broken_page(browser: Browser) -> None:
    """The accessibility gate itself: a page with known faults must not pass."""
    page = browser.new_page()
    try:
        page.set_content(
            '<!doctype html><html><title>x</title><body><main><img src="data:,">'
            "<button></button></main></body></html>"
        )
        found = {v["id"] for v in run_axe(page)}
    finally:
        page.close()
    assert {"image-alt", "button-name", "html-has-lang"} <= found, found


# --- favourites and recently used ----------------------------------------------------------
def test_favourites_and_recently_used(
    open_tab: Callable[..., Tab], demo_server_sqlite: tuple[LiveServer, Settings]
) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    favourites = page.locator("section[aria-labelledby=cat-favourites]")
    recent = page.locator("section[aria-labelledby=cat-recent]")
    expect(favourites).to_have_count(0)
    star = page.locator("#app-teams .star button")
    expect(star).to_have_accessible_name(re.compile(rf"^{NL('Favourite')}: .*Teams"))
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()  # a plain form post: no script needed
    expect(page).to_have_url(f"{tab.base}/#app-teams")
    page.wait_for_load_state()
    expect(favourites.locator(".tile a")).to_have_count(1)
    expect(favourites.locator(".tile a")).to_have_attribute(
        "href", "/launch/teams?source=favourite"
    )
    expect(page.locator("#app-teams .star button")).to_have_attribute("aria-pressed", "true")
    assert run_axe(page) == [], "grid with favourites"

    with tab.context.expect_page() as opened:
        page.locator("#app-outlook a").click()
    tab.watch(opened.value)
    opened.value.close()
    assert launches_within(demo_server_sqlite[1].database_url, [("outlook", "portal")])
    deadline = time.monotonic() + 10
    while recent.count() == 0 and time.monotonic() < deadline:  # the writer is a flush behind
        time.sleep(0.2)
        page.reload()
    expect(recent.locator(".tile a")).to_have_attribute("href", "/launch/outlook?source=recent")

    # searching: the personal rows step aside, so that each app is found once
    page.get_by_role("searchbox", name=NL("Search apps")).press_sequentially("teams")
    expect(favourites).to_be_hidden()
    expect(recent).to_be_hidden()
    found = visible_tiles(page)
    assert "/launch/teams?source=search" in found and len(found) == len(set(found)), found
    page.get_by_role("searchbox", name=NL("Search apps")).press("Escape")
    expect(favourites).to_be_visible()

    # and off again, from the keyboard
    page.locator("#app-teams .star button").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{tab.base}/#app-teams")
    expect(favourites).to_have_count(0)
    page.wait_for_load_state()  # the stylesheet and icons, before measuring the layout
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    assert tab.errors() == []


# --- screenshots for the README ---------------------------------------------------------
def test_screenshots_of_the_grid(open_tab: Callable[..., Tab], tmp_path: Path) -> None:
    shots: dict[str, dict[str, Any]] = {
        "portal.png": {"viewport": DESKTOP, "device_scale_factor": 1},
        "portal-mobile.png": {
            "viewport": MOBILE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True
        },
    }  # fmt: skip
    # A grid in use: two favourites and a recently used app above the categories.
    page = sign_in(open_tab(), CLINICIAN)
    for app in ("ehr", "teams"):
        page.locator(f"#app-{app} .star button").click()
        expect(page.locator(f"#app-{app} .star button")).to_have_attribute("aria-pressed", "true")
    with page.context.expect_page() as opened:
        page.locator("#app-outlook a").click()
    opened.value.close()
    deadline = time.monotonic() + 10
    while page.locator("#cat-recent").count() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        page.reload()
    for name, options in shots.items():
        tab = open_tab(**options)
        page = sign_in(tab, CLINICIAN)
        page.evaluate("() => document.fonts.ready.then(() => true)")
        expect(page.locator("img.icon").last).to_be_visible()
        page.mouse.move(0, 0)  # no hover effect in the picture
        page.screenshot(path=tmp_path / name, animations="disabled")
        scale, viewport = options["device_scale_factor"], options["viewport"]
        assert _png_size(tmp_path / name) == (viewport["width"] * scale, viewport["height"] * scale)
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        assert tab.errors() == []
    if SCREENSHOTS:
        target = Path(SCREENSHOTS) if Path(SCREENSHOTS).is_absolute() else ROOT / SCREENSHOTS
        target.mkdir(parents=True, exist_ok=True)
        for name in shots:
            shutil.copyfile(tmp_path / name, target / name)


# --- announcements, the editors' page, hallway screens, settings (launcher/engage/) -------
EDITOR = next(u for u in DEMO_USERS if "launcher-editors" in u.groups)
FULL_HD: ViewportSize = {"width": 1920, "height": 1080}
DISPLAY_TOKEN = "hall-main-browser-test-token-0123456789"
NEWS = (  # (title, body, groups, language): what the demo's editor might write
    (
        "Nieuwe versie van het EPD op maandag",
        "Het EPD is maandag tussen 06:00 en 07:00 niet beschikbaar.\n"
        "Gebruik in die tijd de papieren noodprocedure.",
        ("clinicians",),
        "",
    ),
    (
        "Het intranet staat nu ook op je telefoon",
        "Open het portaal in de browser van je telefoon en log in zoals altijd.",
        (),
        "nl",
    ),
    (
        "Griepprik: vanaf 1 oktober op elke locatie",
        "Maak een afspraak via het rooster; de prik is gratis voor alle medewerkers.",
        (),
        "",
    ),
)


def _seed(settings: Settings, *, news: int = len(NEWS), busy_apps: int = 0) -> list[int]:
    """Announcements written by the editor, and this week's launches of ``busy_apps`` apps by
    enough people to pass the minimum group size; returns the announcements' ids."""
    import datetime as dt

    from launcher import db
    from launcher.engage import announcements
    from launcher.models import UserDayApp, table
    from launcher.registry import load_registry

    registry = load_registry(settings.apps_file)
    today = dt.datetime.now(ZoneInfo(registry.portal.timezone)).date()
    engine = db.make_engine(settings.database_url)
    ids = []
    for title, body, groups, language in NEWS[:news]:
        draft = announcements.Draft(
            title, body, None, today - dt.timedelta(days=1), today + dt.timedelta(days=14),
            groups, language,
        )  # fmt: skip
        ids.append(announcements.create(engine, draft, "editor-pseudonym"))
    apps = [a.id for a in registry.apps if not a.hidden and not a.groups][:busy_apps]
    rows = [
        {"day": today, "app_id": app, "user_id": f"u{n}", "department": "", "launches": 3}
        for rank, app in enumerate(apps)
        for n in range(settings.report_min_group + 3 * (len(apps) - rank))
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(sa.insert(table(UserDayApp)), rows)
    engine.dispose()
    return ids


def test_announcement_banner_shows_hides_without_script_and_passes_axe(
    open_tab: Callable[..., Tab], demo_server_sqlite: tuple[LiveServer, Settings]
) -> None:
    _seed(demo_server_sqlite[1], news=2)
    page = sign_in(open_tab(), CLINICIAN)
    banner = page.locator("#announcements")
    expect(banner.locator("article h3")).to_have_text([NEWS[1][0], NEWS[0][0]])  # newest first
    expect(banner).to_be_in_viewport()  # above the grid, not below the fold
    expect(banner.locator("article").last.locator(".body")).to_contain_text("noodprocedure")
    assert run_axe(page) == [], "grid with announcements"
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    assert page.evaluate("() => window.__csp || []") == []

    tab = open_tab(java_script_enabled=False)  # hiding one is a plain form post
    page = sign_in(tab, CLINICIAN)
    banner = page.locator("#announcements")
    hide = banner.get_by_role("button", name=re.compile(r"^Verbergen\W+Nieuwe versie"))
    hide.click()
    expect(page).to_have_url(f"{tab.base}/")
    expect(banner.locator("article h3")).to_have_text([NEWS[1][0]])
    page.reload()  # hidden for good, for this person
    expect(banner.locator("article h3")).to_have_text([NEWS[1][0]])


def test_the_editors_page_passes_axe_and_a_400_shows_the_field(
    open_tab: Callable[..., Tab], demo_server_sqlite: tuple[LiveServer, Settings]
) -> None:
    _seed(demo_server_sqlite[1], news=1)
    tab = open_tab()
    page = sign_in(tab, EDITOR)
    page.get_by_role("link", name=NL("Announcements"), exact=True).click()
    expect(page).to_have_url(f"{tab.base}/admin/announcements")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mededelingen")
    expect(page.get_by_role("cell", name=re.compile("^Nieuwe versie van het EPD"))).to_be_visible()
    assert run_axe(page) == [], "editors' page"

    page.get_by_label("Titel").fill("Kerstborrel")
    page.get_by_label("Tekst").fill("Vrijdag om 16:00 in het restaurant.")
    page.get_by_label("Van").fill("2026-12-20")
    page.get_by_label("Tot en met").fill("2026-12-01")  # before the start: only the server knows
    with page.expect_response(f"{tab.base}/admin/announcements") as answer:
        page.get_by_role("button", name="Publiceren").click()
    assert answer.value.status == 400
    ends = page.get_by_label("Tot en met")
    expect(ends).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("ends")
    expect(ends).to_have_accessible_description(re.compile("ends"))
    expect(page.get_by_label("Titel")).to_have_value("Kerstborrel")  # what was typed stays
    assert run_axe(page) == [], "editors' page with a 400"
    # the browser logs the 400 itself, and nothing else
    assert all("status of 400" in e for e in tab.errors()), tab.errors()


def test_the_display_page_is_large_scriptless_cookieless_and_passes_axe(
    open_tab: Callable[..., Tab],
    demo_server_sqlite: tuple[LiveServer, Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAUNCHER_DISPLAY_HALL_MAIN", DISPLAY_TOKEN)  # config/apps.yaml's screen
    _seed(demo_server_sqlite[1], busy_apps=6)
    tab = open_tab(viewport=FULL_HD)
    page = tab.page
    page.clock.install()  # the screen's own timer, run on demand below
    response = page.goto(f"{tab.base}/display/{DISPLAY_TOKEN}")
    assert response is not None and response.status == 200
    assert "set-cookie" not in response.headers
    assert tab.context.cookies() == []
    inline = page.evaluate("() => [...document.scripts].filter(s => !s.src).length")
    assert inline == 0  # the strict CSP holds: the one script is a file
    body = page.locator("body")
    expect(body).to_have_attribute("data-refresh", re.compile(r"^\d+$"))
    expect(body).to_have_attribute("data-next", re.compile(r"^/display/"))
    expect(page.locator(".display-item h2")).to_have_count(2)  # not the clinicians' one
    expect(page.locator(".display-apps li")).to_have_count(6)
    body_px = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    assert body_px >= 32, body_px
    smallest = page.evaluate(
        """() => Math.min(...[...document.querySelectorAll('main *')]
            .filter(el => [...el.childNodes].some(n => n.nodeType === 3 && n.data.trim()))
            .map(el => parseFloat(getComputedStyle(el).fontSize)))"""
    )
    assert smallest >= 32, f"text of {smallest}px cannot be read from three metres"
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth > innerWidth"
        " || document.documentElement.scrollHeight > innerHeight"
    )
    assert not overflow, "the screen must fit 1920x1080 without scrolling"
    assert run_axe(page) == [], "display page"
    assert page.evaluate("() => window.__csp || []") == []
    next_url = body.get_attribute("data-next")
    page.clock.run_for(int(body.get_attribute("data-refresh") or 0) * 1000 + 500)
    expect(page).to_have_url(f"{tab.base}{next_url}")  # it moved on by itself
    missing = page.goto(f"{tab.base}/display/not-the-token-of-any-screen-at-all")
    assert missing is not None and missing.status == 404


def test_the_settings_page_passes_axe(open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    page.goto(f"{tab.base}/settings")
    expect(page.get_by_role("heading", level=1)).to_have_text(NL("Settings"))
    assert run_axe(page) == [], "settings"
    page.get_by_label("Stuur mij het wekelijkse overzicht").check()
    page.get_by_role("button", name="Opslaan").click()
    expect(page.get_by_role("status")).to_have_text("Opgeslagen.")
    assert run_axe(page) == [], "settings, opted in"


def test_screenshots_of_the_banner_and_the_display(
    open_tab: Callable[..., Tab],
    demo_server_sqlite: tuple[LiveServer, Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("LAUNCHER_DISPLAY_HALL_MAIN", DISPLAY_TOKEN)
    _seed(demo_server_sqlite[1], busy_apps=6)
    tab = open_tab(device_scale_factor=1)
    page = sign_in(tab, CLINICIAN)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    expect(page.locator("#announcements article")).to_have_count(3)
    expect(page.locator("img.icon").last).to_be_visible()
    page.mouse.move(0, 0)
    page.screenshot(path=tmp_path / "announcement.png", animations="disabled")
    assert _png_size(tmp_path / "announcement.png") == (DESKTOP["width"], DESKTOP["height"])

    screen = open_tab(viewport=FULL_HD, device_scale_factor=1).page
    screen.goto(f"{tab.base}/display/{DISPLAY_TOKEN}")
    screen.evaluate("() => document.fonts.ready.then(() => true)")
    screen.screenshot(path=tmp_path / "display.png", animations="disabled")
    assert _png_size(tmp_path / "display.png") == (1920, 1080)
    if SCREENSHOTS:
        target = Path(SCREENSHOTS) if Path(SCREENSHOTS).is_absolute() else ROOT / SCREENSHOTS
        target.mkdir(parents=True, exist_ok=True)
        for name in ("announcement.png", "display.png"):
            shutil.copyfile(tmp_path / name, target / name)

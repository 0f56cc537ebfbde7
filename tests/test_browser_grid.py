"""The grid in a real browser: type-anywhere search and the keyboard, favourites in one's own
order, both themes and both languages, a phone, speed. Same set-up as tests/test_browser.py
(its fixtures and helpers are imported from there)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from launcher import i18n
from launcher.settings import Settings
from tests import test_browser as shared
from tests.conftest import LiveServer
from tests.test_browser import (
    CLINICIAN,
    EHR_URL,
    LAYOUT_PROBLEMS,
    MOBILE,
    NL,
    Tab,
    launches_within,
    run_axe,
    sign_in,
    visible_tiles,
)
from tests.test_search import CASES

pytestmark = pytest.mark.browser
# the fixtures of tests/test_browser.py, under their own names
playwright, browser, server, open_tab = (
    shared.playwright,
    shared.browser,
    shared.server,
    shared.open_tab,
)


def focused_href(page: Page) -> str | None:
    href: str | None = page.evaluate("() => document.activeElement.getAttribute('href')")
    return href


# --- 1. type anywhere and the keyboard ----------------------------------------------------
def test_the_script_matches_like_the_server(open_tab: Callable[..., Tab]) -> None:
    """tests/test_search.py's table through static/portal.js's launcherSearch."""
    page = sign_in(open_tab(), CLINICIAN)
    found = page.evaluate(
        "cases => cases.map(([q, texts]) =>"
        " launcherSearch.matches(q, launcherSearch.haystack(texts)))",
        [[q, texts] for q, texts, _ in CASES],
    )
    assert found == [expected for _, _, expected in CASES]


def test_typing_anywhere_searches_and_the_arrows_move_between_results(
    open_tab: Callable[..., Tab],
) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    search = page.get_by_role("searchbox", name=NL("Search apps"))
    page.locator("main").click(position={"x": 5, "y": 5})  # focus on nothing in particular
    page.keyboard.type("roostr")  # one typo
    expect(search).to_be_focused()
    expect(search).to_have_value("roostr")
    assert visible_tiles(page) == ["/launch/rooster?source=search"]

    page.keyboard.press("Escape")
    expect(search).to_have_value("")
    page.keyboard.press("Tab")  # away from the box: "/" brings you back
    page.keyboard.press("/")
    expect(search).to_be_focused()

    page.keyboard.type("dossier")  # keywords, in both languages
    results = visible_tiles(page)
    assert results and all(h.endswith("?source=search") for h in results)
    page.keyboard.press("ArrowDown")
    assert focused_href(page) == results[0]
    page.keyboard.press("ArrowUp")  # from the first row back into the box
    expect(search).to_be_focused()

    page.keyboard.press("Escape")
    page.keyboard.type("m")  # several results: right and left step through them
    results = visible_tiles(page)
    assert len(results) >= 3
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert focused_href(page) == results[2]
    page.keyboard.press("ArrowLeft")
    assert focused_href(page) == results[1]
    assert tab.errors() == []


def test_enter_on_a_selected_result_opens_it_as_a_search_launch(
    open_tab: Callable[..., Tab], demo_server_sqlite: tuple[LiveServer, Settings]
) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    page.keyboard.type("EPD")
    page.keyboard.press("ArrowDown")
    assert focused_href(page) == "/launch/ehr?source=search"
    with tab.context.expect_page() as opened:
        page.keyboard.press("Enter")
    expect(opened.value).to_have_url(EHR_URL)
    expected = [("ehr", "search")]
    assert launches_within(demo_server_sqlite[1].database_url, expected) == expected


def test_digits_open_the_favourites_in_order(
    open_tab: Callable[..., Tab], demo_server_sqlite: tuple[LiveServer, Settings]
) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    for app in ("outlook", "ehr"):
        page.locator(f"#app-{app} .star button").click()
        expect(page.locator(f"#app-{app} .star button")).to_have_attribute("aria-pressed", "true")
    page.locator("main").click(position={"x": 5, "y": 5})
    with tab.context.expect_page() as opened:
        page.keyboard.press("2")  # the second favourite
    expect(opened.value).to_have_url(EHR_URL)
    page.keyboard.press("9")  # no ninth favourite: nothing happens
    expected = [("ehr", "favourite")]
    assert launches_within(demo_server_sqlite[1].database_url, expected) == expected
    # typing into a field is typing, not a shortcut
    page.get_by_label(NL("Which app do you miss?")).type("1")
    expect(page.get_by_label(NL("Which app do you miss?"))).to_have_value("1")
    assert len(tab.context.pages) == 2


def test_search_without_javascript_is_a_form(open_tab: Callable[..., Tab]) -> None:
    tab = open_tab(java_script_enabled=False)
    page = sign_in(tab, CLINICIAN)
    search = page.get_by_role("searchbox", name=NL("Search apps"))
    search.fill("roostr")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"/\?q=roostr$"))
    assert visible_tiles(page) == ["/launch/rooster?source=search"]
    # (axe-core needs script: the same markup is checked with it in the other tests)


# --- 2. favourites in one's own order -----------------------------------------------------
def favourite_order(page: Page) -> list[str]:
    order: list[str] = page.locator(".favourites .tile").evaluate_all(
        "els => els.map(li => li.dataset.app)"
    )
    return order


def expect_favourites(page: Page, order: list[str]) -> None:
    """The favourites in this order, waiting (retrying) through a reload."""
    tiles = page.locator(".favourites .tile")
    expect(tiles).to_have_count(len(order))
    for i, app in enumerate(order):
        expect(tiles.nth(i)).to_have_attribute("data-app", app)


def test_favourites_move_with_the_keyboard_and_by_dragging(open_tab: Callable[..., Tab]) -> None:
    tab = open_tab()
    page = sign_in(tab, CLINICIAN)
    for app in ("teams", "outlook", "ehr"):
        page.locator(f"#app-{app} .star button").click()
        expect(page.locator(f"#app-{app} .star button")).to_have_attribute("aria-pressed", "true")
    assert favourite_order(page) == ["teams", "outlook", "ehr"]

    # keyboard: the "up" button of the EHR, twice; focus stays on the moved tile's buttons
    up = page.get_by_role("button", name=f"{NL('Move up')}: Elektronisch patiëntendossier")
    up.focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{tab.base}/#fav-ehr")
    assert favourite_order(page) == ["teams", "ehr", "outlook"]
    expect(up).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".favourites .tile").first).to_have_attribute("data-app", "ehr")
    assert favourite_order(page) == ["ehr", "teams", "outlook"]
    assert run_axe(page) == [], "favourites with move buttons"

    # a mouse: drag Outlook onto the first place; the page reloads with the server's order
    page.locator("#fav-outlook .name").drag_to(
        page.locator("#fav-ehr"), target_position={"x": 5, "y": 20}
    )
    expect(page).to_have_url(f"{tab.base}/#fav-outlook")
    expect_favourites(page, ["outlook", "ehr", "teams"])
    page.reload()
    expect_favourites(page, ["outlook", "ehr", "teams"])  # kept on the server
    assert tab.errors() == []


# --- 3 and 4. both themes, both languages ---------------------------------------------------
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_both_themes_and_both_languages_are_axe_clean(
    open_tab: Callable[..., Tab], scheme: str
) -> None:
    tab = open_tab(color_scheme=scheme)
    page = sign_in(tab, CLINICIAN)
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    dark = sum(int(c) for c in re.findall(r"\d+", background)[:3]) < 3 * 64
    assert dark is (scheme == "dark"), background
    page.locator("#app-teams .star button").click()  # favourites with their buttons
    page.locator("#app-ehr .star button").click()
    expect(page.locator(".favourites .tile")).to_have_count(2)
    for lang in ("nl", "en"):
        t = i18n.translator(lang)
        page.get_by_role("button", name=i18n.language_name(lang), exact=True).click()
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.get_by_role("button", name=t("Sign out"))).to_be_visible()
        assert run_axe(page) == [], f"grid, {lang}, {scheme}"
        page.keyboard.type("mail")
        expect(page.locator(".favourites")).to_be_hidden()
        assert run_axe(page) == [], f"search in progress, {lang}, {scheme}"
        page.keyboard.press("Escape")
        page.keyboard.type("qwxyzzy")
        expect(page.locator("#search-status")).to_have_text(t("No apps match your search."))
        assert run_axe(page) == [], f"nothing found, {lang}, {scheme}"
        page.keyboard.press("Escape")
        page.locator(".star button").first.focus()  # the focus ring, in this theme
        assert run_axe(page) == [], f"focus on a star, {lang}, {scheme}"
        response = page.goto(f"{tab.base}/launch/nope")
        assert response is not None and response.status == 404
        assert run_axe(page) == [], f"error page, {lang}, {scheme}"
        page.goto(f"{tab.base}/")
    # the choice outlives the page: English stays although the browser asks for Dutch
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{tab.base}/signed-out")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert run_axe(page) == [], f"signed-out page, {scheme}"
    assert [e for e in tab.errors() if "/launch/nope" not in e] == []  # the 404 we asked for


# --- 7. a phone is not a narrow desktop -----------------------------------------------------
FIRST_SCREEN = """() => Array.from(document.querySelectorAll('.tile a')).filter(a => {
    const r = a.getBoundingClientRect();
    return r.width > 0 && r.top >= 0 && r.bottom <= window.innerHeight;
}).map(a => a.getAttribute('href'))"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_phone_shows_an_icon_grid(open_tab: Callable[..., Tab], scheme: str) -> None:
    desktop = sign_in(open_tab(), CLINICIAN)
    desktop_links = desktop.locator(".tile a").evaluate_all("els => els.map(a => a.href)")
    tab = open_tab(viewport=MOBILE, is_mobile=True, has_touch=True, color_scheme=scheme)
    page = sign_in(tab, CLINICIAN)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    first_screen = page.evaluate(FIRST_SCREEN)
    assert len(first_screen) >= 12, first_screen
    columns = page.locator(".tiles").first.evaluate(
        "ul => getComputedStyle(ul).gridTemplateColumns.split(' ').length"
    )
    assert columns == 4
    # the name under the icon, and the same links in the same order as on a desktop
    for tile in page.locator(".tile a").all()[:8]:
        icon, name = tile.locator(".icon").bounding_box(), tile.locator(".name").bounding_box()
        assert icon and name and name["y"] >= icon["y"] + icon["height"] - 1
    links = page.locator(".tile a").evaluate_all("els => els.map(a => a.href)")
    assert links == desktop_links
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    assert run_axe(page) == [], f"phone grid, {scheme}"
    for lang in ("en", "nl"):
        page.get_by_role("button", name=i18n.language_name(lang), exact=True).click()
        expect(page.locator("html")).to_have_attribute("lang", lang)
        assert page.evaluate(LAYOUT_PROBLEMS) == [], lang
        assert run_axe(page) == [], f"phone grid, {lang}, {scheme}"
    assert tab.errors() == []

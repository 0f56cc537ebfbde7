"""/reports in a real browser (headless Chromium against the live demo server, as in
tests/test_browser.py, whose fixtures and helpers this reuses): in Dutch, axe clean, every chart
with its text alternative, the answer on the first screen, the adoption chart's month labels
apart at the narrowest layout, and the README's screenshots of the first screen and of the
Front door section (``LAUNCHER_SCREENSHOTS=docs/screenshots`` copies them there)."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from launcher import db
from launcher.demo import data as demo_data
from launcher.demo.devidp import DEMO_USERS
from launcher.engage import announcements
from launcher.registry import load_registry
from tests import test_browser as browser_support
from tests.conftest import ROOT, LiveServer
from tests.test_browser import DESKTOP, NL, SCREENSHOTS, Tab, _png_size, run_axe, sign_in

# the browser fixtures of tests/test_browser.py; pytest finds them by these names
playwright = browser_support.playwright
browser = browser_support.browser
open_tab = browser_support.open_tab

pytestmark = pytest.mark.browser

REVIEWER = next(u for u in DEMO_USERS if "launcher-reviewers" in u.groups)
NARROWEST: ViewportSize = {"width": 320, "height": 640}
NL_PERCENT = re.compile(r"^\d{1,3},\d ?%$")  # a share as the Dutch page writes it: 61,5%


def _generate(path: Path, signins: Path | None = None) -> Path:
    from tests.conftest import _reset

    url = f"sqlite:///{path}"
    _reset(url)
    engine = db.make_engine(url)
    registry = load_registry(ROOT / "config" / "apps.yaml")
    demo_data.generate(
        engine,
        registry,
        months=22,
        employees=160,
        pseudonym_key=b"k" * 32,
        seed=7,
        signins=signins,
    )
    # announcements of the default period (the last full month): one seen by 8 people, one
    # by 2 (its reach is suppressed)
    today = dt.datetime.now(dt.UTC).date()
    first = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    for title, people in (("Nieuw rooster", 8), ("Brandoefening", 2)):
        draft = announcements.parse(
            {"title": title, "body": "…", "starts": first.isoformat(), "ends": today.isoformat()}
        )
        announcements.create(engine, draft, "editor")
        for n in range(people):
            announcements.for_user(engine, f"viewer-{n}", ("staff",), "nl", today)
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def _history_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Months of demo history since go-live, generated once for this module's tests."""
    return _generate(tmp_path_factory.mktemp("reports-history") / "launcher.db")


@pytest.fixture(scope="module")
def _signins_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same history with the identity provider's sign-in log imported (the Front door),
    for the tests that need it only: generating it takes longer."""
    folder = tmp_path_factory.mktemp("reports-signins")
    return _generate(folder / "launcher.db", signins=folder / "signins.json")


@pytest.fixture
def server(
    request: pytest.FixtureRequest, tmp_path: Path, devidp_key: Path
) -> Iterator[LiveServer]:
    """The demo portal over a copy of that history (with the sign-ins for a test whose name
    says front_door)."""
    from tests.conftest import _demo_server

    name = "_signins_template" if "front_door" in request.node.name else "_history_template"
    template: Path = request.getfixturevalue(name)
    target = tmp_path / "history.db"
    shutil.copyfile(template, target)
    for live, _ in _demo_server(tmp_path, f"sqlite:///{target}", devidp_key):
        yield live


def _reports(tab: Tab, query: str = "") -> Page:
    page = sign_in(tab, REVIEWER)
    page.goto(f"{tab.base}/reports{query}")
    expect(page.locator("h1")).to_have_text(NL("Reports"))
    return page


def test_reports_in_dutch_are_axe_clean_with_text_alternatives(
    open_tab: Callable[..., Tab],
) -> None:
    tab = open_tab()
    page = _reports(tab)
    assert page.locator("html").get_attribute("lang") == "nl"
    answer = page.locator("#answer").inner_text()
    assert answer.startswith("Vergeleken met de eerste maand na de livegang: ")
    assert "%" in answer and "," in answer  # numbers with the Dutch decimal comma
    for heading in ("Kerncijfers", "Voordeur", "Wat terugliep sinds de livegang"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    charts = page.locator("svg.chart")
    assert charts.count() > 5
    for i in range(charts.count()):  # every chart: an image with a title and a description
        svg = charts.nth(i)
        assert svg.get_attribute("role") == "img"
        title_id, desc_id = (svg.get_attribute("aria-labelledby") or "").split()
        assert svg.locator(f"title#{title_id}").text_content()
        assert svg.locator(f"desc#{desc_id}").text_content()
    # where launches start: a sparkline per source (its numbers in its description) and the
    # months by sources in a table; the announcements with their reach
    section = page.locator("section[aria-labelledby=h-sources]")
    expect(section.get_by_role("heading", name="Waar starten mensen apps")).to_be_visible()
    labels = section.locator(".sparklines .spark-name").all_inner_texts()
    assert "Tegel op de startpagina" in labels and "Wekelijks overzicht" in labels, labels
    digest = section.locator(".sparklines li", has_text="Wekelijks overzicht").locator("desc")
    assert ": " in (digest.text_content() or "")
    matrix = section.get_by_role("table", name="Starts per maand en herkomst")
    expect(matrix).to_be_attached()
    assert matrix.locator("tbody tr").count() >= 2
    reach = section.get_by_role("region", name="Mededelingen van de periode", exact=False)
    expect(reach.locator("tbody tr")).to_have_count(2)
    expect(reach.locator("tbody tr", has_text="Brandoefening")).to_contain_text("< ")
    spark = page.locator(".sparklines svg").first
    assert spark.locator(".spark-end").count() == 2 and spark.locator(".spark-axis").count() == 1
    assert "starts per maand" in (spark.locator(".spark-axis").text_content() or "")
    assert run_axe(page) == []
    assert page.evaluate("() => window.__csp || []") == []
    assert tab.errors() == []


def test_adoption_month_labels_stay_apart_at_the_narrowest_layout(
    open_tab: Callable[..., Tab],
) -> None:
    tab = open_tab(viewport=NARROWEST)
    page = _reports(tab)
    boxes = page.locator("svg.adoption text.tick").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return [r.left, r.right, e.textContent]; })"
    )
    assert len(boxes) >= 3, boxes
    for (left, right, label), (next_left, _, following) in zip(boxes, boxes[1:], strict=False):
        assert next_left - right >= right - left, f"{label} and {following} are too close"
    wide = page.evaluate(
        "() => [...document.querySelectorAll('main *')].filter(e => "
        "e.getBoundingClientRect().right > window.innerWidth + 0.5 && "
        "!e.closest('.table-wrap, pre')).slice(0, 8).map(e => e.tagName + '.'"
        " + e.getAttribute('class') + ' ' + Math.round(e.getBoundingClientRect().right))"
    )
    assert wide == [], "wider than the screen: " + " | ".join(wide)
    assert run_axe(page) == []


def test_screenshot_of_the_first_screen(open_tab: Callable[..., Tab], tmp_path: Path) -> None:
    tab = open_tab(viewport=DESKTOP, device_scale_factor=1)
    page = _reports(tab)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.mouse.move(0, 0)
    shot = tmp_path / "reports.png"
    page.screenshot(path=shot, animations="disabled")
    assert _png_size(shot) == (DESKTOP["width"], DESKTOP["height"])
    expect(page.locator("#answer")).to_be_in_viewport()
    if SCREENSHOTS:
        target = Path(SCREENSHOTS) if Path(SCREENSHOTS).is_absolute() else ROOT / SCREENSHOTS
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target / "reports.png")


def test_screenshot_of_the_front_door(open_tab: Callable[..., Tab], tmp_path: Path) -> None:
    """The Front door section on the demo data: the headline share with its changes, the
    table per app, the monthly trend and the apps in use without a tile (the README's
    screenshot, docs/screenshots/front-door.png)."""
    tab = open_tab(viewport=DESKTOP, device_scale_factor=1)
    page = _reports(tab)
    page.evaluate("() => document.fonts.ready.then(() => true)")
    page.mouse.move(0, 0)
    section = page.locator("section.front-door")
    expect(section.locator(".front-headline strong.big")).to_have_text(NL_PERCENT)
    for heading in ("h-gateway", "h-unregistered"):
        expect(section.locator(f"#{heading}")).to_be_visible()
    assert section.locator("svg.chart").count() >= 1  # the monthly trend
    shot = tmp_path / "front-door.png"
    section.screenshot(path=shot, animations="disabled")
    width, height = _png_size(shot)
    assert width <= DESKTOP["width"] and height > 300
    if SCREENSHOTS:
        target = Path(SCREENSHOTS) if Path(SCREENSHOTS).is_absolute() else ROOT / SCREENSHOTS
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target / "front-door.png")

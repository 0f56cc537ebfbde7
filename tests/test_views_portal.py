"""The grid and launches (launcher/views/portal.py): what is recorded and who may launch what.
In process, with the event writer in a thread: a flush is written when it returns."""

from __future__ import annotations

import re

from tests.helpers import CLINICIAN, STAFF, InProcess
from tests.web import launch_rows


def test_prefetch_records_nothing(portal: InProcess) -> None:
    cookie = portal.cookie(STAFF)
    for headers in (
        {"Sec-Purpose": "prefetch"},
        {"Sec-Purpose": "prefetch;prerender"},
        {"Purpose": "prefetch"},
    ):
        speculative = portal.get("/launch/teams", cookie, headers=headers)
        assert speculative.status_code not in (301, 302, 303, 307, 308), headers
        assert "location" not in speculative.headers
        assert "no-store" in speculative.headers.get("cache-control", "")
    real = portal.get("/launch/teams", cookie)
    assert real.status_code == 303
    portal.flush()
    assert launch_rows(portal.settings.database_url) == ["teams"]


def test_launch_of_a_forbidden_or_unknown_app_is_404_and_not_recorded(portal: InProcess) -> None:
    cookie = portal.cookie(STAFF)
    forbidden = portal.get("/launch/ehr", cookie)  # clinicians only
    admin_only = portal.get("/launch/admin-console", cookie)
    unknown = portal.get("/launch/no-such-app", cookie)
    assert forbidden.status_code == admin_only.status_code == unknown.status_code == 404
    # nothing tells an app the user may not see from one that does not exist
    assert forbidden.text == unknown.text
    assert "epd.zorggroep-noord.example" not in forbidden.text
    assert "entra.microsoft.com" not in admin_only.text
    assert portal.get("/launch/outlook", cookie).status_code == 303
    portal.flush()
    assert launch_rows(portal.settings.database_url) == ["outlook"]


# the category "Communication" (config/apps.yaml)
COMMUNICATION = {
    "/launch/teams",
    "/launch/outlook",
    "/launch/google-workspace",
    "/launch/intranet-news",
}


def _shown_tiles(page: str) -> list[str]:
    """The launch links of the tiles the page does not hide (the server's search)."""
    return re.findall(
        r'<li class="tile" id="app-[^"]+" data-search="[^"]*">\s*<a href="([^"]+)"', page
    )


def test_search_without_javascript_filters_on_the_server(portal: InProcess) -> None:
    cookie = portal.cookie(CLINICIAN)
    everything = _shown_tiles(portal.get("/", cookie).text)
    assert len(everything) > 10 and not [h for h in everything if "?" in h]

    page = portal.get("/", cookie, params={"q": "patientendossier"}).text
    assert _shown_tiles(page) == [
        "/launch/ehr?source=search"
    ]  # "patiëntendossier" without the accent
    assert 'value="patientendossier"' in page  # the box keeps the words
    assert '<form class="search" role="search" method="get" action="/">' in page
    # the others are in the page but hidden, so that clearing the box with script shows them
    assert page.count('<li hidden class="tile"') == len(everything) - 1

    for query, expected in [
        ("EPD", ["/launch/ehr?source=search"]),
        ("roostr", ["/launch/rooster?source=search"]),  # one typo
        ("agenda", ["/launch/outlook?source=search"]),  # a Dutch keyword
        ("communicatie", [f"{h}?source=search" for h in everything if h in COMMUNICATION]),
    ]:
        assert _shown_tiles(portal.get("/", cookie, params={"q": query}).text) == expected, query

    nothing = portal.get("/", cookie, params={"q": "qwxyzzy"}).text
    assert _shown_tiles(nothing) == []
    assert "Geen apps gevonden." in nothing  # Dutch: the portal's default language


def test_search_never_shows_an_app_the_user_may_not_see(portal: InProcess) -> None:
    page = portal.get("/", portal.cookie(STAFF), params={"q": "epd"}).text
    assert "/launch/ehr" not in page and "patiëntendossier" not in page
    assert _shown_tiles(page) == []

"""The grid and launches (launcher/views/portal.py): what is recorded and who may launch what.
In process, with the event writer in a thread: a flush is written when it returns."""

from __future__ import annotations

import dataclasses
import re

from tests.helpers import ADMIN, CLINICIAN, REVIEWER, STAFF, InProcess
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
        r'<li class="tile(?: later)?" id="app-[^"]+" data-search="[^"]*">\s*<a href="([^"]+)"', page
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
    assert len(re.findall('<li hidden class="tile( later)?"', page)) == len(everything) - 1

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


def test_the_language_switch_is_remembered_over_the_browsers_language(portal: InProcess) -> None:
    cookie = portal.cookie(STAFF)
    dutch_browser = {"Accept-Language": "nl-NL,nl;q=0.9"}
    page = portal.get("/", cookie, headers=dutch_browser).text
    assert '<html lang="nl">' in page
    assert 'value="en" lang="en" aria-pressed="false">English</button>' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    origin = {"Origin": portal.settings.base_url}

    switched = portal.post(
        "/language",
        cookie,
        data={"csrf_token": token[1], "lang": "en", "next": "/?q=mail"},
        headers=origin,
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/?q=mail"
    set_cookie = switched.headers["set-cookie"]
    assert set_cookie.startswith("launcher_lang=en;") and "HttpOnly" in set_cookie
    assert "SameSite=lax" in set_cookie and "Max-Age=31536000" in set_cookie
    both = f"{portal.settings.session_cookie}={cookie}; launcher_lang=en"
    english = portal.get("/", headers=dutch_browser | {"Cookie": both}).text
    assert '<html lang="en">' in english and "Search apps" in english

    # signed in: the token is needed; anyone: a language we have, a same-site next
    assert portal.post("/language", cookie, data={"lang": "en"}, headers=origin).status_code == 403
    anonymous = portal.post(
        "/language", data={"lang": "nl", "next": "//evil.example"}, headers=origin
    )
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/"
    assert portal.post("/language", data={"lang": "xx"}, headers=origin).status_code == 400
    cross_site = portal.post(
        "/language", data={"lang": "en"}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403


def test_the_web_app_manifest_and_its_icons(portal: InProcess) -> None:
    response = portal.get("/manifest.webmanifest")  # browsers fetch it without cookies
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/manifest+json")
    manifest = response.json()
    assert manifest["name"] == "Zorggroep Noord" and manifest["start_url"] == "/"
    assert manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        image = portal.get(icon["src"])
        assert image.status_code == 200 and image.headers["content-type"] == icon["type"]
        assert "immutable" in image.headers["cache-control"]  # a hashed URL
    page = portal.get("/", STAFF).text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert (
        "serviceWorker" not in page and "serviceWorker" not in portal.get("/static/portal.js").text
    )  # no service worker: it could show a stale grid after sign-out


def test_static_files_are_cached_by_content_hash(portal: InProcess) -> None:
    page = portal.get("/", STAFF).text
    css = re.search(r'href="(/static/style\.css\?v=[0-9a-f]{12})"', page)
    js = re.search(r'src="(/static/portal\.js\?v=[0-9a-f]{12})"', page)
    assert css and js
    for url in (css[1], js[1]):
        hashed = portal.get(url)
        assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
    stale = portal.get("/static/style.css?v=000000000000")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    assert portal.get("/static/style.css").headers["cache-control"] == "no-cache"


def test_pages_are_compressed_but_launches_are_not(portal: InProcess) -> None:
    cookie = portal.cookie(STAFF)
    gzip = {"Accept-Encoding": "gzip"}
    page = portal.get("/", cookie, headers=gzip)
    assert page.headers["content-encoding"] == "gzip"
    assert portal.get("/static/style.css", headers=gzip).headers["content-encoding"] == "gzip"
    launch = portal.get("/launch/teams", cookie, headers=gzip)
    assert launch.status_code == 303 and "content-encoding" not in launch.headers


def test_the_grid_from_its_prerendered_frame_is_the_page_jinja_renders(portal: InProcess) -> None:
    """launcher/views/portal.py, Frames: the plain grid page is joined from a frame rendered
    once; it must be the very page the templates render, for every header and language, and
    the person's name must be escaped as the template escapes it."""
    from launcher.views.portal import Frames

    odd_name = dataclasses.replace(portal.user(STAFF), name='Anouk <b>&amp; "de" Vries\'')
    staff = portal.user(STAFF)
    admin_only = dataclasses.replace(staff, groups=(*staff.groups, *portal.settings.admin_groups))
    editor = dataclasses.replace(staff, groups=(*staff.groups, *portal.settings.editor_groups))
    portal.app.state.grid_frames = frames = Frames()  # one for all: a frame is never mixed up
    for who in (ADMIN, STAFF, admin_only, editor, REVIEWER, odd_name):
        cookie = portal.cookie(who)
        for language in ({"Accept-Language": "en"}, {"Accept-Language": "nl"}):
            frames.enabled = True
            joined = [portal.get("/", cookie, headers=language).text for _ in range(2)]
            frames.enabled = False
            rendered = portal.get("/", cookie, headers=language).text
            assert joined == [rendered, rendered], (who, language)
    assert len(frames._frames) <= 10  # at most five headers in two languages, each built once
    assert "Anouk &lt;b&gt;&amp;amp; &#34;de&#34; Vries&#39;" in rendered
    assert "<b>" not in rendered.split("<main", 1)[0]

"""The grid and launches (launcher/views/portal.py): what is recorded and who may launch what.
In process, with the event writer in a thread: a flush is written when it returns."""

from __future__ import annotations

from tests.helpers import STAFF, InProcess
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

"""The admin page (launcher/views/admin.py): for admins only. In process."""

from __future__ import annotations

from launcher.registry import load_registry
from tests.helpers import ADMIN, REVIEWER, STAFF, InProcess


def test_admin_page_is_for_admins_only(portal: InProcess) -> None:
    registry = load_registry(portal.settings.apps_file)
    anonymous = portal.get("/admin")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/admin"
    for user in (STAFF, REVIEWER):
        refused = portal.get("/admin", user)
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
        assert "admin-console" not in refused.text
    page = portal.get("/admin", ADMIN)
    assert page.status_code == 200
    for app in registry.apps:
        assert f"<code>{app.id}</code>" in page.text, app.id
    assert "entra.microsoft.com" in page.text

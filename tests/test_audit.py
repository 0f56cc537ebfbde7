"""Audit events (launcher/audit.py): what each records, and that it names nobody."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from launcher import logs
from launcher.audit import EVENTS, audit, session_ref
from launcher.auth.user import pseudonym
from launcher.demo.devidp import DEMO_USERS, DemoUser
from launcher.registry import RegistryHolder
from launcher.settings import Settings
from tests.conftest import EXAMPLE_APPS, LiveServer, sign_in
from tests.test_logs import Lines
from tests.web import csrf_of, logout_token

ROOT = Path(__file__).resolve().parent.parent
STAFF = next(u for u in DEMO_USERS if u.groups == ("staff",))
ADMIN = next(u for u in DEMO_USERS if "launcher-admins" in u.groups)
Demo = tuple[LiveServer, Settings]


@pytest.fixture
def records() -> Iterator[Lines]:
    """The audit records as JSON lines (LAUNCHER_LOG_FORMAT=json)."""
    handler = Lines()
    logger = logging.getLogger("launcher.audit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _events(records: Lines, event: str) -> list[dict[str, Any]]:
    return [r for r in records.objects() if r["event"] == event]


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in logs.RESERVED and k != "event"}


def _names_nobody(lines: list[str], *users: DemoUser) -> None:
    text = "\n".join(lines)
    for user in users:
        parts = [part for part in user.name.split() if len(part) > 3]  # not "de", "van"
        for value in (user.email, user.name, user.sub, user.upn, *parts):
            assert value not in text, f"{value!r} in the audit log"


def _client() -> httpx.Client:
    return httpx.Client(follow_redirects=False, timeout=10)


# --- the function -------------------------------------------------------------------------
def test_every_record_of_an_event_has_the_same_keys(records: Lines) -> None:
    audit("registry_reload", outcome="ok", path="apps.yaml", apps=3)
    audit("registry_reload", outcome="refused", path="apps.yaml", error="apps.yaml:3: bad")
    first, second = (_fields(r) for r in records.objects())
    assert list(first) == list(second) == list(EVENTS["registry_reload"])
    assert first["apps"] == 3 and first["error"] is None
    assert second["apps"] is None and second["error"] == "apps.yaml:3: bad"


@pytest.mark.parametrize(
    ("event", "fields", "message"),
    [
        pytest.param("signed_in", {}, "unknown audit event", id="unknown event"),
        pytest.param("sign_in", {"email": "a@b.example"}, "no field", id="unknown field"),
        pytest.param("sign_in", {"user": STAFF.email}, "pseudonym", id="e-mail as user"),
        pytest.param("sign_in", {"user": STAFF.sub}, "pseudonym", id="sub as user"),
        pytest.param("sign_in", {"user": "A" * 32}, "pseudonym", id="not lower-case hex"),
        pytest.param("sign_in", {"session": ["x"]}, "text, a number", id="a list"),
    ],
)
def test_audit_refuses_what_it_does_not_define(
    event: str, fields: dict[str, Any], message: str, records: Lines
) -> None:
    with pytest.raises(ValueError, match=message):
        audit(event, **fields)
    assert records.lines == []


def test_long_values_are_cut_and_text_lines_cannot_be_forged() -> None:
    handler = Lines(json_format=False)
    logger = logging.getLogger("launcher.audit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        audit("backchannel_logout", outcome="refused", reason="x" * 10_000)
        audit("backchannel_logout", outcome="refused", reason="kid\n2025-01-01 INFO forged")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert len(handler.lines[0]) < 700
    assert handler.lines[1].count("\n") == 0 and 'reason="kid\\n2025' in handler.lines[1]


def test_no_event_field_hides_a_standard_key_of_the_json_line() -> None:
    for event, fields in EVENTS.items():
        assert not logs.RESERVED & set(fields), event
        assert "event" not in fields, event


def test_session_ref_is_stable_and_not_the_session_id() -> None:
    assert session_ref("abc") == session_ref("abc") != session_ref("abd")
    assert "abc" not in session_ref("abc") and len(session_ref("abc")) == 16


def test_every_event_and_field_is_documented_in_security_md() -> None:
    text = (ROOT / "docs" / "SECURITY.md").read_text(encoding="utf-8")
    section = text.split("## Audit events", 1)[1].split("\n## ", 1)[0]
    for event, fields in EVENTS.items():
        assert f"`{event}`" in section, event
        block = section.split(f"`{event}`", 1)[1].split("\n- `", 1)[0]
        for field in fields:
            assert f"`{field}`" in block, (event, field)


# --- wired into the portal ----------------------------------------------------------------
def test_sign_in_and_sign_out_are_audited_pseudonymously(
    demo_server_sqlite: Demo, records: Lines
) -> None:
    server, settings = demo_server_sqlite
    assert settings.oidc_issuer
    user_id = pseudonym(settings.pseudonym_secret(), settings.oidc_issuer, STAFF.sub)
    with _client() as browser:
        sign_in(browser, server.url, STAFF.sub)
        grid = browser.get(f"{server.url}/")
        out = browser.post(f"{server.url}/logout", data={"csrf_token": csrf_of(grid.text)})
        assert out.status_code == 303
    (signed_in,) = _events(records, "sign_in")
    (signed_out,) = _events(records, "sign_out")
    assert _fields(signed_in) == {"user": user_id, "session": signed_in["session"]}
    assert re.fullmatch(r"[0-9a-f]{16}", signed_in["session"])
    assert _fields(signed_out) == _fields(signed_in)  # the same person, the same session
    _names_nobody(records.lines, STAFF)


def test_a_failed_sign_in_is_audited_with_the_reason_on_its_page(
    demo_server_sqlite: Demo, records: Lines
) -> None:
    server, _ = demo_server_sqlite
    with _client() as browser:
        page = browser.get(f"{server.url}/auth/callback?state=forged&code=x")
    assert page.status_code == 400
    (failed,) = _events(records, "sign_in_failed")
    assert failed["error"] == "LoginFailed" and failed["status"] == 400
    assert failed["reason"] and failed["reason"] in page.text
    assert "forged" not in records.lines[0]  # the technical detail stays in the warning log


def _devidp(server: LiveServer) -> Any:
    app = server.server.config.app
    assert isinstance(app, Starlette)
    mount = next(r for r in app.routes if getattr(r, "path", None) == "/_devidp")
    return mount.app.state.devidp  # type: ignore[attr-defined]


def test_back_channel_logouts_are_audited(demo_server_sqlite: Demo, records: Lines) -> None:
    server, settings = demo_server_sqlite
    assert settings.oidc_issuer
    key = _devidp(server).keys[0]
    url = f"{server.url}/auth/backchannel-logout"
    with _client() as provider:
        by_sub = provider.post(url, data={"logout_token": logout_token(key, settings, sub="x1")})
        by_sid = provider.post(url, data={"logout_token": logout_token(key, settings, sid="s")})
        refused = provider.post(url, data={"logout_token": logout_token(key, settings, aud="x")})
    assert [by_sub.status_code, by_sid.status_code, refused.status_code] == [200, 200, 400]
    user_id = pseudonym(settings.pseudonym_secret(), settings.oidc_issuer, "x1")
    assert [_fields(r) for r in _events(records, "backchannel_logout")] == [
        {"outcome": "ok", "by": "sub", "user": user_id, "reason": None},
        {"outcome": "ok", "by": "sid", "user": None, "reason": None},
        {
            "outcome": "refused",
            "by": None,
            "user": None,
            "reason": "logout_token: aud 'x' does not contain our client id",
        },
    ]
    assert '"x1"' not in "\n".join(records.lines)


def test_an_admin_dismissing_a_request_is_audited(demo_server_sqlite: Demo, records: Lines) -> None:
    server, settings = demo_server_sqlite
    assert settings.oidc_issuer
    with _client() as staff, _client() as admin:
        sign_in(staff, server.url, STAFF.sub)
        grid = staff.get(f"{server.url}/")
        asked = staff.post(
            f"{server.url}/requests", data={"name": "Zorgportaal", "csrf_token": csrf_of(grid.text)}
        )
        assert asked.status_code == 303
        sign_in(admin, server.url, ADMIN.sub)
        page = admin.get(f"{server.url}/admin")
        done = admin.post(
            f"{server.url}/admin/requests/dismiss",
            data={"key": "zorgportaal", "csrf_token": csrf_of(page.text)},
        )
        assert done.status_code == 303
    (dismissed,) = _events(records, "app_request_dismissed")
    admin_id = pseudonym(settings.pseudonym_secret(), settings.oidc_issuer, ADMIN.sub)
    assert _fields(dismissed) == {"user": admin_id, "request": "zorgportaal", "people": 1}
    _names_nobody(records.lines, STAFF, ADMIN)


def test_registry_reloads_are_audited_ok_and_refused(tmp_path: Path, records: Lines) -> None:
    path = tmp_path / "apps.yaml"
    good = EXAMPLE_APPS.read_text(encoding="utf-8")
    path.write_text(good, encoding="utf-8")
    holder = RegistryHolder(path)
    assert holder.reload_if_changed()
    path.write_text(good.replace("apps:", "apps:\n  - id: Bad Id\n", 1), encoding="utf-8")
    assert not holder.reload_if_changed()
    ok, refused = _events(records, "registry_reload")
    assert _fields(ok) == {
        "outcome": "ok",
        "path": str(path),
        "apps": len(holder.current.apps),
        "error": None,
    }
    assert refused["outcome"] == "refused" and refused["apps"] is None
    assert refused["error"].startswith(f"{path}:")  # file:line, as admins see it
    json.dumps(refused)  # and it is one JSON object

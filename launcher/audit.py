"""Audit events: who did what to the portal, as structured records on ``launcher.audit``.

Every event has a fixed set of fields (:data:`EVENTS`), documented one by one in
docs/SECURITY.md; a field left out is written as null, so that every record of an event has
the same keys. With ``LAUNCHER_LOG_FORMAT=json`` the fields are top-level keys of the JSON
line (launcher/logs.py); in text they follow the event name as ``key=value``.

The records are pseudonymous: a person appears only as the stored user id (the keyed hash of
issuer and subject, launcher/auth/user.py), never as an e-mail address, a name or the raw
``sub``. :func:`audit` refuses a ``user`` that is not of that form, so a slip such as passing
``user.email`` fails in the tests rather than in someone's logs. A session appears as a hash
of its id (:func:`session_ref`): enough to pair a sign-in with its sign-out, useless as a
cookie.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from launcher.logs import AUDIT_ATTRIBUTE

log = logging.getLogger("launcher.audit")

Value = str | int | bool | None

# event -> its fields, in the order they are written. docs/SECURITY.md explains each.
EVENTS: dict[str, tuple[str, ...]] = {
    # a session was made; user = pseudonym, session = session_ref()
    "sign_in": ("user", "session"),
    # the callback refused a sign-in; error = the error's class, reason = what the page says
    "sign_in_failed": ("error", "reason", "status"),
    # the user signed out with the form
    "sign_out": ("user", "session"),
    # a back-channel logout token; outcome ok|refused, by sid|user, user when by user
    "backchannel_logout": ("outcome", "by", "user", "reason"),
    # a front-channel logout request; user of the session in this browser, if any
    "frontchannel_logout": ("outcome", "user", "reason"),
    # the registry file was (re)loaded; outcome ok|refused, apps when ok, error when refused
    "registry_reload": ("outcome", "path", "apps", "error"),
    # an admin dismissed the requests for one app (POST /admin/requests/dismiss)
    "app_request_dismissed": ("user", "request", "people"),
    # an admin marked the requests for one app as added: app = the registry app id now there
    "app_request_added": ("user", "request", "app", "people"),
    # an editor or admin wrote or deleted an announcement; groups = its audience, comma list
    "announcement_written": ("user", "announcement", "groups"),
    "announcement_deleted": ("user", "announcement"),
    # a `launcher import-signins` run; outcome ok|refused, error names file, record and field
    "signins_imported": (
        "format",
        "files",
        "read",
        "new",
        "known",
        "skipped",
        "unregistered",
        "dry_run",
        "outcome",
        "error",
    ),
}
MAX_TEXT = 500  # characters: a value an attacker shapes (a token's kid) cannot flood the log
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
_PLAIN = re.compile(r"[A-Za-z0-9._:/@+-]+")


def session_ref(sid: str) -> str:
    """A stable reference to a session in the logs that cannot be turned back into a cookie."""
    return hashlib.sha256(f"audit:{sid}".encode()).hexdigest()[:16]


def audit(event: str, **fields: Value) -> None:
    """Write one audit record. Unknown events or fields and a non-pseudonymous ``user`` are
    programming errors: ValueError."""
    names = EVENTS.get(event)
    if names is None:
        raise ValueError(f"unknown audit event {event!r}")
    unknown = set(fields) - set(names)
    if unknown:
        raise ValueError(f"audit event {event!r} has no field(s) {', '.join(sorted(unknown))}")
    user = fields.get("user")
    if user is not None and not (isinstance(user, str) and _PSEUDONYM.fullmatch(user)):
        raise ValueError(f"audit event {event!r}: user must be a pseudonym (32 hex digits)")
    record: dict[str, Value] = {"event": event}
    for name in names:
        value = fields.get(name)
        if value is not None and not isinstance(value, str | int | bool):
            raise ValueError(f"audit field {name!r} must be text, a number or a flag")
        record[name] = value[:MAX_TEXT] if isinstance(value, str) else value
    text = " ".join(f"{name}={_text(record[name])}" for name in names)
    log.info("%s %s", event, text, extra={AUDIT_ATTRIBUTE: record})


def _text(value: Value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        return value
    # quoted, with newlines escaped: a value cannot start a line of its own in a text log
    return json.dumps(value, ensure_ascii=False)

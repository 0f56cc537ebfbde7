"""Okta: System Log ``LogEvent`` objects (``GET /api/v1/logs``).

Fields read: ``uuid``, ``published``, ``eventType`` (``user.authentication.sso`` is a sign-in to
an app; other types are not), ``actor.id``, the ``target`` of type ``AppInstance`` (``id``,
``displayName``) and ``outcome.result`` (``SUCCESS`` counts).
"""

from __future__ import annotations

from typing import Any

from launcher.signins.record import (
    FAILED,
    OTHER_EVENT,
    FieldError,
    Record,
    need,
    text,
    timestamp,
)

NAME = "okta"
TIME_FIELD = "published"  # named when its value is out of range (importer.py)
SSO = "user.authentication.sso"


def parse(obj: Any) -> Record:
    if not isinstance(obj, dict):
        raise FieldError("record", "is not a JSON object")
    record_id = text(obj, "uuid")
    ts = timestamp(obj, "published")
    if text(obj, "eventType") != SSO:
        return Record(record_id, ts, OTHER_EVENT)
    if text(obj, "outcome.result") != "SUCCESS":
        return Record(record_id, ts, FAILED)
    targets = need(obj, "target")
    if not isinstance(targets, list):
        raise FieldError("target", "is not a list")
    apps = [t for t in targets if isinstance(t, dict) and t.get("type") == "AppInstance"]
    if not apps:
        raise FieldError("target", "has no entry of type AppInstance")
    return Record(
        record_id,
        ts,
        None,
        user=text(obj, "actor.id"),
        app=text(apps[0], "id"),
        app_name=text(apps[0], "displayName", empty=True),
    )

"""Keycloak: the admin API's event list (``GET /admin/realms/{realm}/events``).

Fields read: ``id`` (when present; older versions have none), ``time`` (milliseconds since the
epoch, UTC), ``type`` (``LOGIN`` counts; ``LOGIN_ERROR`` is a failed sign-in; every other type,
token refreshes and code exchanges included, is not a sign-in), ``clientId``, ``userId``.
Keycloak's events carry no display name of the client: the client id stands in for it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from launcher.signins.record import FAILED, OTHER_EVENT, FieldError, Record, need, text

NAME = "keycloak"
TIME_FIELD = "time"  # named when its value is out of range (importer.py)
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def parse(obj: Any) -> Record:
    if not isinstance(obj, dict):
        raise FieldError("record", "is not a JSON object")
    record_id = text(obj, "id") if obj.get("id") is not None else None
    ms = need(obj, "time")
    if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= MAX_MS:
        raise FieldError("time", "is not a time in milliseconds since 1970")
    ts = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    kind = text(obj, "type")
    if kind != "LOGIN":
        return Record(record_id, ts, FAILED if kind == "LOGIN_ERROR" else OTHER_EVENT)
    client = text(obj, "clientId")
    return Record(record_id, ts, None, user=text(obj, "userId"), app=client, app_name=client)

"""Microsoft Entra ID: Microsoft Graph ``signIn`` objects (``GET /auditLogs/signIns``).

Fields read: ``id``, ``createdDateTime``, ``userId``, ``appId``, ``appDisplayName``,
``status.errorCode`` (0 = success) and ``isInteractive`` (only interactive sign-ins count:
token refreshes and background sign-ins happen whether or not a person opened the app).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from launcher.signins.record import (
    FAILED,
    NON_INTERACTIVE,
    FieldError,
    Record,
    need,
    text,
    timestamp,
)

NAME = "entra"
TIME_FIELD = "createdDateTime"  # named when its value is out of range (importer.py)


def parse(obj: Any) -> Record:
    """The record, or FieldError naming the first field that is missing or wrong."""
    # The common case without the checks' function calls (a third of an import's time);
    # anything unusual takes the careful path below, which names the field.
    try:
        record_id, created = obj["id"], obj["createdDateTime"]
        code, interactive = obj["status"]["errorCode"], obj["isInteractive"]
        user, app, name = obj["userId"], obj["appId"], obj["appDisplayName"]
        if (
            type(record_id) is str
            and record_id
            and type(created) is str
            and (created.endswith("Z") or created.endswith("+00:00"))
            and type(code) is int
            and type(interactive) is bool
            and type(user) is str
            and user
            and type(app) is str
            and app
            and type(name) is str
        ):
            ts = dt.datetime.fromisoformat(created)
            if ts.tzinfo is not None:
                ts = ts.astimezone(dt.UTC)
                if code != 0:
                    return Record(record_id, ts, FAILED)
                if not interactive:
                    return Record(record_id, ts, NON_INTERACTIVE)
                return Record(record_id, ts, None, user=user, app=app, app_name=name)
    except (KeyError, TypeError, ValueError):
        pass
    return _careful(obj)


def _careful(obj: Any) -> Record:
    if not isinstance(obj, dict):
        raise FieldError("record", "is not a JSON object")
    record_id = text(obj, "id")
    ts = timestamp(obj, "createdDateTime")
    code = need(obj, "status.errorCode")
    if isinstance(code, bool) or not isinstance(code, int):
        raise FieldError("status.errorCode", "is not a number")
    interactive = need(obj, "isInteractive")
    if not isinstance(interactive, bool):
        raise FieldError("isInteractive", "is not true or false")
    if code != 0:
        return Record(record_id, ts, FAILED)
    if not interactive:
        return Record(record_id, ts, NON_INTERACTIVE)
    return Record(
        record_id,
        ts,
        None,
        user=text(obj, "userId"),
        app=text(obj, "appId"),
        app_name=text(obj, "appDisplayName", empty=True),
    )

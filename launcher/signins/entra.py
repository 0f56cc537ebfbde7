"""Microsoft Entra ID: Microsoft Graph ``signIn`` objects (``GET /auditLogs/signIns``).

Fields read: ``id``, ``createdDateTime``, ``userId``, ``appId``, ``appDisplayName``,
``status.errorCode`` (0 = success) and ``isInteractive`` (only interactive sign-ins count:
token refreshes and background sign-ins happen whether or not a person opened the app).
"""

from __future__ import annotations

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


def parse(obj: Any) -> Record:
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

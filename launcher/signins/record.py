"""The common form of one sign-in record, whatever the provider, and the error of a bad one."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from launcher.errors import LauncherError

# Why a record does not count; the summary counts skipped records by these.
FAILED = "failed"
NON_INTERACTIVE = "non-interactive"
OTHER_EVENT = "other event"
PAST_RETENTION = "older than the retention"  # its month's people are counts only by now


class Record(NamedTuple):
    """One sign-in as a format module reads it. ``user`` is the provider's raw user id: the
    importer pseudonymises it at once and it goes nowhere else (no log, no error message).
    A named tuple, immutable as the frozen dataclass it was, and made at C speed: one is
    made per record read, and a frozen dataclass's ``__init__`` cost a tenth of the reading
    thread's time (bench/README.md, 2026-12-02)."""

    record_id: str | None  # None: the provider gave none (Keycloak events of older versions)
    ts: dt.datetime  # UTC
    skip: str | None  # None: a successful interactive sign-in, which counts; else the reason
    user: str = ""
    app: str = ""  # the provider's id of the app
    app_name: str = ""  # the provider's display name of the app


# The years a sign-in log can hold: the first sign-in counted is from this day on, the last at
# most a day after the import (a provider's clock ahead of ours). A record outside refuses its
# file: a date in year 1 or 9999 is a broken export, and would stretch the rollups over
# thousands of empty months (launcher/signins/rollups.py).
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
AHEAD = dt.timedelta(days=1)


class FieldError(ValueError):
    """A record the format module cannot read: the field and what is wrong (never its value
    when the value could name a person)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ImportRefused(LauncherError):
    """A file refused whole: the message names the file, the record number and the field."""

    status = 400
    title = "Import refused"


# --- field readers the format modules share ------------------------------------------------
def need(obj: Any, path: str) -> Any:
    """The value at a dotted ``path`` of a record; FieldError when a part is missing or null."""
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            raise FieldError(path, "missing" if value is None else "is not an object")
        value = value.get(part)
        if value is None:
            raise FieldError(path, "missing")
    return value


def text(obj: Any, path: str, *, empty: bool = False) -> str:
    value = need(obj, path)
    if not isinstance(value, str):
        raise FieldError(path, "is not a string")
    if not empty and not value.strip():
        raise FieldError(path, "is empty")
    return value


def timestamp(obj: Any, path: str) -> dt.datetime:
    """An ISO 8601 timestamp with a zone, in UTC. A time without a zone is refused: guessing
    one would shift every sign-in against the launches it is joined with."""
    value = text(obj, path)
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(path, f"is not an ISO 8601 timestamp: {value[:40]!r}") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise FieldError(path, f"has no time zone (expected e.g. 'Z' or '+01:00'): {value!r}")
    return ts.astimezone(dt.UTC)

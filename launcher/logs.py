"""Logging: one configuration for the command line, uvicorn and the event writer.

``LAUNCHER_LOG_FORMAT=text`` (the default) writes ``time level logger [request id]: message``
lines; ``json`` writes one JSON object per line -- ``time``, ``level``, ``logger``,
``message``, ``request_id`` (null outside a request), ``exception`` when there is one, and
the fields of an audit event (launcher/audit.py) as top-level keys -- for log shippers that
would otherwise have to parse multi-line text. :func:`dict_config` is handed to uvicorn as its
``log_config``, so uvicorn's own loggers (and each worker process it spawns) use the same
handler and format instead of uvicorn's defaults.

The formatter is our own (about 30 lines over the standard library) rather than
python-json-logger: see docs/DECISIONS.md, "Dependencies".
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from launcher import request_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"
AUDIT_ATTRIBUTE = "audit"  # the LogRecord attribute that carries an audit event's fields
# keys of every JSON line; audit fields may not reuse them (launcher/audit.py checks)
RESERVED = frozenset({"time", "level", "logger", "message", "request_id", "exception", "stack"})


class LogFormatter(logging.Formatter):
    """Text or JSON lines, each with the id of the request in hand (launcher/request_id.py)."""

    def __init__(self, json: bool = False) -> None:
        super().__init__(TEXT_FORMAT)
        self.json = json

    def format(self, record: logging.LogRecord) -> str:
        rid = request_id.current()
        if self.json:
            return self._json(record, rid)
        record.request_tag = f" [{rid}]" if rid else ""
        return super().format(record)

    def _json(self, record: logging.LogRecord, rid: str | None) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": rid,
        }
        fields = getattr(record, AUDIT_ATTRIBUTE, None)
        if isinstance(fields, dict):
            line.update((k, v) for k, v in fields.items() if k not in RESERVED)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines and control characters: one record is always one line
        return json.dumps(line, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


def dict_config(log_format: str = "text") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` dict: the root logger to stderr in ``log_format``."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {log_format!r}")
    # uvicorn's loggers lose the handlers its default configuration gives them and pass their
    # records to the root handler, in our format. (Its access logger, when access_log is
    # off, is switched off by uvicorn after this configuration.)
    passthrough = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"launcher": {"()": LogFormatter, "json": log_format == "json"}},
        "handlers": {"stderr": {"()": StderrHandler, "formatter": "launcher"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": passthrough,
            "uvicorn.error": passthrough,
            "uvicorn.access": passthrough,
            "alembic": {"level": "WARNING"},  # one line per migration is noise
        },
    }


def configure(log_format: str = "text") -> None:
    """Configure logging for this process (replacing any earlier configuration)."""
    logging.config.dictConfig(dict_config(log_format))


def configure_from_environment() -> None:
    """:func:`configure` with ``LAUNCHER_LOG_FORMAT`` (the environment or ``.env``).

    Invalid settings fall back to text: the command that needs them reports them itself.
    """
    configure(_wanted_format())


def _wanted_format() -> str:
    # The environment wins over .env (as in Settings). Reading it directly keeps the event
    # writer's start-up short: building Settings costs a quarter of a second.
    value = os.environ.get("LAUNCHER_LOG_FORMAT")
    if value is None and Path(".env").is_file():
        from launcher.errors import LauncherError
        from launcher.settings import load_settings

        try:
            return load_settings().log_format
        except LauncherError:
            return "text"
    return value if value in ("text", "json") else "text"

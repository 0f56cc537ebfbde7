"""LAUNCHER_LOG_FORMAT and request ids: launcher/logs.py and launcher/request_id.py."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from launcher import cli, logs, request_id
from launcher.app import create_app
from launcher.demo.devidp import DEMO_USERS
from launcher.errors import ConfigError
from launcher.serve import uvicorn_options
from launcher.settings import Settings, load_settings
from tests.conftest import EXAMPLE_APPS, LiveServer, sign_in

STAFF = next(u for u in DEMO_USERS if u.groups == ("staff",))
OUR_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "launcher.audit")


class Lines(logging.Handler):
    """Keeps each record as the formatter of LAUNCHER_LOG_FORMAT writes it."""

    def __init__(self, json_format: bool = True) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logs.LogFormatter(json=json_format))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def lines() -> Iterator[Lines]:
    """JSON lines of every record at INFO and above, from any logger, in any thread."""
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For tests that call logs.configure(): put the loggers back as they were."""
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate, lg.disabled)
        for name in OUR_LOGGERS
        for lg in [logging.getLogger(name)]
    }
    try:
        yield
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            lg = logging.getLogger(name)
            for handler in list(lg.handlers):
                if handler not in handlers:
                    lg.removeHandler(handler)
            for handler in handlers:
                if handler not in lg.handlers:
                    lg.addHandler(handler)
            lg.setLevel(level)
            lg.propagate, lg.disabled = propagate, disabled


def _record(**overrides: Any) -> logging.LogRecord:
    record = logging.LogRecord("launcher.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    record.__dict__.update(overrides)
    return record


# --- the formatter ------------------------------------------------------------------------
def test_json_line_has_time_level_logger_message_and_request_id() -> None:
    line = logs.LogFormatter(json=True).format(_record())
    assert "\n" not in line
    data = json.loads(line)
    assert data.keys() == {"time", "level", "logger", "message", "request_id"}
    assert data["level"] == "WARNING" and data["logger"] == "launcher.x"
    assert data["message"] == "a b" and data["request_id"] is None
    assert data["time"].endswith("+00:00") and "T" in data["time"]


def test_json_line_is_one_line_with_an_exception_and_a_newline_in_the_message() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = _record(msg="first\nsecond", args=(), exc_info=exc_info)
    line = logs.LogFormatter(json=True).format(record)
    assert line.count("\n") == 0
    data = json.loads(line)
    assert data["message"] == "first\nsecond"
    assert "RuntimeError: boom" in data["exception"]


def test_audit_fields_become_top_level_keys_but_never_replace_the_standard_ones() -> None:
    record = _record(audit={"event": "sign_in", "user": "u", "message": "forged", "level": "x"})
    data = json.loads(logs.LogFormatter(json=True).format(record))
    assert data["event"] == "sign_in" and data["user"] == "u"
    assert data["message"] == "a b" and data["level"] == "WARNING"


def test_text_lines_carry_the_request_id_when_there_is_one() -> None:
    formatter = logs.LogFormatter()
    assert ": a b" in formatter.format(_record()) and "[" not in formatter.format(_record())

    async def inside() -> str:
        line = ""

        async def app(scope: Any, receive: Any, send: Any) -> None:
            nonlocal line
            line = formatter.format(_record())

        await request_id.RequestId(app)(
            {"type": "http", "headers": [(b"x-request-id", b"req-1")]}, _nothing, _nothing
        )
        return line

    assert "WARNING launcher.x [req-1]: a b" in asyncio.run(inside())


async def _nothing(*args: Any) -> Any:
    return None


def test_dict_config_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="'xml'"):
        logs.dict_config("xml")


def test_the_setting_accepts_text_and_json_only() -> None:
    assert Settings().log_format == "text"
    assert load_settings(log_format="json").log_format == "json"
    with pytest.raises(ConfigError, match="LAUNCHER_LOG_FORMAT"):
        load_settings(log_format="xml")


# --- configuration: the CLI and uvicorn ---------------------------------------------------
def test_the_cli_writes_json_lines_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    monkeypatch.setenv("LAUNCHER_LOG_FORMAT", "json")
    assert cli.main(["check-config", str(EXAMPLE_APPS)]) == 0
    logging.getLogger("launcher.test").info("after main")
    lines = [line for line in capsys.readouterr().err.splitlines() if "after main" in line]
    assert [json.loads(line)["logger"] for line in lines] == ["launcher.test"]


@pytest.mark.parametrize(
    ("env", "dotenv", "expected"),
    [
        pytest.param(None, None, "text", id="default"),
        pytest.param("json", None, "json", id="environment"),
        pytest.param(None, "LAUNCHER_LOG_FORMAT=json\n", "json", id=".env"),
        pytest.param("text", "LAUNCHER_LOG_FORMAT=json\n", "text", id="environment over .env"),
        pytest.param("xml", None, "text", id="invalid: text, the command reports it"),
    ],
)
def test_configure_from_environment_reads_the_setting(
    env: str | None,
    dotenv: str | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    if env is not None:
        monkeypatch.setenv("LAUNCHER_LOG_FORMAT", env)
    if dotenv is not None:
        Path(".env").write_text(dotenv, encoding="utf-8")  # the test runs in tmp_path
    logs.configure_from_environment()
    logging.getLogger("launcher.test").warning("which format")
    line = capsys.readouterr().err.strip()
    assert line.startswith("{") == (expected == "json"), line


def test_uvicorn_logs_through_our_handler_in_our_format(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    options = uvicorn_options("127.0.0.1", 8000, log_format="json")
    uvicorn.Config(_nothing, **options)  # applies log_config, as each worker process does
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # once: uvicorn's own handler is gone
    data = json.loads(err[0])
    assert data["logger"] == "uvicorn.error" and data["message"] == "Started server process [1]"
    assert logging.getLogger("uvicorn.access").propagate is False  # access log stays off


def test_serve_and_the_benchmark_baseline_get_text_by_default() -> None:
    config = uvicorn_options("127.0.0.1", 8000)["log_config"]
    assert config["formatters"]["launcher"]["json"] is False


# --- request ids --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"abc\ndef", id="newline"),
        pytest.param(b"abc\r\nX-Forged: 1", id="header injection"),
        pytest.param(b"a" * 10_000, id="10 KB"),
        pytest.param(b"a" * 65, id="65 characters"),
        pytest.param(b"", id="empty"),
        pytest.param("caf\u00e9".encode(), id="non-ASCII"),
        pytest.param(b"a b", id="space"),
        pytest.param(b'"}{"level":"x', id="JSON breakout"),
    ],
)
def test_a_hostile_request_id_is_replaced(sent: bytes) -> None:
    got = request_id.from_headers([(b"x-request-id", sent)])
    assert got != sent.decode("latin-1")
    assert len(got) == 32 and all(c in "0123456789abcdef" for c in got)


def test_a_well_formed_request_id_is_kept() -> None:
    assert request_id.from_headers([(b"x-request-id", b"a" * 64)]) == "a" * 64
    assert request_id.from_headers([(b"x-request-id", b"f0a9.B_c-1")]) == "f0a9.B_c-1"
    fresh = {request_id.from_headers([]) for _ in range(3)}
    assert len(fresh) == 3


async def _crash(request: Request) -> Response:
    logging.getLogger("launcher.test").warning("about to crash")
    raise RuntimeError("crash for the test")


def _call(app: Any, path: str, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            return await c.get(path, headers=headers)

    return asyncio.run(go())


def test_every_response_and_log_line_of_a_request_carries_its_id(
    make_settings: Callable[..., Settings], sqlite_url: str, lines: Lines
) -> None:
    app = create_app(
        make_settings(database_url=sqlite_url), extra_routes=[Route("/_test/crash", _crash)]
    )
    calls = {
        "routed": ("/healthz", "from-proxy-1", 200),
        "error page": ("/auth/callback?state=x&code=y", "from-proxy-2", 400),
        "500 page": ("/_test/crash", "from-proxy-3", 500),
        "hostile id": ("/healthz", "x" * 10_000, 200),
    }
    for what, (path, sent, status) in calls.items():
        response = _call(app, path, {"X-Request-ID": sent})
        assert response.status_code == status, what
        if what == "hostile id":
            assert len(response.headers["x-request-id"]) == 32
            assert "x" * 100 not in " ".join(lines.lines)
        else:
            assert response.headers["x-request-id"] == sent, what
    records = lines.objects()
    # the failed sign-in: its audit record and the error page's warning
    assert {
        (r["logger"], r.get("event")) for r in records if r["request_id"] == "from-proxy-2"
    } >= {
        ("launcher.audit", "sign_in_failed"),
        ("launcher.views", None),
    }
    crash = [r for r in records if r["request_id"] == "from-proxy-3"]
    assert [r["message"] for r in crash][0] == "about to crash"
    assert any("crash for the test" in r.get("exception", "") for r in crash)
    # every line of ours here was written inside a request (httpx logs the client's side)
    assert all(r["request_id"] for r in records if r["logger"].startswith("launcher"))
    assert request_id.current() is None  # and the id does not outlive it


def test_the_fast_launch_carries_a_request_id_too(demo_server_sqlite: Any, lines: Lines) -> None:
    server, _ = demo_server_sqlite
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        sign_in(client, server.url, STAFF.sub)
        fast = client.get(f"{server.url}/launch/teams", headers={"X-Request-ID": "launch-1"})
        other = client.get(f"{server.url}/launch/teams")
        missing = client.get(f"{server.url}/launch/nope", headers={"X-Request-ID": "nope-1"})
    assert fast.status_code == 303 and fast.headers["x-request-id"] == "launch-1"
    assert len(other.headers["x-request-id"]) == 32
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "nope-1"
    assert fast.headers.get_list("x-request-id") == ["launch-1"]  # once


def test_a_request_that_bypasses_the_middleware_logs_no_id(lines: Lines) -> None:
    logging.getLogger("launcher.test").warning("outside any request")
    assert lines.objects()[-1]["request_id"] is None


def test_the_demo_server_logs_json_with_request_ids_over_real_http(
    tmp_path: Any, sqlite_url: str, lines: Lines
) -> None:
    from launcher.demo.command import build_demo_app, demo_settings
    from tests.conftest import free_port

    port = free_port()
    settings = demo_settings(
        "127.0.0.1",
        port,
        var=tmp_path / "var",
        database_url=sqlite_url,
        apps_file=EXAMPLE_APPS,
        spool_dir=tmp_path / "spool",
    )
    with (
        LiveServer(build_demo_app(settings, var=tmp_path / "var"), port) as server,
        httpx.Client(timeout=10) as client,
    ):
        first = client.get(f"{server.url}/auth/callback?state=a", headers={"X-Request-ID": "one"})
        second = client.get(f"{server.url}/auth/callback?state=b", headers={"X-Request-ID": "two"})
    assert (first.headers["x-request-id"], second.headers["x-request-id"]) == ("one", "two")
    failed = [r for r in lines.objects() if r.get("event") == "sign_in_failed"]
    assert [r["request_id"] for r in failed] == ["one", "two"]

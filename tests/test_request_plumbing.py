"""Small things of the request path: one session decode per request, ``Allow`` on a 405, and
background tasks finished before the engine is disposed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from launcher import app as app_module
from launcher import db
from launcher.auth.session import Session
from launcher.settings import Settings
from tests.helpers import InProcess


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/", "/reports", "/admin", "/no-such-page"])
async def test_the_session_cookie_is_checked_once_per_request(
    make_settings: Callable[..., Settings], sqlite_url: str, path: str
) -> None:
    portal = InProcess(make_settings(database_url=sqlite_url))
    codec = portal.context.sessions
    calls: list[str | None] = []
    real_loads = codec.loads

    def counting_loads(cookie: str | None, now: float | None = None) -> Session | None:
        calls.append(cookie)
        return real_loads(cookie, now)

    codec.loads = counting_loads  # type: ignore[method-assign]
    async with portal.aclient() as client:
        portal.sign_in(client, portal.session(groups=("launcher-reviewers", "launcher-admins")))
        resp = await client.get(path)
    assert resp.status_code in (200, 404), resp.text[:300]
    assert "Alice" in resp.text  # the page knew who was signed in
    assert len(calls) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("POST", "/", {"GET", "HEAD"}, id="POST /"),
        pytest.param("GET", "/logout", {"POST"}, id="GET /logout"),
        pytest.param("DELETE", "/launch/teams", {"GET", "HEAD"}, id="DELETE /launch"),
    ],
)
async def test_405_keeps_the_allow_header(
    make_settings: Callable[..., Settings],
    sqlite_url: str,
    method: str,
    path: str,
    allowed: set[str],
) -> None:
    portal = InProcess(make_settings(database_url=sqlite_url))
    async with portal.aclient() as client:
        resp = await client.request(method, path, headers={"Origin": portal.settings.base_url})
    assert resp.status_code == 405
    assert {m.strip() for m in resp.headers["allow"].split(",")} == allowed


@pytest.mark.anyio
async def test_background_tasks_end_before_the_engine_is_disposed(
    make_settings: Callable[..., Settings], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry watcher reloads in a worker thread; a shutdown that cancels it mid-reload
    must wait for that thread before disposing of the engine it may be using."""
    monkeypatch.setattr(app_module, "REGISTRY_POLL", 0.01)
    portal = InProcess(make_settings(database_url=sqlite_url))
    p = portal.context
    order: list[str] = []
    in_thread = threading.Event()
    release = threading.Event()
    real_reload, real_dispose = p.registry.reload_if_changed, p.engine.dispose

    def slow_reload() -> bool:
        if threading.current_thread() is threading.main_thread():
            return real_reload()  # the lifespan's own first load
        in_thread.set()
        release.wait(timeout=1.0)  # the fixed shutdown waits this out; the old one did not
        order.append("reload finished")
        return False

    def dispose(*args: Any, **kwargs: Any) -> None:
        order.append("engine disposed")
        release.set()
        real_dispose(*args, **kwargs)

    async def nothing() -> None:
        return None

    # the event store (its writer process) is not what this is about, and stopping it takes
    # long enough to hide the race
    monkeypatch.setattr(p.events, "start", lambda: None)
    monkeypatch.setattr(p.events, "close", nothing)
    monkeypatch.setattr(p.registry, "reload_if_changed", slow_reload)
    monkeypatch.setattr(p.engine, "dispose", dispose)
    async with portal.lifespan():
        while not in_thread.is_set():
            await asyncio.sleep(0.01)
    assert order == ["reload finished", "engine disposed"]
    assert all(task.done() for task in p.background)


@pytest.mark.anyio
async def test_a_worker_runs_as_many_threads_at_once_as_its_pool_has_connections(
    make_settings: Callable[..., Settings], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """anyio's default of 40 threads let 32 pages in flight queue for 8 connections inside
    their threads: three times the CPU per page (bench/README.md, bench_grid.py)."""
    portal = InProcess(make_settings(database_url=sqlite_url))
    p = portal.context

    async def nothing() -> None:
        return None

    monkeypatch.setattr(p.events, "start", lambda: None)  # no writer process for this
    monkeypatch.setattr(p.events, "close", nothing)
    limiter = anyio.to_thread.current_default_thread_limiter()
    assert limiter.total_tokens == 40  # anyio's
    async with portal.lifespan():
        assert limiter.total_tokens == db.WORKER_DB_THREADS

"""The launch redirect (launcher/views/launch.py): one access rule for both paths, and a HEAD
that is answered like a GET but counts nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from launcher.app import create_app
from launcher.auth.session import Session
from launcher.auth.user import User
from launcher.context import Context
from launcher.settings import Settings
from launcher.views.launch import Grant, Refusal, decide, source_of

STAFF = User(
    user_id="p-staff", sub="staff-1", name="Sanne", department="nursing", groups=("staff",)
)


@pytest.fixture
def portal(make_settings: Callable[..., Settings]) -> tuple[Starlette, Context]:
    """The portal without its lifespan: the event store buffers and nothing is ever flushed,
    so ``pending`` counts exactly the launches recorded."""
    app = create_app(make_settings())
    context: Context = app.state.context
    context.registry.reload_if_changed()
    return app, context


def _launches(p: Context) -> tuple[int, float]:
    """Launches recorded: in the event store's buffer, and on the Prometheus counter."""
    counted = p.metrics.registry.get_sample_value("launcher_launches_total", {"app": "teams"})
    return p.events.pending, counted or 0.0


def _cookie(p: Context, session: Session) -> dict[str, str]:
    return {"cookie": f"{p.settings.session_cookie}={p.sessions.dumps(session)}"}


async def _send(app: Starlette, method: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        return await client.request(method, "/launch/teams", headers=headers)


def test_decide_holds_the_access_rule(portal: tuple[Starlette, Context]) -> None:
    _, p = portal
    session = p.sessions.new(STAFF, op_sid=None)
    assert decide(p, None, "teams", b"") is Refusal.SIGN_IN
    assert decide(p, session, "ehr", b"") is Refusal.NOT_FOUND  # clinicians only
    assert decide(p, session, "no-such-app", b"") is Refusal.NOT_FOUND
    assert decide(p, session, "teams", b"prefetch;prerender") is Refusal.PREFETCH
    grant = decide(p, session, "teams", b"")
    assert isinstance(grant, Grant) and grant.app.id == "teams"
    assert grant.target.startswith(b"https://teams.microsoft.com/")
    assert _launches(p) == (0, 0)  # deciding records nothing


@pytest.mark.parametrize("stale", [False, True], ids=["fresh session", "cookie to re-issue"])
def test_head_is_answered_like_get_and_records_nothing(
    portal: tuple[Starlette, Context], stale: bool
) -> None:
    """A HEAD (a link checker, a preview) sends nobody to the app: the same 303 and headers
    as a GET, but no launch row and no count."""
    app, p = portal
    session = p.sessions.new(STAFF, op_sid=None)
    if stale:
        session = dataclasses.replace(session, seen=int(time.time()) - 120)
    head = asyncio.run(_send(app, "HEAD", _cookie(p, session)))
    assert head.status_code == 303
    assert head.headers["location"].startswith("https://teams.microsoft.com/")
    assert ("set-cookie" in head.headers) == stale
    assert _launches(p) == (0, 0)

    get = asyncio.run(_send(app, "GET", _cookie(p, session)))
    assert _launches(p) == (1, 1)
    ignored = {"date", "set-cookie", "x-request-id"}  # per response
    assert {k: v for k, v in head.headers.items() if k not in ignored} == {
        k: v for k, v in get.headers.items() if k not in ignored
    }


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_refusals_are_answered_alike_for_head_and_get(
    portal: tuple[Starlette, Context], method: str
) -> None:
    app, p = portal
    session = p.sessions.new(STAFF, op_sid=None)
    anonymous = asyncio.run(_send(app, method, {}))
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/launch/teams"
    prefetch = asyncio.run(_send(app, method, _cookie(p, session) | {"sec-purpose": "prefetch"}))
    assert prefetch.status_code == 503 and prefetch.headers["cache-control"] == "no-store"
    assert _launches(p) == (0, 0)


@pytest.mark.parametrize(
    ("fetch_site", "query", "source"),
    [
        pytest.param(b"same-origin", b"", "portal", id="a tile"),
        pytest.param(b"same-origin", b"source=search", "search", id="search"),
        pytest.param(b"same-origin", b"x=1&source=favourite", "favourite", id="favourite"),
        pytest.param(b"same-origin", b"source=recent", "recent", id="recent"),
        pytest.param(b"cross-site", b"source=digest", "digest", id="digest from a mail"),
        pytest.param(b"none", b"source=digest", "digest", id="digest typed in"),
        pytest.param(b"cross-site", b"source=search", "direct", id="search from outside"),
        pytest.param(b"same-origin", b"source=admin", "portal", id="unknown value"),
        pytest.param(b"none", b"", "direct", id="a bookmark"),
        pytest.param(b"same-origin", b"source=" + b"x" * 100, "portal", id="long value"),
    ],
)
def test_source_of_a_launch(fetch_site: bytes, query: bytes, source: str) -> None:
    assert source_of(fetch_site, query) == source


@pytest.mark.parametrize("stale", [False, True], ids=["fast path", "routed endpoint"])
def test_a_digest_link_is_recorded_with_its_source(
    portal: tuple[Starlette, Context], stale: bool
) -> None:
    """Both paths read ``?source=`` (a session to re-issue goes the routed way)."""
    app, p = portal
    session = p.sessions.new(STAFF, op_sid=None)
    if stale:
        session = dataclasses.replace(session, seen=int(time.time()) - 120)

    async def launch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            return await client.get(
                "/launch/teams?source=digest",
                headers=_cookie(p, session) | {"sec-fetch-site": "cross-site"},
            )

    assert asyncio.run(launch()).status_code == 303
    assert [row[-1] for row in p.events._launches] == ["digest"]

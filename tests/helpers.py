"""What the tests share besides fixtures: waits, the demo users, live and in-process portals.

The development provider (``launcher.demo.devidp``) and the event store
(``launcher.events``) are imported here and nowhere else in the
tests this file serves, so that a move of either package is one edit.
"""

from __future__ import annotations

import contextlib
import html
import re
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import BaseRoute, Mount

from launcher.app import create_app
from launcher.auth.session import Session, SessionCodec
from launcher.auth.user import User, pseudonym
from launcher.context import Context
from launcher.demo.command import demo_settings
from launcher.demo.devidp import DEMO_USERS, DemoUser, DevClient, create_devidp
from launcher.events import BatchWriter, EventStore, Launch, SignIn
from launcher.settings import Settings

with warnings.catch_warnings():
    # Starlette >= 1.x prefers the "httpx2" fork and warns at import; httpx works as before.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = [
    "ADMIN",
    "BASE",
    "CLINICIAN",
    "DEMO_USERS",
    "EXAMPLE_APPS",
    "REVIEWER",
    "ROOT",
    "SECRET",
    "STAFF",
    "BatchWriter",
    "DemoUser",
    "DevClient",
    "EventStore",
    "InProcess",
    "Live",
    "Launch",
    "LiveServer",
    "SignIn",
    "TestClient",
    "bare_portal",
    "create_devidp",
    "demo_settings",
    "dev_client",
    "free_port",
    "in_process",
    "live_demo",
    "make_user",
    "devidp_of",
    "demo_app",
    "pick_user",
    "port_open",
    "post",
    "sign_in",
    "wait_for_port",
    "wait_until",
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_APPS = ROOT / "config" / "apps.yaml"
SECRET = "test-secret-key-that-is-long-enough-0123456789"

STAFF = next(u for u in DEMO_USERS if u.groups == ("staff",))
CLINICIAN = next(u for u in DEMO_USERS if "clinicians" in u.groups)
REVIEWER = next(u for u in DEMO_USERS if "launcher-reviewers" in u.groups)
ADMIN = next(u for u in DEMO_USERS if "launcher-admins" in u.groups)


# --- waits --------------------------------------------------------------------------------
def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, every: float = 0.05) -> bool:
    """True as soon as ``predicate()`` is; False when it still is not after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> bool:
    """True once something accepts connections on ``host:port``."""
    return wait_until(lambda: port_open(port, host), timeout)


# --- live servers: where the wire is the point --------------------------------------------
class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        started = wait_until(lambda: self.server.started or not self.thread.is_alive(), 15)
        if not started or not self.thread.is_alive():
            raise RuntimeError("live server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def dev_client(settings: Settings) -> DevClient:
    """The portal as a client of the development provider (as ``launcher demo`` registers it)."""
    assert settings.oidc_client_id and settings.oidc_client_secret
    return DevClient(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value(),
        redirect_uris=(settings.redirect_uri,),
        post_logout_redirect_uris=(f"{settings.base_url}/signed-out",),
    )


def demo_app(
    settings: Settings,
    *,
    users: Sequence[DemoUser] = DEMO_USERS,
    extra_routes: Sequence[BaseRoute] = (),
    key_file: Path | None = None,
    migrate: bool = True,
) -> Starlette:
    """The portal with the development provider at /_devidp, like ``launcher demo``, but with
    the event writer in a thread: only the writer's own tests need its process."""
    assert settings.oidc_issuer
    idp = create_devidp(
        settings.oidc_issuer, [dev_client(settings)], users=users, key_file=key_file
    )
    return create_app(
        settings,
        extra_routes=[Mount("/_devidp", app=idp), *extra_routes],
        migrate=migrate,
        writer="thread",
    )


def devidp_of(app: Starlette) -> Any:
    """The development provider mounted in ``app`` (its state: keys, tokens, users)."""
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/_devidp")
    return mount.app.state.devidp  # type: ignore[attr-defined]


def sign_in(client: httpx.Client, base: str, user_sub: str, next_path: str = "/") -> httpx.Response:
    """Walk the whole authorization code flow through the development provider's page."""
    resp = client.get(f"{base}/login", params={"next": next_path})
    assert resp.status_code in (302, 303), resp.text
    return pick_user(client, resp.headers["location"], user_sub)


def pick_user(client: httpx.Client, authorize_url: str, user_sub: str) -> httpx.Response:
    """At the development provider's page, choose ``user_sub``; follow back to the portal."""
    authorize = client.get(authorize_url)
    assert authorize.status_code == 200, authorize.text
    fields = dict(
        re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', authorize.text)
    )
    fields = {k: html.unescape(v) for k, v in fields.items()} | {"user": user_sub}
    origin = f"{authorize.url.scheme}://{authorize.url.netloc.decode()}"
    granted = client.post(str(authorize.url), data=fields, headers={"Origin": origin})
    assert granted.status_code == 302, granted.text
    return client.get(granted.headers["location"])


@dataclass
class Live:
    """A portal of our own making (own users, registry or routes), served like ``launcher demo``."""

    server: LiveServer
    settings: Settings
    app: Starlette
    idp: Any  # the development provider's state (keys, tokens, users)

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.contextmanager
def live_demo(
    tmp_path: Path,
    database_url: str,
    *,
    users: Sequence[DemoUser] = DEMO_USERS,
    apps_file: Path = EXAMPLE_APPS,
    extra_routes: Sequence[BaseRoute] = (),
    **overrides: Any,
) -> Iterator[Live]:
    """The demo app over real HTTP, with our own users, registry, extra routes or settings."""
    port = free_port()
    settings = demo_settings(
        "127.0.0.1",
        port,
        var=tmp_path / "var",
        database_url=database_url,
        apps_file=apps_file,
        spool_dir=tmp_path / "spool",
        **({"raw_retention_days": 100 * 366} | overrides),  # see tests/conftest.py NO_PURGE
    )
    app = demo_app(settings, users=users, extra_routes=extra_routes)
    with LiveServer(app, port) as server:
        yield Live(server, settings, app, devidp_of(app))


# --- in process: handlers without a socket, a provider round trip or a writer process -----
BASE = "http://127.0.0.1:8000"  # make_settings' base URL (tests/conftest.py)


def make_user(name: str, *groups: str, email: str | None = None) -> User:
    """A signed-in person with a pseudonymous user id, as a sign-in makes one."""
    return User(
        user_id=pseudonym(b"engage-test-key", "https://idp.example", name),
        sub=name,
        name=name.title(),
        email=email if email is not None else f"{name}@zorg.example",
        groups=groups,
    )


class InProcess:
    """A portal app in this process: requests go through the real routing, middleware, CSRF
    checks and templates, without a socket. Sessions are minted with the app's own
    SessionCodec instead of signing in.

    Two ways in. :func:`in_process`: the demo app (the development provider at /_devidp, the
    event writer in a thread) with its lifespan run by ``client``, Starlette's TestClient; the
    OIDC client's own requests go to the provider in process, so sign-out and the back-channel
    logout work. ``InProcess(settings)`` (or :func:`bare_portal`): ``create_app`` alone, the
    registry loaded here and no lifespan unless a test enters :meth:`lifespan`.

    Clients: ``client`` with :meth:`get`/:meth:`post` (a cookie per call, ``who``),
    :meth:`browser` (a TestClient of its own, signed in once, keeping its cookies) and
    :meth:`aclient` (an ``httpx.AsyncClient``, for ``async`` tests and streamed bodies).
    """

    def __init__(
        self, settings: Settings, app: Starlette | None = None, client: TestClient | None = None
    ) -> None:
        self.settings = settings
        self.app: Starlette = app if app is not None else create_app(settings)
        if app is None:
            self.context.registry.reload_if_changed()  # what the lifespan would do first
        # not entered with ``with`` here: that would run the lifespan, with its background
        # tasks, on the client's own event loop
        self.client = client or self._test_client()
        self._clients = [self.client]

    def _test_client(self) -> TestClient:
        return TestClient(self.app, base_url=self.settings.base_url, follow_redirects=False)

    @property
    def context(self) -> Context:
        context: Context = self.app.state.context
        return context

    @property
    def codec(self) -> SessionCodec:
        return self.context.sessions

    def user(self, who: DemoUser) -> User:
        """The portal's view of a demo user, as a sign-in through the provider makes it."""
        assert self.settings.oidc_issuer
        return User(
            user_id=pseudonym(self.settings.pseudonym_secret(), self.settings.oidc_issuer, who.sub),
            sub=who.sub,
            name=who.name,
            email=who.email,
            upn=who.upn,
            department=who.department,
            groups=tuple(who.groups),
        )

    def session(
        self, groups: tuple[str, ...] = ("staff",), sub: str = "alice", op_sid: str | None = None
    ) -> Session:
        """A new session for ``sub``, whose user id (``id-{sub}``) is no pseudonym of it."""
        user = User(f"id-{sub}", sub, sub.title(), f"{sub}@example.org", groups=groups)
        return self.codec.new(user, op_sid)

    def cookie(self, who: DemoUser | User) -> str:
        """A signed, fresh session cookie value for ``who``: a sign-in without the flow."""
        user = who if isinstance(who, User) else self.user(who)
        return self.codec.dumps(self.codec.new(user, None))

    def sign_in(self, client: httpx.Client | httpx.AsyncClient, session: Session) -> str:
        """Put ``session``'s cookie in ``client``'s jar; returns the cookie value."""
        cookie = self.codec.dumps(session)
        client.cookies.set(self.settings.session_cookie, cookie)
        return cookie

    def as_(self, who: DemoUser | User | str | None) -> dict[str, str]:
        """Request headers that carry a session (a user, or a cookie value) or none."""
        if who is None:
            return {}
        value = who if isinstance(who, str) else self.cookie(who)
        return {"Cookie": f"{self.settings.session_cookie}={value}"}

    def get(
        self, path: str, who: DemoUser | User | str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = self.as_(who) | kwargs.pop("headers", {})
        response: httpx.Response = self.client.get(path, headers=headers, **kwargs)
        return response

    def post(
        self, path: str, who: DemoUser | User | str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = self.as_(who) | kwargs.pop("headers", {})
        response: httpx.Response = self.client.post(path, headers=headers, **kwargs)
        return response

    def as_user(self, who: DemoUser | User) -> TestClient:
        """``client``, its cookie jar now holding a session for ``who``."""
        self.client.cookies.set(self.settings.session_cookie, self.cookie(who))
        return self.client

    def browser(self, who: DemoUser | User | None = None) -> TestClient:
        """A client with a cookie jar of its own, signed in as ``who`` (None: anonymous)."""
        client = self._test_client()
        self._clients.append(client)
        if who is not None:
            client.cookies.set(self.settings.session_cookie, self.cookie(who))
        return client

    def aclient(self, **kwargs: Any) -> httpx.AsyncClient:
        """An async client (enter it with ``async with``); English pages."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url=self.settings.base_url,
            headers={"Accept-Language": "en"},
            **kwargs,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.app.router.lifespan_context(self.app):
            yield

    def flush(self) -> None:
        """Write the buffered events now (thread writer: written when this returns)."""
        assert self.client.portal is not None, "flush() needs the lifespan: in_process()"
        self.client.portal.call(self.context.events.flush)

    def close(self) -> None:
        """What the lifespan would close, for a portal without one."""
        for client in self._clients:
            client.close()
        self.context.engine.dispose()

    async def aclose(self) -> None:
        """:meth:`close`, and the OIDC client's connections: for a test that talked to a
        provider without the lifespan."""
        await self.context.oidc.aclose()
        self.close()


@contextlib.contextmanager
def bare_portal(settings: Settings) -> Iterator[InProcess]:
    """``InProcess(settings)``: ``create_app`` alone, no lifespan; closed afterwards."""
    portal = InProcess(settings)
    try:
        yield portal
    finally:
        portal.close()


def post(client: httpx.Client, path: str, data: dict[str, Any], token: str) -> httpx.Response:
    """Submit a form as a browser on the portal's page does: its token, its Origin."""
    return client.post(path, data={"csrf_token": token, **data}, headers={"Origin": BASE})


@contextlib.contextmanager
def in_process(
    settings: Settings,
    *,
    users: Sequence[DemoUser] = DEMO_USERS,
    extra_routes: Sequence[BaseRoute] = (),
    key_file: Path | None = None,
    migrate: bool = True,
) -> Iterator[InProcess]:
    """``settings``' portal (with the development provider) in this process, its lifespan
    running; see InProcess. ``key_file`` keeps the provider's signing key between tests
    (making one takes a while)."""
    from launcher.auth.oidc import OIDCClient

    app = demo_app(
        settings, users=users, extra_routes=extra_routes, key_file=key_file, migrate=migrate
    )
    context: Context = app.state.context
    context.oidc = OIDCClient(
        settings,
        http=httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=settings.base_url, timeout=10
        ),
    )
    with TestClient(app, base_url=settings.base_url, follow_redirects=False) as client:
        yield InProcess(settings, app, client)

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import BaseRoute, Mount

from launcher.app import create_app
from launcher.auth.session import SessionCodec
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
    "create_devidp",
    "demo_settings",
    "dev_client",
    "free_port",
    "in_process",
    "live_demo",
    "devidp_of",
    "demo_app",
    "pick_user",
    "port_open",
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
@dataclass
class InProcess:
    """A portal app run in this process through Starlette's TestClient (lifespan included).

    Sessions are minted with the app's own SessionCodec instead of signing in; the OIDC
    client's own requests (discovery, keys) go to the mounted development provider in
    process, so sign-out and the back-channel logout work without a socket.
    """

    app: Starlette
    client: TestClient
    settings: Settings

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

    def cookie(self, who: DemoUser | User) -> str:
        """A signed, fresh session cookie value for ``who``: a sign-in without the flow."""
        user = who if isinstance(who, User) else self.user(who)
        return self.codec.dumps(self.codec.new(user, None))

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

    def flush(self) -> None:
        """Write the buffered events now (thread writer: written when this returns)."""
        assert self.client.portal is not None
        self.client.portal.call(self.context.events.flush)


@contextlib.contextmanager
def in_process(
    settings: Settings,
    *,
    users: Sequence[DemoUser] = DEMO_USERS,
    extra_routes: Sequence[BaseRoute] = (),
    key_file: Path | None = None,
    migrate: bool = True,
) -> Iterator[InProcess]:
    """``settings``' portal (with the development provider) in this process; see InProcess.
    ``key_file`` keeps the provider's signing key between tests (making one takes a while)."""
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
        yield InProcess(app, client, settings)

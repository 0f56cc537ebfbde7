"""An in-process portal for the tests of launcher/engage: signed-in clients without a provider.

The session cookie is minted by the portal's own codec, so each request goes through the real
routing, middleware, CSRF checks and templates; no server, no lifespan (the registry is loaded
here instead).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.exceptions import StarletteDeprecationWarning

from launcher.app import create_app
from launcher.auth.user import User, pseudonym
from launcher.context import Context
from launcher.settings import Settings

with warnings.catch_warnings():
    # Starlette >= 1.x prefers the "httpx2" fork and warns at import; httpx works as before.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8000"


def user(name: str, *groups: str, email: str | None = None) -> User:
    return User(
        user_id=pseudonym(b"engage-test-key", "https://idp.example", name),
        sub=name,
        name=name.title(),
        email=email if email is not None else f"{name}@zorg.example",
        groups=groups,
    )


class Portal:
    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.context: Context = self.app.state.context
        self.context.registry.reload_if_changed()
        self._clients: list[TestClient] = []

    def client(self, who: User | None = None) -> TestClient:
        """A client signed in as ``who`` (never entered with ``with``: that would run the
        lifespan, with its background tasks, on the client's own event loop)."""
        client = TestClient(self.app, base_url=BASE, follow_redirects=False)
        self._clients.append(client)
        if who is not None:
            sessions = self.context.sessions
            client.cookies.set(
                self.context.settings.session_cookie, sessions.dumps(sessions.new(who, None))
            )
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.context.engine.dispose()


@contextmanager
def portal(settings: Settings) -> Iterator[Portal]:
    p = Portal(settings)
    try:
        yield p
    finally:
        p.close()


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match[1]


def post(client: TestClient, path: str, data: dict[str, Any], token: str) -> Any:
    return client.post(path, data={"csrf_token": token, **data}, headers={"Origin": BASE})

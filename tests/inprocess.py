"""The portal in-process: ``create_app`` behind ``httpx.ASGITransport``, with a way to sign a
browser in as anyone (a session cookie minted by the app's own codec), no provider needed.

The lifespan does not run unless a test enters ``lifespan()``; ``client()`` loads the registry
itself, which is all most handlers need.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette

from launcher.app import create_app
from launcher.auth.session import Session
from launcher.auth.user import User
from launcher.context import Context
from launcher.settings import Settings


class Portal:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: Starlette = create_app(settings)
        self.context: Context = self.app.state.context
        self.context.registry.reload_if_changed()

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(
            transport=transport,
            base_url=self.settings.base_url,
            headers={"Accept-Language": "en"},
            **kwargs,  # type: ignore[arg-type]
        )

    def session(
        self, groups: tuple[str, ...] = ("staff",), sub: str = "alice", op_sid: str | None = None
    ) -> Session:
        user = User(f"id-{sub}", sub, sub.title(), f"{sub}@example.org", groups=groups)
        return self.context.sessions.new(user, op_sid)

    def sign_in(self, client: httpx.AsyncClient, session: Session) -> str:
        cookie = self.context.sessions.dumps(session)
        client.cookies.set(self.settings.session_cookie, cookie)
        return cookie

    async def close(self) -> None:
        """What the lifespan would close: for a test that talked to a provider without it."""
        await self.context.oidc.aclose()
        self.context.engine.dispose()

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.app.router.lifespan_context(self.app):
            yield

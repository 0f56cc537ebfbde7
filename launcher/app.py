"""``create_app(settings)``: routes, middleware and lifespan. No import-time state."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import anyio.to_thread
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from launcher import assets, db, i18n, jobs, partitions, static_files, status
from launcher.auth.csrf import CrossOriginGuard
from launcher.auth.oidc import OIDCClient
from launcher.auth.session import Revocations, SessionCodec
from launcher.auth.spent import SpentTokens
from launcher.auth.user import pseudonym
from launcher.context import Context
from launcher.engage import displays
from launcher.engage.displays import Display
from launcher.errors import ConfigError
from launcher.events import EventStore
from launcher.limits import BodyLimit
from launcher.loop_reads import LoopReads
from launcher.metrics import OTHER_ROUTE, Metrics
from launcher.registry import RegistryHolder
from launcher.reports import rollups
from launcher.request_id import SCOPE_KEY, RequestId
from launcher.settings import Settings
from launcher.views import (
    admin,
    announcements,
    auth,
    display,
    launch,
    ops,
    portal,
    reports,
    settings_page,
)
from launcher.views.common import (
    SecurityHeaders,
    error_response,
    install_error_handlers,
    security_headers,
)

log = logging.getLogger(__name__)
REGISTRY_POLL = 2.0  # seconds between checks of apps.yaml for edits
PURGE_EVERY = 24 * 60 * 60  # seconds between purges of raw events past the retention
BACKGROUND_STOP = 5.0  # seconds background loops get to finish at shutdown (of the 10 s)
GAUGES_EVERY = 1.0  # seconds between updates of this worker's event gauges (launcher/metrics.py)
FAST_LAUNCH_ROUTE = "/launch/{app_id}"
GZIP_LEVEL = 5


class PortalApp(Starlette):
    """The portal's ASGI app: Starlette, with the common launch answered before the rest."""

    fast_launch: launch.FastLaunch | None = None
    metrics: Metrics | None = None
    # endpoint -> its route's template: the latency histogram's label, never the raw path
    templates_of: dict[object, str] = {}  # noqa: RUF012 (replaced per app in create_app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and SCOPE_KEY not in scope:
            # outermost, so that the fast launch and the 500 page carry the id too: RequestId
            # marks the scope and calls this method again
            await RequestId(self)(scope, receive, send)
            return
        if scope["type"] != "http" or self.metrics is None:
            await super().__call__(scope, receive, send)
            return
        start = time.perf_counter()
        if self.fast_launch is not None and await self.fast_launch(scope, send):
            self.metrics.observe(FAST_LAUNCH_ROUTE, time.perf_counter() - start)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            # the router leaves the endpoint it chose in the scope
            route = self.templates_of.get(scope.get("endpoint"), OTHER_ROUTE)
            self.metrics.observe(route, time.perf_counter() - start)


def _route_templates(routes: list[BaseRoute]) -> dict[object, str]:
    """Each endpoint's path template; Starlette's router leaves the endpoint it chose in the
    scope, a mount its app."""
    found: dict[object, str] = {}
    for route in routes:
        if isinstance(route, Route):
            found[route.endpoint] = route.path
        elif isinstance(route, Mount):
            found[route.app] = route.path + "/{path}"
    return found


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(assets.TEMPLATES))
    templates.env.autoescape = True  # also for any template not ending in .html
    # no stat() of every template per page; `launcher demo` turns it back on for editing
    templates.env.auto_reload = False
    templates.env.globals["static"] = static_files.static_url
    templates.env.globals["languages"] = i18n.LANGUAGES  # the switch in the header
    templates.env.globals["language_name"] = i18n.language_name
    return templates


def create_app(
    settings: Settings,
    *,
    extra_routes: list[BaseRoute] | None = None,
    migrate: bool = False,
    writer: Literal["process", "thread"] = "process",
) -> Starlette:
    """Build the portal. ``migrate`` applies pending migrations at start-up (serve on SQLite).

    ``extra_routes`` lets ``launcher demo`` mount its development provider next to the portal.
    ``writer="thread"`` writes events from a thread of this process instead of a writer
    process (tests and tools that need no process of their own; launcher/events/store.py).
    """
    if not settings.oidc_issuer or not settings.oidc_client_id:
        raise ConfigError("LAUNCHER_OIDC_ISSUER and LAUNCHER_OIDC_CLIENT_ID must be set")
    settings.secret()  # fails loudly, naming LAUNCHER_SECRET_KEY
    engine = db.make_engine(settings.database_url)
    issuer, key = settings.oidc_issuer, settings.pseudonym_secret()
    # a provider's logout names its raw sub, which need not be what the user id is made of
    sub_hash = functools.lru_cache(maxsize=4096)(lambda sub: pseudonym(key, issuer, sub))
    revocations = Revocations(engine, sub_hash=sub_hash)
    registry = RegistryHolder(settings.apps_file)
    context = Context(
        settings=settings,
        engine=engine,
        registry=registry,
        events=EventStore(
            engine,
            settings.spool_dir,
            on_flush=rollups.apply,
            timezone=registry.timezone,
            writer=writer,
        ),
        revocations=revocations,
        sessions=SessionCodec(settings, revocations),
        oidc=OIDCClient(settings),
        templates=_templates(),
        spent=SpentTokens(engine),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        p: Context = app.state.context
        # as many threads at once as the pool has connections (launcher/db.py): with anyio's
        # 40, 32 pages in flight in a worker queued for its connections inside their threads,
        # and a worker served 495 grid pages a second instead of 683 (bench/README.md)
        anyio.to_thread.current_default_thread_limiter().total_tokens = db.WORKER_DB_THREADS
        if migrate:
            await anyio.to_thread.run_sync(db.upgrade, p.engine)
        p.registry.reload_if_changed()
        p.metrics.registry_ok.set(0 if p.registry.errors else 1)
        try:
            await anyio.to_thread.run_sync(p.revocations.poll)
        except sa.exc.SQLAlchemyError as exc:
            log.error("database unavailable at start-up (events will be spooled): %s", exc)
        p.events.start()
        p.revocations.start()
        # the grid's read on this loop, over connections of its own (launcher/loop_reads.py)
        reads = None if db.is_sqlite(p.engine) else LoopReads(p.engine)
        app.state.loop_reads = reads
        stop = asyncio.Event()
        p.background.append(asyncio.create_task(_watch_registry(p, stop), name="launcher-registry"))
        p.background.append(asyncio.create_task(_purge_daily(p, stop), name="launcher-purge"))
        p.background.append(asyncio.create_task(_event_gauges(p, stop), name="launcher-gauges"))
        board: status.Board = app.state.app_status
        p.background.append(asyncio.create_task(board.run(stop), name="launcher-status"))
        try:
            yield
        finally:
            await _stop_background(p.background, stop)
            p.metrics.flush()  # this worker's last counts, before its files are left behind
            # each step runs even when the one before fails
            async with contextlib.AsyncExitStack() as stack:
                stack.callback(p.engine.dispose)
                if reads is not None:
                    stack.push_async_callback(reads.close)
                stack.push_async_callback(p.oidc.aclose)
                stack.push_async_callback(p.revocations.close)
                await p.events.close()
                log.info(
                    "shut down: %d events written, %d spooled", p.events.written, p.events.spooled
                )

    origin = settings.base_url
    routes: list[BaseRoute] = [
        *portal.routes,
        *launch.routes,
        *auth.routes,
        *reports.routes,
        *admin.routes,
        *announcements.routes,
        *settings_page.routes,
        *display.routes,  # its displays: app.state.displays (launcher/views/display.py)
        *ops.routes,
        Mount("/static", app=static_files.HashedStatic(directory=assets.STATIC), name="static"),
        *(extra_routes or []),
    ]
    headers = security_headers(settings.https, _form_targets(settings))
    app = PortalApp(routes=routes, lifespan=lifespan)
    app.state.context = context
    app.state.displays = _displays(context)
    # the checks of the apps' status_url (launcher/status.py), read by the grid and /admin
    app.state.app_status = status.Board(engine, registry, context.metrics.app_up)
    app.fast_launch = launch.FastLaunch(context, headers)
    app.metrics = context.metrics
    app.templates_of = _route_templates(routes)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, on_error=error_response)  # innermost: after the CSRF check
    app.add_middleware(
        CrossOriginGuard,
        origin=origin,
        # the one-click unsubscribe POST comes from the mail provider, with its signed token
        exempt=frozenset({"/auth/backchannel-logout", "/unsubscribe/"}),
        on_error=error_response,
    )
    app.add_middleware(SecurityHeaders, headers=headers)
    # pages, styles and scripts compressed; the fast launch answers before any middleware.
    # Level 5, not Starlette's 9: the grid page of bench/bench_grid.py (74 KB) takes half the
    # time for 6.1 KB instead of 5.7 KB (bench/README.md, bench_grid.py)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=GZIP_LEVEL)
    return app


def _displays(context: Context) -> Callable[[], list[Display]]:
    """The hallway screens of the registry in use, their tokens read from the environment
    once per registry (a reload may add or change displays)."""
    cache: dict[int, list[Display]] = {}

    def current() -> list[Display]:
        registry = context.registry.current
        found = cache.get(id(registry))
        if found is None:
            found = []
            for d in registry.displays:
                entry = {"id": d.id, "name": d.name.get("en"), "token_env": d.token_env}
                try:
                    found += displays.from_config([entry | {"groups": d.groups}], os.environ)
                except ConfigError as exc:  # the other displays keep working
                    log.error("display %s is off until this is fixed: %s", d.id, exc)
            cache.clear()
            cache[id(registry)] = found
        return found

    return current


def _form_targets(settings: Settings) -> tuple[str, ...]:
    # Chrome applies CSP form-action to the redirect after a form post: sign-out redirects to
    # the provider's end-session endpoint, so the provider's origin must be allowed.
    parts = urlsplit(settings.oidc_issuer or "")
    return (f"{parts.scheme}://{parts.netloc}",) if parts.netloc else ()


async def _stop_background(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Let each background loop finish what it is doing, then end; only then may the engine go.

    Cancelling is not enough: a task cancelled while its worker thread reloads the registry or
    purges ends at once, and the thread goes on using the engine while it is disposed.
    """
    stop.set()
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=BACKGROUND_STOP)
    for task in late:
        log.warning("background task %s did not stop in time; cancelled", task.get_name())
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less when the portal stops; True when it is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def _partitions_ahead(engine: sa.Engine, tz: ZoneInfo) -> None:
    with jobs.run_once(engine, jobs.PARTITIONS) as mine:
        if mine:  # else another worker is making them right now
            partitions.ensure(engine, tz)


async def _purge_daily(p: Context, stop: asyncio.Event) -> None:
    """Raw events past LAUNCHER_RAW_RETENTION_DAYS go; the rollups keep the counts.

    At start-up only the month partitions are made (PostgreSQL), by whichever worker gets
    there first. The purge waits a random while, so that workers and replicas starting
    together do not all queue for its lock; the first to take it purges, the others skip.
    """
    try:
        await anyio.to_thread.run_sync(_partitions_ahead, p.engine, p.registry.timezone())
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not create the month partitions (will retry): %s", exc)
    # spreading load, not a secret:
    if await _pause(stop, random.uniform(60, 600)):  # noqa: S311
        return
    while True:
        try:
            deleted = await anyio.to_thread.run_sync(
                jobs.purge, p.engine, p.settings.raw_retention_days, p.registry.timezone()
            )
            if deleted:
                log.info("purged %d raw events past the retention", deleted)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not purge old raw events (will retry): %s", exc)
        if await _pause(stop, PURGE_EVERY):
            return


async def _watch_registry(p: Context, stop: asyncio.Event) -> None:
    while not await _pause(stop, REGISTRY_POLL):
        try:
            await anyio.to_thread.run_sync(p.registry.reload_if_changed)
            p.metrics.registry_ok.set(0 if p.registry.errors else 1)
        except Exception:  # a watcher that dies silently would freeze the registry
            log.exception("registry reload failed")


async def _event_gauges(p: Context, stop: asyncio.Event) -> None:
    """This worker's events waiting and the oldest one's age, and its launches and request
    times counted since the last time, for a scrape that another worker of the host answers
    (launcher/metrics.py): nothing here touches the database."""
    while not await _pause(stop, GAUGES_EVERY):
        p.metrics.events(p.events.pending, p.events.oldest_pending, p.events.spooled)
        p.metrics.flush()  # the launches and request times counted since

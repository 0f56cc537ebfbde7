"""Liveness, readiness and Prometheus metrics.

``/metrics`` covers every worker of the host (launcher/metrics.py). It shows live launch counts
per app, group-restricted apps included, outside the reports' minimum group size: it answers
only a caller with ``LAUNCHER_METRICS_TOKEN`` (and 404 when none is configured). ``/readyz``
tells anyone whether each check passed; why one failed (the registry's errors, the provider's
answer) only to that caller or a signed-in admin.
"""

from __future__ import annotations

import hmac

import anyio.to_thread
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from launcher.context import Context
from launcher.errors import LauncherError, NotFound
from launcher.views.common import context_of, get_session


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})


def _ping(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


async def readyz(request: Request) -> Response:
    """200 when the database answers, a registry is loaded and the provider's metadata is in."""
    p = context_of(request)
    checks: dict[str, str] = {}
    try:
        await anyio.to_thread.run_sync(_ping, p.engine)
        checks["database"] = "ok"
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    checks["registry"] = "ok" if p.registry.ready else "error: " + "; ".join(p.registry.errors[:3])
    if p.registry.ready and p.registry.errors:
        checks["registry"] = "ok (file on disk has errors; last good registry in use)"
    try:
        await p.oidc.metadata()
        checks["provider"] = "ok"
    except LauncherError as exc:
        checks["provider"] = f"error: {exc.message}"
    ready = all(v.startswith("ok") for v in checks.values())
    if not _may_see_details(request, p):
        checks = {k: "ok" if v.startswith("ok") else "error" for k, v in checks.items()}
    return JSONResponse(
        {"ready": ready, "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


def _has_metrics_token(request: Request, p: Context) -> bool:
    token = p.settings.metrics_token
    if token is None:
        return False
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken must not tell an attacker how much of a guess was right
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.get_secret_value().encode()
    )


def _may_see_details(request: Request, p: Context) -> bool:
    if _has_metrics_token(request, p):
        return True
    session = get_session(request)
    return session is not None and session.user.in_any(p.settings.admin_groups)


async def metrics(request: Request) -> Response:
    p = context_of(request)
    if p.settings.metrics_token is None:
        raise NotFound("There is no page at this address.")
    if not _has_metrics_token(request, p):
        return PlainTextResponse(
            "A bearer token (LAUNCHER_METRICS_TOKEN) is required.\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
        )
    p.metrics.events(p.events.pending, p.events.oldest_pending, p.events.spooled)
    p.metrics.flush()  # this worker's counts are current; the others' at most a second old
    body = await anyio.to_thread.run_sync(p.metrics.exposition, p.settings.spool_dir)
    return Response(
        body,
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics),
]

"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import anyio.to_thread
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from launcher.errors import LauncherError
from launcher.views.common import context_of


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
    return JSONResponse(
        {"ready": ready, "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


async def metrics(request: Request) -> Response:
    p = context_of(request)
    p.metrics.pending.set(p.events.pending)
    p.metrics.spooled.set(p.events.spooled)
    return Response(generate_latest(p.metrics.registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz),
    Route("/readyz", readyz),
    Route("/metrics", metrics),
]

"""Reviewer reports. The JSON API now; the HTML page with charts follows (issue #3)."""

from __future__ import annotations

import datetime as dt

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from launcher.reports import queries
from launcher.views.common import api_session, portal_of


async def launches_api(request: Request) -> Response:
    p = portal_of(request)
    api_session(request, p.settings.reviewer_groups)
    period = queries.parse_period(
        request.query_params.get("from"),
        request.query_params.get("to"),
        dt.datetime.now(dt.UTC).date(),
    )
    by = queries.parse_by(request.query_params.get("by"))
    rows = await anyio.to_thread.run_sync(
        queries.launches, p.engine, p.registry.current, period, by, p.settings.report_min_group
    )
    body = {"from": period.start.isoformat(), "to": period.end.isoformat(), "by": by, "rows": rows}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


routes = [Route("/api/v1/reports/launches", launches_api)]

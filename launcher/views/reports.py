"""Reviewer reports: the page with charts, CSV export of every table, and the JSON API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from launcher.context import Context
from launcher.dates import month_of
from launcher.reports import decline, gateway, periods, queries, sources, tables
from launcher.reports import page as page_words
from launcher.views.common import (
    api_session,
    context_of,
    language,
    login_redirect,
    member_session,
    render,
)

_NO_STORE = {"Cache-Control": "no-store"}


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


async def page(request: Request) -> Response:
    p = context_of(request)
    if member_session(request, p.settings.reviewer_groups, "Reports are for reviewers.") is None:
        return login_redirect(request)
    kind, period = tables.period_from_query(request.query_params.get, _today())
    lang = language(request)
    report = await anyio.to_thread.run_sync(
        tables.build,
        p.engine,
        p.registry.current,
        period,
        _today(),
        p.settings.report_min_group,
        lang,
    )
    shown = page_words.context(report, p.registry.current, kind, request.url.query, lang)
    return render(request, "reports.html", shown)


async def export_csv(request: Request) -> Response:
    p = context_of(request)
    api_session(request, p.settings.reviewer_groups)
    _, period = tables.period_from_query(request.query_params.get, _today())
    name = request.query_params.get("table") or "apps"
    report = await anyio.to_thread.run_sync(
        tables.build,
        p.engine,
        p.registry.current,
        period,
        _today(),
        p.settings.report_min_group,
        language(request),  # the headers in the reviewer's language, like the page
    )
    table = tables.table(report, name)
    filename = f"launcher-{name}-{period.start}-{period.end}.csv"
    return Response(
        table.csv(),
        media_type="text/csv; charset=utf-8",
        headers={**_NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _api(
    build: Callable[[Request, Any, periods.Period], dict[str, Any]],
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        p = context_of(request)
        api_session(request, p.settings.reviewer_groups)
        period = periods.parse_period(
            request.query_params.get("from"), request.query_params.get("to"), _today()
        )
        body = await anyio.to_thread.run_sync(build, request, p, period)
        return JSONResponse(
            {"from": period.start.isoformat(), "to": period.end.isoformat(), **body},
            headers=_NO_STORE,
        )

    return endpoint


def _launches(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    by = periods.parse_by(request.query_params.get("by"))
    rows = queries.launches(p.engine, p.registry.current, period, by, p.settings.report_min_group)
    return {"by": by, "rows": rows}


def _active_users(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    by = periods.parse_by(request.query_params.get("by"), ("day", "month"))
    return {
        "by": by,
        "rows": queries.active_users(p.engine, period, by, p.settings.report_min_group),
    }


def _comparison(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    return queries.comparison(p.engine, p.registry.current, period, p.settings.report_min_group)


def _cohorts(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    first = month_of(period.start)
    rows = queries.cohorts(p.engine, first, month_of(period.end), p.settings.report_min_group)
    return {"rows": rows}


def _heatmap(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    return {
        "timezone": p.registry.current.portal.timezone,
        "rows": queries.heatmap(p.engine, period, p.settings.report_min_group),
    }


def _departments(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    rows = queries.departments(p.engine, p.registry.current, period, p.settings.report_min_group)
    return {"rows": rows}


def _gateway(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    by = periods.parse_by(
        request.query_params.get("by"), ("app", "department", "month", "unregistered")
    )
    rows = gateway.gateway(p.engine, period, by, p.settings.report_min_group)
    return {"by": by, "rows": rows}


def _decline(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    by = periods.parse_by(request.query_params.get("by"), decline.BY_VALUES)
    return decline.decline(p.engine, p.registry.current, period, by, p.settings.report_min_group)


def _sources(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    months = period.months()
    return {
        "months": [months[0].isoformat()[:7], months[-1].isoformat()[:7]],
        "rows": sources.by_month(p.engine, period, p.settings.report_min_group),
    }


def _announcements(request: Request, p: Context, period: periods.Period) -> dict[str, Any]:
    return {"rows": sources.announcement_reach(p.engine, period, p.settings.report_min_group)}


routes = [
    Route("/reports", page),
    Route("/reports/export.csv", export_csv),
    Route("/api/v1/reports/launches", _api(_launches)),
    Route("/api/v1/reports/active-users", _api(_active_users)),
    Route("/api/v1/reports/comparison", _api(_comparison)),
    Route("/api/v1/reports/cohorts", _api(_cohorts)),
    Route("/api/v1/reports/heatmap", _api(_heatmap)),
    Route("/api/v1/reports/departments", _api(_departments)),
    Route("/api/v1/reports/gateway", _api(_gateway)),
    Route("/api/v1/reports/decline", _api(_decline)),
    Route("/api/v1/reports/sources", _api(_sources)),
    Route("/api/v1/reports/announcements", _api(_announcements)),
]

"""Fuzzing with Hypothesis: whatever a browser or a script puts in the query string of the sign-in
callback or of a report route, the portal answers with a page or a JSON error -- never a 500.

In-process (``httpx.ASGITransport`` over ``create_app``); the callback talks to the hostile
provider over real HTTP, so that a fuzzed answer with a genuine login attempt goes all the way
to the token endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from launcher.settings import Settings
from tests.conftest import LiveServer, free_port
from tests.helpers import InProcess
from tests.hostile_idp import CLIENT_ID, HostileIdP

FUZZ = settings(
    max_examples=120,
    deadline=None,  # the machine is shared; a slow example is no bug
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Strings a query parameter may hold: anything, and the near misses that reach deeper code.
anything = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
date_like = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.from_regex(r"[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}", fullmatch=True),
    st.from_regex(r"[0-9]{4}-W[0-9]{2}(-[0-9])?", fullmatch=True),
    anything,
)
month_like = st.one_of(
    st.from_regex(r"[0-9]{1,5}-[0-9]{1,2}", fullmatch=True),
    st.dates().map(lambda d: d.isoformat()[:7]),
    anything,
)
quarter_like = st.one_of(
    st.from_regex(r"-?[0-9]{1,5}-[qQ]-?[0-9]{1,3}", fullmatch=True),
    anything,
)


def _maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.none() | strategy


@pytest.fixture(scope="module")
def idp() -> Iterator[HostileIdP]:
    port = free_port()
    provider = HostileIdP(f"http://127.0.0.1:{port}")
    with LiveServer(provider.app, port):
        yield provider


@pytest.fixture
async def portal(
    idp: HostileIdP, make_settings: Callable[..., Settings], sqlite_url: str
) -> AsyncIterator[InProcess]:
    """One portal for all of a test's examples (states are single-use: each example that
    needs a genuine one starts a login of its own)."""
    portal = InProcess(
        make_settings(oidc_issuer=idp.issuer, oidc_client_id=CLIENT_ID, database_url=sqlite_url)
    )
    yield portal
    await portal.aclose()


@pytest.mark.anyio
@FUZZ
@given(
    genuine_state=st.booleans(),
    state=_maybe(anything),
    code=_maybe(anything),
    iss=st.none() | st.just("ours") | anything,
    error=st.none()
    | st.sampled_from(["access_denied", "server_error", "login_required"])
    | anything,
    error_description=_maybe(anything),
    extra=st.dictionaries(anything, anything, max_size=3),
)
async def test_callback_never_answers_500(
    portal: InProcess,
    idp: HostileIdP,
    genuine_state: bool,
    state: str | None,
    code: str | None,
    iss: str | None,
    error: str | None,
    error_description: str | None,
    extra: dict[str, str],
) -> None:
    async with portal.aclient() as client:
        if genuine_state:  # a login this browser started: the fuzzed answer goes deeper
            started = await client.get("/login")
            assert started.status_code == 302, started.text[:300]
            state = httpx.URL(started.headers["location"]).params["state"]
        params = {
            **extra,
            **{
                k: v
                for k, v in {
                    "state": state,
                    "code": code,
                    "iss": idp.issuer if iss == "ours" else iss,
                    "error": error,
                    "error_description": error_description,
                }.items()
                if v is not None
            },
        }
        resp = await client.get("/auth/callback", params=params)
    assert resp.status_code in (303, 400, 502), (params, resp.status_code, resp.text[:500])
    assert "Traceback" not in resp.text


REPORT_ROUTES = [
    "/reports",
    "/reports/export.csv",
    "/api/v1/reports/launches",
    "/api/v1/reports/active-users",
    "/api/v1/reports/comparison",
    "/api/v1/reports/cohorts",
    "/api/v1/reports/heatmap",
    "/api/v1/reports/departments",
]


def _found(route: str, **params: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An explicit example of the report test: ``route`` with ``params``, the rest left out."""
    names = ("start", "end", "by", "period", "month", "quarter", "table")
    return example(route=route, **{name: params.get(name) for name in names})


@pytest.mark.anyio
@FUZZ
@given(
    route=st.sampled_from(REPORT_ROUTES),
    start=_maybe(date_like),
    end=_maybe(date_like),
    by=_maybe(st.sampled_from(["app", "category", "department", "day", "month"]) | anything),
    period=_maybe(st.sampled_from(["month", "quarter", "custom"]) | anything),
    month=_maybe(month_like),
    quarter=_maybe(quarter_like),
    table=_maybe(st.sampled_from(["summary", "apps", "departments"]) | anything),
)
# what fuzzing found before it was fixed: dates whose arithmetic overflows, a period before go-live
@_found("/reports", end="0001-01-05")
@_found("/api/v1/reports/comparison", end="9999-12-31")
@_found("/reports", period="month", month="0001-01")
@_found("/reports/export.csv", period="quarter", quarter="9999-Q4")
@_found("/reports", end="2000-01-01")
async def test_report_parameters_never_answer_500(
    portal: InProcess,
    route: str,
    start: str | None,
    end: str | None,
    by: str | None,
    period: str | None,
    month: str | None,
    quarter: str | None,
    table: str | None,
) -> None:
    values = {
        "from": start,
        "to": end,
        "by": by,
        "period": period,
        "month": month,
        "quarter": quarter,
        "table": table,
    }
    params = {k: v for k, v in values.items() if v is not None}
    async with portal.aclient() as client:
        portal.sign_in(client, portal.session(groups=("launcher-reviewers",)))
        resp = await client.get(route, params=params)
    assert resp.status_code in (200, 400, 404), (route, params, resp.status_code, resp.text[:500])
    assert "Traceback" not in resp.text

"""Report dates outside what a report can cover answer 400 naming the parameter, never 500,
on every report route and in ``launcher report``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from launcher.cli import main
from launcher.settings import Settings
from tests.conftest import EXAMPLE_APPS, SECRET
from tests.helpers import InProcess

ROUTES = [
    "/reports",
    "/reports/export.csv",
    "/api/v1/reports/launches",
    "/api/v1/reports/active-users",
    "/api/v1/reports/comparison",
    "/api/v1/reports/cohorts",
    "/api/v1/reports/heatmap",
    "/api/v1/reports/departments",
]
OUT_OF_RANGE = [
    pytest.param({"to": "0001-01-05"}, "to", id="to near year 1"),
    pytest.param({"from": "0001-01-01", "to": "2025-01-05"}, "from", id="from in year 1"),
    pytest.param({"to": "9999-12-31"}, "to", id="to at year 9999"),
    pytest.param({"from": "9999-12-01", "to": "9999-12-31"}, "from", id="from in year 9999"),
    pytest.param({"period": "month", "month": "0001-01"}, "month", id="month 0001-01"),
    pytest.param({"period": "month", "month": "9999-12"}, "month", id="month 9999-12"),
    pytest.param({"period": "quarter", "quarter": "0001-Q1"}, "quarter", id="quarter 0001-Q1"),
    pytest.param({"period": "quarter", "quarter": "9999-Q4"}, "quarter", id="quarter 9999-Q4"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("query", "named"), OUT_OF_RANGE)
async def test_out_of_range_dates_are_400_naming_the_parameter(
    make_settings: Callable[..., Settings], sqlite_url: str, query: dict[str, str], named: str
) -> None:
    portal = InProcess(make_settings(database_url=sqlite_url))
    async with portal.aclient() as client:
        portal.sign_in(client, portal.session(groups=("launcher-reviewers",)))
        for route in ROUTES:
            if route.startswith("/api/") and named in ("month", "quarter"):
                continue  # the API takes from/to only; it ignores these
            resp = await client.get(route, params=query)
            assert resp.status_code == 400, (route, resp.status_code, resp.text[:300])
            assert f"'{named}'" in resp.text or f"&#39;{named}&#39;" in resp.text, route
        # the control: the same routes answer a sane period
        ok = await client.get(ROUTES[2], params={"from": "2025-03-01", "to": "2025-03-31"})
        assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(["--to", "0001-01-05"], "to", id="to near year 1"),
        pytest.param(["--to", "9999-12-31"], "to", id="to at year 9999"),
        pytest.param(["--from", "0001-01-01", "--to", "2025-01-01"], "from", id="from year 1"),
        pytest.param(["--to", "9999-12-31", "--table", "summary"], "to", id="a table"),
    ],
)
def test_launcher_report_exits_1_with_the_message(
    monkeypatch: pytest.MonkeyPatch,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    named: str,
) -> None:
    monkeypatch.setenv("LAUNCHER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LAUNCHER_APPS_FILE", str(EXAMPLE_APPS))
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", SECRET)
    assert main(["report", *args]) == 1
    err = capsys.readouterr().err
    assert f"'{named}' must lie between" in err
    assert "Traceback" not in err

"""``GET /api/v1/reports/gateway`` (launcher/views/reports.py) over the in-process portal, on
SQLite and PostgreSQL: the front-door rows of launches recorded by the portal and sign-ins
imported from the provider's log, who may ask, and bad parameters."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from launcher.reports import gateway
from launcher.reports.periods import Period
from launcher.signins import importer
from tests.conftest import MakePortal
from tests.helpers import ADMIN, CLINICIAN, REVIEWER, STAFF, DemoUser, InProcess

TEAMS = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"  # signin_ids of teams in config/apps.yaml
EHR = "3b9f2d4c-8e71-4a6f-b0c2-5d8e9f1a2b63"


def _signin(rid: str, who: DemoUser, app: str, name: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "id": rid,
        "createdDateTime": at.isoformat().replace("+00:00", "Z"),
        "userId": who.sub,  # LAUNCHER_SUBJECT_CLAIM is sub here: the ids sign-in pseudonymises
        "appId": app,
        "appDisplayName": name,
        "status": {"errorCode": 0},
        "isInteractive": True,
    }


@pytest.fixture
def portal(make_portal: MakePortal, database_url: str, tmp_path: Path) -> InProcess:
    """Staff launched Teams from the grid and signed in to it at the provider right after;
    the clinician and the admin signed in to Teams without the portal; the clinician also
    signed in to the EHR through the portal, and twice to Miro, which has no tile."""
    portal = make_portal(database_url=database_url, report_min_group=1)
    for who, app in ((STAFF, "teams"), (CLINICIAN, "ehr")):
        launched = portal.get(f"/launch/{app}", who, headers={"Sec-Fetch-Site": "same-origin"})
        assert launched.status_code == 303
    portal.flush()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    log = tmp_path / "signins.jsonl"
    records = [
        _signin("s1", STAFF, TEAMS, "Microsoft Teams", now + dt.timedelta(seconds=5)),
        _signin("s2", CLINICIAN, TEAMS, "Microsoft Teams", now - dt.timedelta(hours=3)),
        _signin("s3", ADMIN, TEAMS, "Microsoft Teams", now - dt.timedelta(hours=2)),
        _signin("s4", CLINICIAN, EHR, "EHR", now + dt.timedelta(seconds=2)),
        _signin("s5", CLINICIAN, "miro-app", "Miro", now - dt.timedelta(hours=1)),
        _signin("s6", STAFF, "miro-app", "Miro", now - dt.timedelta(hours=1)),
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    mapping = portal.context.registry.current.signin_map()
    summary = importer.import_files(portal.context.engine, portal.settings, mapping, "entra", [log])
    assert summary.new == 6
    return portal


def _rows(portal: InProcess, by: str) -> list[dict[str, Any]]:
    today = dt.datetime.now(dt.UTC).date()
    query = {"by": by, "from": str(today - dt.timedelta(days=1)), "to": str(today)}
    answer = portal.get("/api/v1/reports/gateway", REVIEWER, params=query)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["by"], body["to"]) == (by, str(today))
    rows: list[dict[str, Any]] = body["rows"]
    return rows


def test_gateway_rows_by_app_and_unregistered(portal: InProcess) -> None:
    today = dt.datetime.now(dt.UTC).date()
    period, engine = Period(today - dt.timedelta(days=1), today), portal.context.engine
    assert gateway.gateway(engine, period, "app", 1, exact=True) == [
        {"key": "ehr", "signins": 1, "via_portal": 1, "share": 1.0, "users": 1},
        {"key": "teams", "signins": 3, "via_portal": 1, "share": 0.333, "users": 3},
    ]
    assert gateway.gateway(engine, period, "unregistered", 1, exact=True) == [
        {"key": "Miro", "signins": 2, "users": 2}
    ]
    by_month = gateway.gateway(engine, period, "month", 1, exact=True)
    assert [(r["signins"], r["via_portal"]) for r in by_month] == [(4, 2)]
    # the API publishes them with the cell-key noise (launcher/reports/cellkey.py)
    for by in ("app", "unregistered", "month"):
        assert _rows(portal, by) == gateway.gateway(engine, period, by, 1)
    ehr = _rows(portal, "app")[0]
    assert ehr == {"key": "ehr", "signins": 1, "via_portal": 1, "share": 1.0, "users": 1}


def test_gateway_is_for_reviewers_only_and_names_a_bad_breakdown(portal: InProcess) -> None:
    url = "/api/v1/reports/gateway"
    assert portal.get(url).status_code == 401
    assert portal.get(url, STAFF).status_code == 403
    bad = portal.get(url, REVIEWER, params={"by": "category"})
    assert bad.status_code == 400 and "'by' must be one of" in bad.json()["message"]
    assert portal.get(url, REVIEWER, params={"from": "2026-13-01"}).status_code == 400

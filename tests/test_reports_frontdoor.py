"""The front door section of /reports (launcher/reports/frontdoor.py) on SQLite and
PostgreSQL: the headline share, the table per app (lowest share first), the apps without a
tile, the how-to when nothing was imported, and the same rows in the API, the CSV export and
``launcher report --table gateway``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from launcher.cli import main
from launcher.reports import gateway
from launcher.reports.periods import Period
from launcher.signins import importer
from tests.conftest import EXAMPLE_APPS, MakePortal
from tests.helpers import ADMIN, CLINICIAN, REVIEWER, STAFF, DemoUser, InProcess

EN = {"Accept-Language": "en"}  # the example registry's default language is Dutch
TEAMS = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"  # signin_ids in config/apps.yaml
EHR = "3b9f2d4c-8e71-4a6f-b0c2-5d8e9f1a2b63"


def _signin(rid: str, who: DemoUser, app: str, name: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "id": rid,
        "createdDateTime": at.isoformat().replace("+00:00", "Z"),
        "userId": who.sub,
        "appId": app,
        "appDisplayName": name,
        "status": {"errorCode": 0},
        "isInteractive": True,
    }


def _portal(make_portal: MakePortal, database_url: str) -> InProcess:
    return make_portal(database_url=database_url, report_min_group=1)


def _import(portal: InProcess, tmp_path: Path) -> None:
    """Staff launched Teams and signed in right after; the clinician and the admin signed in
    to Teams without the portal; the clinician launched the EHR and signed in; two people
    signed in to Miro (no tile), one to Canva (no tile)."""
    for who, app in ((STAFF, "teams"), (CLINICIAN, "ehr")):
        launched = portal.get(f"/launch/{app}", who, headers={"Sec-Fetch-Site": "same-origin"})
        assert launched.status_code == 303
    portal.flush()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    hours = dt.timedelta(hours=1)
    records = [
        _signin("s1", STAFF, TEAMS, "Microsoft Teams", now + dt.timedelta(seconds=5)),
        _signin("s2", CLINICIAN, TEAMS, "Microsoft Teams", now - 3 * hours),
        _signin("s3", ADMIN, TEAMS, "Microsoft Teams", now - 2 * hours),
        _signin("s4", CLINICIAN, EHR, "EHR", now + dt.timedelta(seconds=2)),
        _signin("s5", CLINICIAN, "miro-app", "Miro", now - hours),
        _signin("s6", STAFF, "miro-app", "Miro", now - hours),
        _signin("s7", STAFF, "canva-app", "Canva", now - hours),
    ]
    log = portal.settings.spool_dir.parent / "signins.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    mapping = portal.context.registry.current.signin_map()
    summary = importer.import_files(portal.context.engine, portal.settings, mapping, "entra", [log])
    assert summary.new == 7


def _query() -> dict[str, str]:
    today = dt.datetime.now(dt.UTC).date()
    return {"from": str(today - dt.timedelta(days=1)), "to": str(today)}


def _cli(
    portal: InProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *a: str
) -> str:
    monkeypatch.setenv("LAUNCHER_DATABASE_URL", portal.settings.database_url)
    monkeypatch.setenv("LAUNCHER_APPS_FILE", str(EXAMPLE_APPS))
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", portal.settings.secret())
    monkeypatch.setenv("LAUNCHER_REPORT_MIN_GROUP", "1")
    q = _query()
    assert main(["report", "--from", q["from"], "--to", q["to"], "--lang", "en", *a]) == 0
    return capsys.readouterr().out


def test_nothing_imported_says_how_to_import(
    make_portal: MakePortal,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    portal = _portal(make_portal, database_url)
    page = portal.get("/reports", REVIEWER, headers=EN, params={"period": "custom", **_query()})
    assert page.status_code == 200
    assert "No sign-in logs have been imported yet" in page.text
    assert "launcher import-signins --format entra FILE" in page.text
    assert "Importing sign-in logs" in page.text
    assert "Share of sign-ins through the portal:" not in page.text  # no row of zeros
    exported = portal.get(
        "/reports/export.csv",
        REVIEWER,
        headers=EN,
        params={"table": "gateway", "period": "custom", **_query()},
    )
    assert exported.status_code == 200, exported.text[-2500:]
    assert exported.text.splitlines() == [
        "app,name,signins,via_portal,share,users,change_share_points"
    ]
    assert _cli(portal, monkeypatch, capsys, "--table", "gateway", "--format", "csv") == (
        exported.text
    )


def test_front_door_section_api_csv_and_cli_agree(
    make_portal: MakePortal,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    portal = _portal(make_portal, database_url)
    _import(portal, tmp_path)
    q = _query()
    page = portal.get("/reports", REVIEWER, headers=EN, params={"period": "custom", **q})
    assert page.status_code == 200
    text = page.text
    assert "No sign-in logs have been imported yet" not in text
    # 4 sign-ins to apps with a tile, 2 right after a launch from the portal: 50 % exactly;
    # the page shows the share of the published (noisy) figures, cellkey.py
    engine, period = portal.context.engine, Period(*(dt.date.fromisoformat(v) for v in q.values()))
    exact = gateway.front_door(engine, period, 1, exact=True)
    assert (exact["signins"], exact["via_portal"], exact["share"]) == (4, 2, 0.5)
    published = gateway.front_door(engine, period, 1)
    share = published["via_portal"] / published["signins"]
    assert "Share of sign-ins through the portal:" in text and f"{share:.1%}" in text
    assert 'id="front-door-t"' in text  # the monthly trend, with its text alternative
    # lowest share first: Teams (1 of 3, give or take the noise on the 3) before the EHR
    # (1 of 1: counts of 1 carry no noise), or after it when the shares tie
    section = text[text.index('id="h-gateway"') : text.index('id="h-unregistered"')]
    teams_row = next(r for r in gateway.gateway(engine, period, "app", 1) if r["key"] == "teams")
    teams_first = teams_row["share"] < 1
    assert (section.index("Microsoft Teams") < section.index("Electronic")) == teams_first
    unregistered = text[text.index('id="h-unregistered"') : text.index('id="h-decline"')]
    assert unregistered.index("Miro") < unregistered.index("Canva")  # 2 people before 1

    for by, table in (("app", "gateway"), ("unregistered", "gateway-unregistered")):
        api = portal.get("/api/v1/reports/gateway", REVIEWER, params={**q, "by": by}).json()
        exported = portal.get(
            "/reports/export.csv",
            REVIEWER,
            headers=EN,
            params={"table": table, "period": "custom", **q},
        )
        assert exported.status_code == 200
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        fields = (
            ("signins", "users")
            if by == "unregistered"
            else ("signins", "via_portal", "share", "users")
        )
        assert sorted((r["app"], *(float(r[f]) for f in fields)) for r in rows) == sorted(
            (r["key"], *(float(r[f]) for f in fields)) for r in api["rows"]
        )
        cli = _cli(portal, monkeypatch, capsys, "--table", table, "--format", "csv")
        assert cli == exported.text
    teams = next(r for r in rows_of(portal, "gateway") if r["app"] == "teams")
    shown = (teams_row["signins"], teams_row["via_portal"], teams_row["share"])
    assert (teams["signins"], teams["via_portal"], teams["share"]) == tuple(map(str, shown))
    exact_teams = gateway.gateway(engine, period, "app", 1, exact=True)[1]
    assert (exact_teams["signins"], exact_teams["via_portal"]) == (3, 1)


def rows_of(portal: InProcess, table: str) -> list[dict[str, str]]:
    exported = portal.get(
        "/reports/export.csv",
        REVIEWER,
        headers=EN,
        params={"table": table, "period": "custom", **_query()},
    )
    return list(csv.DictReader(io.StringIO(exported.text)))

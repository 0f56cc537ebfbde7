"""``launcher demo-data`` writes the identity provider's sign-in log too (launcher/demo/signins.py)
and imports it: the front door then has a story to tell."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from launcher import db
from launcher.cli import main
from launcher.demo import signins as demo_signins
from launcher.reports import gateway
from launcher.reports.periods import Period
from tests.conftest import EXAMPLE_APPS, SECRET


def test_demo_data_imports_a_matching_entra_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    monkeypatch.setenv("LAUNCHER_DATABASE_URL", url)
    monkeypatch.setenv("LAUNCHER_APPS_FILE", str(EXAMPLE_APPS))
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", SECRET)
    assert main(["demo-data", "--months", "2", "--employees", "50", "--seed", "3"]) == 0
    capsys.readouterr()

    log = tmp_path / "var" / demo_signins.FILE  # the tests run in tmp_path
    with gzip.open(log, "rt") as f:
        records = [json.loads(line) for line in f]
    assert {"id", "createdDateTime", "userId", "appId", "appDisplayName"} <= records[0].keys()
    assert any(not r["isInteractive"] for r in records)  # skipped by the import, as real ones

    engine = db.make_engine(url)
    today = dt.datetime.now(dt.UTC).date()
    period = Period(today - dt.timedelta(days=70), today)
    apps = {r["key"]: r for r in gateway.gateway(engine, period, "app", 1)}
    assert 0 < apps["teams"]["share"] < 1  # the launches' people: their pseudonyms match
    assert 0 < gateway.front_door(engine, period, 1)["share"] < 1
    unregistered = gateway.gateway(engine, period, "unregistered", 1)
    assert "Miro" in {r["key"] for r in unregistered}
    engine.dispose()


def test_apps_drift_to_bookmarks_month_by_month() -> None:
    assert demo_signins.share("teams", 0) == demo_signins.START_SHARE
    assert demo_signins.share("sharepoint", 12) < demo_signins.share("sharepoint", 1)
    assert demo_signins.share("sharepoint", 100) == demo_signins.FLOOR

"""`launcher demo-data`, `launcher report` and `launcher db rebuild-rollups`, end to end."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from launcher import db
from launcher.cli import main
from launcher.registry import load_registry
from launcher.reports import periods, queries, tables
from tests.conftest import EXAMPLE_APPS, SECRET


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("LAUNCHER_DATABASE_URL", url)
    monkeypatch.setenv("LAUNCHER_APPS_FILE", str(EXAMPLE_APPS))
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", SECRET)
    monkeypatch.setenv("LAUNCHER_REPORT_MIN_GROUP", "3")
    return url


def test_demo_data_then_report_agrees_with_the_queries(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo-data", "--months", "3", "--employees", "150", "--seed", "1"]) == 0
    out = capsys.readouterr()
    written = int(out.out.split()[0].replace(",", ""))
    assert written > 1000 and "month 3/3" in out.err  # the progress bar

    today = dt.datetime.now(dt.UTC).date()
    start = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    args = ["report", "--from", start.isoformat(), "--to", today.isoformat(), "--lang", "en"]
    assert main([*args, "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    engine = db.make_engine(env)
    registry = load_registry(EXAMPLE_APPS)
    period = periods.Period(start, today)
    assert body["rows"] == queries.launches(engine, registry, period, "app", 3)
    assert sum(r["launches"] or 0 for r in body["rows"]) > 0

    assert main([*args, "--format", "csv", "--by", "department"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    expected = queries.launches(engine, registry, period, "department", 3)
    assert [r["department"] for r in rows] == [r["key"] for r in expected]

    assert main([*args, "--table", "summary", "--format", "csv"]) == 0
    summary = capsys.readouterr().out
    page = tables.build(engine, registry, period, today, 3).tables["summary"].csv()
    assert summary == page  # the terminal and the page's CSV export agree to the unit

    assert main([*args, "--format", "table"]) == 0
    text = capsys.readouterr().out
    assert "Launches by app" in text and "teams" in text

    assert main(["db", "rebuild-rollups"]) == 0
    assert f"{written:,} raw events" in capsys.readouterr().out
    assert queries.launches(engine, registry, period, "app", 3) == body["rows"]
    engine.dispose()


def test_report_rejects_bad_dates(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["report", "--from", "2025-02-30"]) == 1
    assert "YYYY-MM-DD" in capsys.readouterr().err

"""``launcher import-signins`` as an admin or a CronJob runs it: settings from the environment,
the registry's ``signin_ids``, one summary line, exit 1 with file, record and field named for a
file it refuses, and no raw user id anywhere in its output."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.cli import main
from tests.conftest import SECRET

REGISTRY = """
apps:
  - {id: teams, name: Teams, url: "https://teams.example.org/", signin_ids: [app-teams]}
"""


YESTERDAY = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT09:00:00Z")


def _record(rid: str, user: str, app: str, name: str = "Teams", **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "createdDateTime": YESTERDAY,
        "userId": user,
        "userPrincipalName": f"{user}@zorg.example",
        "appId": app,
        "appDisplayName": name,
        "status": {"errorCode": 0},
        "isInteractive": True,
        **extra,
    }


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    apps = tmp_path / "apps.yaml"
    apps.write_text(REGISTRY)
    url = f"sqlite:///{tmp_path}/launcher.db"
    for name, value in {
        "SECRET_KEY": SECRET,
        "DATABASE_URL": url,
        "APPS_FILE": str(apps),
        "OIDC_ISSUER": "https://login.example.org/tenant/v2.0",
        "SUBJECT_CLAIM": "oid",
    }.items():
        monkeypatch.setenv(f"LAUNCHER_{name}", value)
    return url


def _count(url: str) -> int:
    engine = db.make_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(sa.text("SELECT count(*) FROM imported_signin")).scalar_one())
    engine.dispose()
    return n


def test_import_prints_one_summary_line_and_is_idempotent(
    env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = tmp_path / "signins.json.gz"  # a Graph page, gzipped
    records = [
        _record("r1", "oid-alice-7c1f", "app-teams"),
        _record("r2", "oid-bob-99aa", "app-teams"),
        _record("r3", "oid-bob-99aa", "app-miro", "Miro"),
        _record("r4", "oid-bob-99aa", "app-teams", isInteractive=False),
    ]
    page.write_bytes(gzip.compress(json.dumps({"value": records}).encode()))

    assert main(["import-signins", "--format", "entra", "--dry-run", str(page)]) == 0
    dry = capsys.readouterr()
    assert dry.out.startswith("dry run, nothing stored: 1 file, 4 records read: 3 would be new")
    assert _count(env) == 0
    assert main(["import-signins", "--format", "entra", str(page)]) == 0
    run = capsys.readouterr()
    assert run.out.strip().splitlines() == [
        "1 file, 4 records read: 3 new, 0 already there, 1 skipped (1 non-interactive), "
        "1 unregistered app (Miro)"
    ]
    assert main(["import-signins", "--format", "entra", str(page), str(page)]) == 0
    again = capsys.readouterr()
    assert "2 files, 8 records read: 0 new, 6 already there" in again.out
    assert _count(env) == 3
    logged = dry.err + run.err + again.err  # the audit records, one per run
    assert logged.count("launcher.audit: signins_imported") == 3
    assert "new=3 known=0" in run.err and "outcome=ok" in run.err
    everything = dry.out + run.out + again.out + logged
    for raw in ("oid-alice-7c1f", "oid-bob-99aa", "zorg.example"):
        assert raw not in everything


def test_sign_ins_older_than_the_retention_are_skipped(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Months past the purge keep counts only (docs/PRIVACY.md): a late import of an old
    export adds nobody to them, and says so."""
    monkeypatch.setenv("LAUNCHER_RAW_RETENTION_DAYS", "60")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=100)).strftime("%Y-%m-%dT09:00:00Z")
    page = tmp_path / "signins.json"
    records = [_record("r1", "u1", "app-teams"), _record("r0", "u1", "app-teams")]
    records[1]["createdDateTime"] = old
    page.write_text(json.dumps(records))
    assert main(["import-signins", "--format", "entra", str(page)]) == 0
    out = capsys.readouterr().out
    assert "2 records read: 1 new, 0 already there, 1 skipped (1 older than the retention)" in out
    assert _count(env) == 1


@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param(b'[{"id": "r1"', "record 1", id="truncated JSON"),
        pytest.param(b"", "empty", id="empty file"),
        pytest.param(
            json.dumps(
                [_record("r1", "u1", "app-teams", createdDateTime="2026-11-02T09:00:00")]
            ).encode(),
            "createdDateTime",
            id="a time without a zone",
        ),
        pytest.param(
            json.dumps(
                [_record("r1", "u1", "app-teams", createdDateTime="9999-12-31T23:59:59Z")]
            ).encode(),
            "record 1: field createdDateTime: is 9999-12-31",
            id="a date no log holds",
        ),
        pytest.param(
            json.dumps([{"uuid": "x", "published": "2026-11-02T09:00:00Z"}]).encode(),
            "record 1",
            id="a file of another format",
        ),
    ],
)
def test_a_bad_file_is_refused_whole_with_exit_1_and_no_traceback(
    env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    where: str,
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps([_record("g1", "u9", "app-teams")]))
    bad.write_bytes(content)
    assert main(["import-signins", "--format", "entra", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    (message,) = [line for line in err.splitlines() if line.startswith("launcher: error: ")]
    assert "bad.json" in message and where in message, err
    assert "outcome=refused" in err  # and an audit record of the refusal
    assert "Traceback" not in err
    assert _count(env) == 1  # the good file before it is kept; nothing from the bad one


def test_an_unknown_format_is_a_usage_error(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["import-signins", "--format", "google", "x.json"])
    assert exit_.value.code == 2
    assert "invalid choice: 'google'" in capsys.readouterr().err

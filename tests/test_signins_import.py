"""Importing sign-in logs and the front-door join, on SQLite and PostgreSQL: exact figures of a
hand-built case, idempotence, refusals, order independence, purge and rebuild."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.auth.user import pseudonym
from launcher.errors import ConfigError
from launcher.events import BatchWriter, Launch, SignIn
from launcher.reports import cellkey, gateway, rebuild, rollups
from launcher.reports.periods import Period
from launcher.settings import Settings
from launcher.signins import chunks, importer, join, stage, window
from launcher.signins import rollups as signin_rollups
from launcher.signins.record import ImportRefused
from tests.test_rollups import assert_no_person_before

TZ = ZoneInfo("Europe/Amsterdam")
T = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
MAPPING = {"app-teams": "teams", "app-ehr": "ehr"}
MARCH = Period(dt.date(2025, 3, 1), dt.date(2025, 3, 31))


def _entra(
    rid: str, oid: str, app: str, at: dt.datetime, code: int = 0, interactive: bool = True
) -> dict[str, Any]:
    names = {"app-teams": "Microsoft Teams", "app-ehr": "EHR", "app-miro": "Miro"}
    return {
        "id": rid,
        "createdDateTime": at.isoformat().replace("+00:00", "Z"),
        "userId": oid,
        "userPrincipalName": f"{oid}@example.org",
        "appId": app,
        "appDisplayName": names[app],
        "status": {"errorCode": code},
        "isInteractive": interactive,
    }


def _s(seconds: float) -> dt.datetime:
    return T + dt.timedelta(seconds=seconds)


# The hand-built case. Alice (nursing) launched Teams at T; Bob (medical) launched the EHR at
# T + 1 h; Carol (nursing, signed in to the portal) never launched. A sign-in counts as through
# the portal when a launch of that app by that person lies in [sign-in - 120 s, sign-in + 10 s].
RECORDS = [
    _entra("r01", "alice", "app-teams", _s(30)),  # 30 s after the launch: through the portal
    _entra("r02", "alice", "app-teams", _s(-5)),  # the launch 5 s after it: through
    _entra("r03", "alice", "app-teams", _s(-11)),  # the launch 11 s after: not
    _entra("r04", "alice", "app-teams", _s(121)),  # 121 s after: not
    _entra("r05", "alice", "app-teams", _s(120)),  # 120 s after: through
    _entra("r06", "alice", "app-ehr", _s(10)),  # another app: not
    _entra("r07", "bob", "app-ehr", _s(3660)),  # 60 s after Bob's launch: through
    _entra("r08", "bob", "app-teams", _s(30)),  # Alice launched Teams, not Bob: not
    _entra("r09", "alice", "app-teams", _s(20), code=50126),  # failed: skipped
    _entra("r10", "alice", "app-teams", _s(25), interactive=False),  # skipped
    _entra("r11", "bob", "app-miro", _s(7200)),  # no tile: unregistered
    _entra("r12", "alice", "app-miro", _s(10800)),  # unregistered
    _entra("r13", "carol", "app-teams", _s(18000)),  # no launch: not
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, subject_claim="oid")


def _uid(settings: Settings, oid: str) -> str:
    assert settings.oidc_issuer
    return pseudonym(settings.pseudonym_secret(), settings.oidc_issuer, oid)


def _portal_events(settings: Settings) -> tuple[list[Launch], list[SignIn]]:
    def u(oid: str) -> str:
        return _uid(settings, oid)

    launches = [
        Launch(T, "teams", u("alice"), "nursing", "portal"),
        Launch(_s(3600), "ehr", u("bob"), "medical", "direct"),  # a bookmark of /launch/ehr
    ]
    return launches, [SignIn(_s(-60), u("carol"), "nursing")]


def _write_portal(engine: sa.Engine, settings: Settings, tmp_path: Path) -> None:
    writer = BatchWriter(engine, tmp_path / "spool", on_flush=rollups.apply)
    launches, signins = _portal_events(settings)
    writer.write("b1", launches[:1], signins, TZ)
    writer.write("b2", launches[1:], [], TZ)


def _file(tmp_path: Path, records: list[Any], name: str = "signins.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"value": records}))
    return path


def _import(engine: sa.Engine, settings: Settings, *paths: Path, **kw: Any) -> Any:
    return importer.import_files(engine, settings, MAPPING, "entra", list(paths), **kw)


def _snapshot(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for t in join.GATEWAY_TABLES:
            out[t.name] = sorted(tuple(r) for r in conn.execute(sa.select(t)))
        i = join.T_IMPORTED
        cols = [c for c in i.c if c.name != "id"]
        out[i.name] = sorted(
            tuple(str(v) for v in r) for r in conn.execute(sa.select(*cols))
        )  # str: SQLite and PostgreSQL return times differently
    return out


def test_the_hand_built_case_gives_exact_figures(settings: Settings, tmp_path: Path) -> None:
    engine = db.make_engine(settings.database_url)
    _write_portal(engine, settings, tmp_path)
    summary = _import(engine, settings, _file(tmp_path, RECORDS))
    assert (summary.read, summary.new, summary.already) == (13, 11, 0)
    assert summary.skipped == {"failed": 1, "non-interactive": 1}
    assert dict(summary.unregistered) == {"Miro": 2}
    assert str(summary) == (
        "1 file, 13 records read: 11 new, 0 already there, 2 skipped (1 failed, "
        "1 non-interactive), 1 unregistered app (Miro)"
    )

    assert gateway.gateway(engine, MARCH, "app", 1, exact=True) == [
        {"key": "ehr", "signins": 2, "via_portal": 1, "share": 0.5, "users": 2},
        {"key": "teams", "signins": 7, "via_portal": 3, "share": 0.429, "users": 3},
    ]
    assert gateway.gateway(engine, MARCH, "department", 1, exact=True) == [
        {"key": "medical", "signins": 2, "via_portal": 1, "share": 0.5, "users": 1},
        {"key": "nursing", "signins": 7, "via_portal": 3, "share": 0.429, "users": 2},
    ]
    assert gateway.gateway(engine, MARCH, "month", 1, exact=True) == [
        {"key": "2025-03", "signins": 9, "via_portal": 4, "share": 0.444, "users": 3}
    ]
    assert gateway.gateway(engine, MARCH, "unregistered", 1, exact=True) == [
        {"key": "Miro", "signins": 2, "users": 2}
    ]
    assert gateway.front_door(engine, MARCH, 1, exact=True) == {
        "signins": 9,
        "via_portal": 4,
        "share": 0.444,
        "users": 3,
    }
    # a period of days reads the daily rollups: the same figures for the day
    day = Period(T.date(), T.date())
    assert gateway.gateway(engine, day, "app", 1, exact=True) == gateway.gateway(
        engine, MARCH, "app", 1, exact=True
    )
    # published: with noise (cellkey.py), the same for the same sign-ins, within its bound,
    # and the share the quotient of the two figures shown
    published = gateway.gateway(engine, MARCH, "app", 1)
    assert gateway.gateway(engine, day, "app", 1) == published
    exact = gateway.gateway(engine, MARCH, "app", 1, exact=True)
    for row, true in zip(published, exact, strict=True):
        for column in ("signins", "via_portal", "users"):
            assert abs(row[column] - true[column]) <= cellkey.max_noise(true[column])
            assert row[column] >= 1
        assert row["via_portal"] <= row["signins"] and row["users"] <= row["signins"]
        assert row["share"] == round(row["via_portal"] / row["signins"], 3)
    assert (
        gateway.gateway(engine, Period(dt.date(2025, 4, 1), dt.date(2025, 4, 30)), "app", 1) == []
    )
    assert gateway.imported(engine) == (T.date(), T.date())

    # the raw user ids, UPNs and e-mail addresses are nowhere in the database
    with engine.connect() as conn:
        stored = " ".join(str(r) for r in conn.execute(sa.select(join.T_IMPORTED)))
    for raw in ("alice", "bob", "carol", "example.org"):
        assert raw not in stored
    engine.dispose()


def test_suppression_hides_small_groups(settings: Settings, tmp_path: Path) -> None:
    engine = db.make_engine(settings.database_url)
    _write_portal(engine, settings, tmp_path)
    _import(engine, settings, _file(tmp_path, RECORDS))
    # medical is one person: hidden. Nursing stays: the noise on both figures, not a second
    # hidden row, is what keeps "the month's total minus nursing" from giving medical away
    # (tests/test_reports_gateway_privacy.py runs that attack)
    assert gateway.gateway(engine, MARCH, "department", 2, exact=True) == [
        {"key": "medical", "signins": None, "via_portal": None, "share": None, "users": None,
         "suppressed": True},
        {"key": "nursing", "signins": 7, "via_portal": None, "share": None, "users": 2},
    ]  # fmt: skip
    # teams: 3 people, of whom 1 came through the portal: the split is about too few people
    assert gateway.gateway(engine, MARCH, "app", 2, exact=True) == [
        {"key": "ehr", "signins": 2, "via_portal": None, "share": None, "users": 2},
        {"key": "teams", "signins": 7, "via_portal": None, "share": None, "users": 3},
    ]
    assert gateway.gateway(engine, MARCH, "unregistered", 3)[0]["suppressed"] is True
    assert gateway.front_door(engine, MARCH, 4) == {
        "signins": None, "via_portal": None, "share": None, "users": None, "suppressed": True
    }  # fmt: skip
    engine.dispose()


def test_launches_first_or_import_first_give_the_same_figures(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(settings.database_url)
    _write_portal(engine, settings, tmp_path / "a")
    _import(engine, settings, _file(tmp_path, RECORDS))
    launches_first = _snapshot(engine)
    assert sum(r[5] for r in launches_first["signin_day"]) == 4  # via_portal

    with engine.begin() as conn:  # start again, the other way round
        for t in [*join.GATEWAY_TABLES, join.T_IMPORTED, *rollups.ROLLUP_TABLES]:
            conn.execute(sa.delete(t))
        conn.execute(sa.text("DELETE FROM launch_event"))
        conn.execute(sa.text("DELETE FROM signin_event"))
        conn.execute(sa.text("DELETE FROM event_batch"))
    for dialect in importer.FOLD_ROWS:  # folded in slices: the same rollups
        monkeypatch.setitem(importer.FOLD_ROWS, dialect, 2)
    monkeypatch.setattr(importer, "FOLD_KEYS", 2)  # SQLite: written out every few rows
    _import(engine, settings, _file(tmp_path, RECORDS))
    assert gateway.front_door(engine, MARCH, 1, exact=True)["via_portal"] == 0
    _write_portal(engine, settings, tmp_path / "b")
    assert _snapshot(engine) == launches_first

    rebuild.rebuild(engine, TZ)
    assert _snapshot(engine) == launches_first
    engine.dispose()


@pytest.mark.postgres
def test_launches_written_during_an_import_meet_its_rows(
    make_settings: Callable[..., Settings],
    postgres_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The launch writer is not held off while the chunks are moved: launches that come in
    meanwhile are matched with the file's rows in phase 2, and the figures are those of
    launches first. PostgreSQL only: on SQLite the import holds the one write lock, so no
    launch can come in meanwhile."""
    from tests.conftest import _reset

    _reset(postgres_server)
    settings = make_settings(database_url=postgres_server, subject_claim="oid")
    engine = db.make_engine(settings.database_url)
    _write_portal(engine, settings, tmp_path / "a")
    _import(engine, settings, _file(tmp_path, RECORDS))
    launches_first = _snapshot(engine)
    with engine.begin() as conn:  # start again, the launches arriving during the import
        for t in [*join.GATEWAY_TABLES, join.T_IMPORTED, *rollups.ROLLUP_TABLES]:
            conn.execute(sa.delete(t))
        for name in ("launch_event", "signin_event", "event_batch", "user_first"):
            conn.execute(sa.text(f"DELETE FROM {name}"))
    store = stage.Stage.store

    def meanwhile(self: stage.Stage, chunk: chunks.Chunk) -> int:
        new = store(self, chunk)
        _write_portal(engine, settings, tmp_path / "b")
        return new

    monkeypatch.setattr(stage.Stage, "store", meanwhile)
    _import(engine, settings, _file(tmp_path, RECORDS))
    assert _snapshot(engine) == launches_first
    engine.dispose()


@pytest.mark.parametrize("probe", ["per row", "joined"])
def test_the_window_is_exact_to_the_microsecond_in_either_order(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probe: str
) -> None:
    """The import matches inside the database (SQLite: shifting the stored text by whole
    seconds), a launch flush in Python: both draw the window's edges at the same microsecond.
    On PostgreSQL a chunk probes the launches row by row or, when its time range holds few,
    in one join (launcher/signins/stage.py): both ways alike."""
    monkeypatch.setattr(stage, "JOIN_LAUNCHES", -1 if probe == "per row" else 10**6)
    chosen: list[bool] = []
    few = stage.Stage._few_launches

    def spy(self: stage.Stage, *args: Any) -> bool:
        chosen.append(few(self, *args))
        return chosen[-1]

    monkeypatch.setattr(stage.Stage, "_few_launches", spy)
    launch = T + dt.timedelta(microseconds=250_001)
    us = dt.timedelta(microseconds=1)
    edges = {  # sign-in time -> through the portal
        launch + join.BEFORE: True,
        launch + join.BEFORE + us: False,
        launch - join.AFTER: True,
        launch - join.AFTER - us: False,
    }
    records = [_entra(f"e{i}", "alice", "app-teams", at) for i, at in enumerate(edges)]
    alice = _uid(settings, "alice")
    for order in ("launch first", "import first"):
        engine = db.make_engine(settings.database_url)
        with engine.begin() as conn:
            for t in [*join.GATEWAY_TABLES, join.T_IMPORTED, *rollups.ROLLUP_TABLES]:
                conn.execute(sa.delete(t))
            for name in ("launch_event", "signin_event", "event_batch"):
                conn.execute(sa.text(f"DELETE FROM {name}"))
        writer = BatchWriter(engine, tmp_path / order / "spool", on_flush=rollups.apply)
        if order == "launch first":
            writer.write("b", [Launch(launch, "teams", alice, "nursing", "portal")], [], TZ)
        _import(engine, settings, _file(tmp_path, records))
        if order == "import first":
            writer.write("b", [Launch(launch, "teams", alice, "nursing", "portal")], [], TZ)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(join.T_IMPORTED.c.record_id, join.T_IMPORTED.c.via_portal)
            )
            got = {str(r): int(v) for r, v in rows}
        assert got == {f"e{i}": int(via) for i, via in enumerate(edges.values())}, order
        engine.dispose()
    if not settings.database_url.startswith("sqlite"):  # the way asked was taken
        assert set(chosen) == {probe == "joined"}


@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(1, 1, 1, 0, 0, 30, tzinfo=dt.UTC),
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime.now(dt.UTC) + dt.timedelta(days=3),
    ],
    ids=["year 1", "before 2000", "year 9999", "three days ahead"],
)
def test_a_sign_in_out_of_the_logs_years_refuses_its_file(
    settings: Settings, tmp_path: Path, at: dt.datetime
) -> None:
    """A date no sign-in log holds is a broken export: the file is refused with the record and
    the field named (not an OverflowError, nor thousands of empty months of rollups)."""
    engine = db.make_engine(settings.database_url)
    good = _entra("fine", "oid-alice", "app-teams", T)
    path = _file(tmp_path, [good, _entra("edge", "oid-alice", "app-teams", at)])
    with pytest.raises(ImportRefused, match=r"record 2: field createdDateTime: is \d{4}-"):
        _import(engine, settings, path)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(join.T_IMPORTED)).scalar() == 0
    engine.dispose()


def test_each_sign_in_matches_once(settings: Settings, tmp_path: Path) -> None:
    """Two launches around one sign-in, arriving in two batches after the import."""
    engine = db.make_engine(settings.database_url)
    _import(engine, settings, _file(tmp_path, RECORDS[:1]))
    writer = BatchWriter(engine, tmp_path / "spool", on_flush=rollups.apply)
    alice = _uid(settings, "alice")
    writer.write("b1", [Launch(T, "teams", alice, "nursing", "portal")], [], TZ)
    writer.write("b2", [Launch(_s(1), "teams", alice, "nursing", "portal")], [], TZ)
    assert gateway.front_door(engine, MARCH, 1, exact=True) == {
        "signins": 1, "via_portal": 1, "share": 1.0, "users": 1
    }  # fmt: skip
    engine.dispose()


def test_the_same_file_twice_and_overlapping_exports_count_once(
    settings: Settings, tmp_path: Path
) -> None:
    engine = db.make_engine(settings.database_url)
    first = _file(tmp_path, RECORDS[:8], "week1.json")
    second = tmp_path / "week2.jsonl.gz"  # overlaps the first, as JSON lines, gzipped
    second.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in RECORDS[5:]).encode()))
    assert _import(engine, settings, first).new == 8
    once = _snapshot(engine)
    again = _import(engine, settings, first)
    assert (again.new, again.already) == (0, 8)
    assert _snapshot(engine) == once
    both = _import(engine, settings, second)
    assert (both.read, both.new, both.already) == (8, 3, 3)  # r06-r08 seen, 2 skipped
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(join.T_IMPORTED)).scalar() == 11
    assert gateway.front_door(engine, MARCH, 1, exact=True)["signins"] == 9
    engine.dispose()


def test_two_imports_at_once_count_each_record_once(settings: Settings, tmp_path: Path) -> None:
    engine = db.make_engine(settings.database_url)
    many = [_entra(f"m{i:05d}", f"user{i % 50}", "app-teams", _s(i)) for i in range(3000)]
    paths = [_file(tmp_path, many, "a.json"), _file(tmp_path, many[1000:], "b.json")]
    summaries: list[Any] = []
    errors: list[BaseException] = []

    def run(path: Path) -> None:
        try:
            summaries.append(_import(engine, settings, path))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(s.new for s in summaries) == 3000
    assert sum(s.already for s in summaries) == 2000
    assert gateway.front_door(engine, MARCH, 1, exact=True)["signins"] == 3000
    engine.dispose()


def _bad(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(text)
    return path


GOOD = json.dumps(RECORDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(GOOD[:-40], "bad.json: record 13: truncated JSON", id="truncated JSON"),
        pytest.param(
            json.dumps([*RECORDS[:4], {k: v for k, v in RECORDS[4].items() if k != "appId"}]),
            "bad.json: record 5: field appId: missing",
            id="a record missing a field",
        ),
        pytest.param(
            json.dumps([*RECORDS[:2], {**RECORDS[2], "createdDateTime": "2025-03-03T09:00:00"}]),
            "bad.json: record 3: field createdDateTime: has no time zone",
            id="a timestamp without a zone",
        ),
        pytest.param("", "bad.json: is empty", id="an empty file"),
        pytest.param(
            json.dumps(
                [
                    {
                        "id": "k",
                        "time": 1740992400000,
                        "type": "LOGIN",
                        "clientId": "c",
                        "userId": "u",
                    }
                ]
            ),
            "bad.json: record 1: field createdDateTime: missing",
            id="a file of another format",
        ),  # fmt: skip
        pytest.param("time,user\n", "bad.json: is not JSON", id="not JSON at all"),
    ],
)
def test_a_malformed_file_is_refused_whole(
    settings: Settings, tmp_path: Path, text: str, message: str
) -> None:
    engine = db.make_engine(settings.database_url)
    good = _file(tmp_path, RECORDS[:1], "good.json")
    with pytest.raises(ImportRefused) as caught:
        _import(engine, settings, good, _bad(tmp_path, text))
    assert message in str(caught.value)
    assert "alice" not in str(caught.value)
    with engine.connect() as conn:  # the good file before it is stored, nothing of the bad
        ids = conn.execute(sa.select(join.T_IMPORTED.c.record_id)).scalars().all()
        assert ids == ["r01"]
        assert conn.execute(sa.select(sa.func.sum(join.T_SIGNIN_DAY.c.signins))).scalar() == 1
    engine.dispose()


def test_an_unknown_format_or_no_issuer_is_refused(
    make_settings: Callable[..., Settings], sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    path = _file(tmp_path, RECORDS)
    with pytest.raises(ConfigError, match="unknown sign-in log format 'azure'"):
        importer.import_files(engine, make_settings(), MAPPING, "azure", [path])
    with pytest.raises(ConfigError, match="LAUNCHER_OIDC_ISSUER"):
        importer.import_files(engine, make_settings(oidc_issuer=None), MAPPING, "entra", [path])
    engine.dispose()


def test_a_dry_run_checks_and_stores_nothing(settings: Settings, tmp_path: Path) -> None:
    engine = db.make_engine(settings.database_url)
    _import(engine, settings, _file(tmp_path, RECORDS[:3], "first.json"))
    before = _snapshot(engine)
    summary = _import(engine, settings, _file(tmp_path, RECORDS), dry_run=True)
    assert (summary.new, summary.already) == (8, 3)
    assert str(summary).startswith(
        "dry run, nothing stored: 1 file, 13 records read: 8 would be new"
    )
    assert _snapshot(engine) == before
    with pytest.raises(ImportRefused):
        _import(engine, settings, _bad(tmp_path, GOOD[:-40]), dry_run=True)
    engine.dispose()


def test_progress_is_reported(settings: Settings, tmp_path: Path) -> None:
    engine = db.make_engine(settings.database_url)
    path = _file(tmp_path, RECORDS)
    seen: list[tuple[int, int, int]] = []
    _import(engine, settings, path, progress=lambda p, n, done, size: seen.append((n, done, size)))
    size = path.stat().st_size
    assert seen and seen[-1] == (13, size, size)
    engine.dispose()


def test_purge_deletes_old_imported_sign_ins_and_a_rebuild_keeps_their_rollups(
    settings: Settings, tmp_path: Path
) -> None:
    engine = db.make_engine(settings.database_url)
    _write_portal(engine, settings, tmp_path)
    later = [
        {
            **r,
            "id": "apr-" + r["id"],
            "createdDateTime": r["createdDateTime"].replace("-03-", "-04-"),
        }
        for r in RECORDS
    ]
    may = [
        {
            **r,
            "id": "may-" + r["id"],
            "createdDateTime": r["createdDateTime"].replace("-03-", "-05-"),
        }
        for r in RECORDS
    ]
    dave = _entra("r14", "dave", "app-teams", _s(7000))  # signed in in March only
    _import(engine, settings, _file(tmp_path, [*RECORDS, dave, *later, *may]))
    before = _snapshot(engine)
    spring = Period(MARCH.start, dt.date(2025, 4, 30))
    figures = {
        (period, by, exact): _gateway(engine, period, by, exact)
        for period in (MARCH, spring)
        for by in (None, *gateway.BY_VALUES)
        for exact in (True, False)
    }
    now = dt.datetime(2025, 5, 10, tzinfo=dt.UTC)  # 35 days back is 5 April: March goes
    rebuild.purge_raw(engine, retention_days=35, tz=TZ, now=now)
    with engine.connect() as conn:
        left = conn.execute(sa.select(join.T_IMPORTED.c.record_id)).scalars().all()
    skipped = ("r09", "r10")
    assert sorted(left) == sorted(r["id"] for r in [*later, *may] if r["id"][4:] not in skipped)
    # the per-person rows of March went with the raw rows (docs/PRIVACY.md): no table holds
    # Dave any more, nor anyone's March
    assert_no_person_before(engine, dt.date(2025, 4, 1), {_uid(settings, "dave")}, launches=False)
    after = _snapshot(engine)
    assert after["signin_day"] == before["signin_day"]  # the counts stay
    assert before["signin_month_users"] == [] and after["signin_month_users"]
    # March's figures are what they were, people and noise included: its distinct people
    # were counted into signin_month_users before its per-person rows went
    for (period, by, exact), rows in figures.items():
        if period == MARCH:
            assert _gateway(engine, period, by, exact) == rows, (by, exact)
    # across March and April the distinct people can no longer be counted: sign-ins only,
    # but for a key with sign-ins in March only (Dave's department, unknown), one whole month
    april = Period(dt.date(2025, 4, 1), dt.date(2025, 4, 30))
    for by in (None, "app", "department"):
        in_april = {r.get("key") for r in _gateway(engine, april, by, True)}
        for old, new in zip(
            figures[(spring, by, True)], _gateway(engine, spring, by, True), strict=True
        ):
            assert new["signins"] == old["signins"], (by, old, new)
            if old.get("key") in in_april:
                assert (new["users"], new["via_portal"], new["share"]) == (None, None, None)
            else:
                assert new == old and old["key"] == "unknown"
    with engine.begin() as conn:  # lose May's rollups: the rebuild must bring them back
        signin_rollups.clear_from(conn, dt.date(2025, 5, 1))
    lost = _snapshot(engine)
    assert lost["signin_person_month"] != after["signin_person_month"]
    assert lost["signin_user_span"] != after["signin_user_span"]  # May's bits cleared
    rebuild.rebuild(engine, TZ)
    rebuilt = _snapshot(engine)
    for name in [t.name for t in join.GATEWAY_TABLES]:
        assert rebuilt[name] == after[name], name
    assert gateway.gateway(engine, MARCH, "app", 1, exact=True)[1]["via_portal"] == 3
    engine.dispose()


def _gateway(engine: sa.Engine, period: Period, by: str | None, exact: bool) -> list[Any]:
    if by is None:
        return [gateway.front_door(engine, period, 1, exact=exact)]
    return gateway.gateway(engine, period, by, 1, exact=exact)


def test_the_importer_pseudonymises_as_sign_in_does(settings: Settings) -> None:
    assert settings.oidc_issuer
    key = hmac.new(settings.pseudonym_secret(), digestmod=hashlib.sha256)
    key.update(f"{settings.oidc_issuer}\0".encode())
    assert chunks.pseudonym(key, "alice") == _uid(settings, "alice")


@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(2025, 3, 3, 9, 0, 0),
        dt.datetime(2025, 3, 3, 9, 0, 49, 999_999),
        dt.datetime(2025, 3, 3, 9, 0, 50),
        dt.datetime(2025, 3, 3, 9, 1, 59, 123_456),
        dt.datetime(2024, 2, 29, 23, 59, 55),  # a leap day's last minute
        dt.datetime(2025, 1, 1, 0, 1, 10),  # the window starts in the year before
        dt.datetime(2025, 12, 31, 23, 59, 59, 999_999),  # and ends in the year after
    ],
)
def test_the_sqlite_window_edges_are_the_datetime_arithmetic(at: dt.datetime) -> None:
    """The reading process writes the window's edges from the minute's text (window.Window);
    they are exactly the stored text of the sign-in's time minus BEFORE and plus AFTER."""
    edges = window.Window()
    text = at.isoformat(" ", "microseconds")
    for _ in range(2):  # the minute made, then the minute kept
        assert edges.edges(at.replace(tzinfo=dt.UTC), text) == (
            (at - join.BEFORE).isoformat(" ", "microseconds"),
            (at + join.AFTER).isoformat(" ", "microseconds"),
        )

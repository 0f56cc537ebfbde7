"""The gateway rollups (launcher/signins/rollups.py) against a naive count over the imported
rows, on SQLite and PostgreSQL: distinct users from span rows (whole months) and month rows
(days of a month covered in part), over periods within a month, across months, across the turn
of a year and longer than the two years of a span row; and the same after a rebuild. Each
figure with its cell key: the sum of its sign-ins' record keys or its people's keys, whichever
of the import, a later launch's match or a department move put it there."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher import db
from launcher.auth.user import pseudonym
from launcher.events import BatchWriter, Launch
from launcher.reports import cellkey, gateway, rebuild, rollups
from launcher.reports.cellkey import Count
from launcher.reports.periods import Period
from launcher.settings import Settings
from launcher.signins import importer, join

TZ = ZoneInfo("Europe/Amsterdam")
MAPPING = {"app-teams": "teams", "app-ehr": "ehr"}
NAMES = {"app-teams": "Microsoft Teams", "app-ehr": "EHR", "app-miro": "Miro"}
PEOPLE = {f"p{i}": ("nursing", "medical", "it")[i % 3] for i in range(8)}
FIRST = dt.date(2023, 11, 1)
DAYS = 800  # into 2026: three span rows


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, subject_claim="oid")


def _history(settings: Settings, tmp_path: Path) -> tuple[sa.Engine, list[dict[str, Any]]]:
    """Sign-ins on random days; for a third of them a launch 30 s before (through the portal),
    half of those launched before the import and half after."""
    rnd = random.Random(7)
    records: list[dict[str, Any]] = []
    early: list[Launch] = []
    late: list[Launch] = []
    assert settings.oidc_issuer
    for i in range(700):
        oid = rnd.choice(list(PEOPLE))
        app = rnd.choice(list(NAMES))
        at = dt.datetime.combine(
            FIRST + dt.timedelta(days=rnd.randrange(DAYS)), dt.time(), tzinfo=dt.UTC
        ) + dt.timedelta(seconds=rnd.randrange(86400))
        records.append(
            {
                "id": f"r{i}",
                "createdDateTime": at.isoformat().replace("+00:00", "Z"),
                "userId": oid,
                "appId": app,
                "appDisplayName": NAMES[app],
                "status": {"errorCode": 0},
                "isInteractive": True,
            }
        )
        if app in MAPPING and rnd.random() < 0.35:
            uid = pseudonym(settings.pseudonym_secret(), settings.oidc_issuer, oid)
            launch = Launch(at - dt.timedelta(seconds=30), MAPPING[app], uid, PEOPLE[oid], "portal")
            (early if rnd.random() < 0.5 else late).append(launch)
    engine = db.make_engine(settings.database_url)
    writer = BatchWriter(engine, tmp_path / "spool", on_flush=rollups.apply)
    for n, launch in enumerate(early):
        writer.write(f"e{n}", [launch], [], TZ)
    path = tmp_path / "signins.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    importer.import_files(engine, settings, MAPPING, "entra", [path])
    for n, launch in enumerate(late):
        writer.write(f"l{n}", [launch], [], TZ)
    return engine, records


def _naive(engine: sa.Engine, period: Period, by: str | None) -> dict[str, list[Count]]:
    """[sign-ins, through the portal, users, users through the portal] from the raw rows,
    each with its cell key (the sum of the records' or people's keys, cellkey.py)."""
    i = join.T_IMPORTED
    out: dict[str, list[Any]] = defaultdict(lambda: [[0, 0], [0, 0], set(), set()])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(i.c.ts, i.c.app_id, i.c.provider_app, i.c.user_id,
                                      i.c.department, i.c.via_portal, i.c.provider,
                                      i.c.record_id)).all()  # fmt: skip
    for ts, app, provider_app, user, dept, via, provider, record_id in rows:
        day = join.from_db_time(ts).date()
        if not period.start <= day <= period.end or (app == "") != (by == "unregistered"):
            continue
        key = {
            None: "all",
            "app": app,
            "unregistered": provider_app,
            "department": dept,
            "month": day.strftime("%Y-%m"),
        }[by]
        f = out[key]
        record_key = cellkey.imported_key(user, provider, record_id)
        f[0][0] += 1
        f[0][1] += record_key
        f[1][0] += via
        f[1][1] += via * record_key
        f[2].add(user)
        if via:
            f[3].add(user)

    def people(users: set[str]) -> Count:
        return len(users), sum(cellkey.person_key(u) for u in users) % cellkey.MOD

    return {
        k: [(n, nk % cellkey.MOD), (v, vk % cellkey.MOD), people(f[2]), people(f[3])]
        for k, f in out.items()
        for (n, nk), (v, vk) in [(f[0], f[1])]
    }


PERIODS = [
    Period(dt.date(2024, 3, 1), dt.date(2024, 3, 31)),  # a month
    Period(dt.date(2024, 3, 5), dt.date(2024, 3, 19)),  # days of a month
    Period(dt.date(2024, 2, 20), dt.date(2024, 3, 20)),  # 30 days over two months
    Period(dt.date(2024, 10, 1), dt.date(2024, 12, 31)),  # a quarter
    Period(dt.date(2024, 12, 10), dt.date(2025, 12, 9)),  # 365 days over the turn of a year
    Period(dt.date(2025, 1, 1), dt.date(2025, 12, 31)),  # a calendar year
    Period(dt.date(2023, 11, 15), dt.date(2026, 1, 10)),  # over three span rows, parts at both ends
]


def test_figures_equal_a_naive_count_over_the_raw_rows(settings: Settings, tmp_path: Path) -> None:
    engine, _ = _history(settings, tmp_path)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.sum(join.T_IMPORTED.c.via_portal))).scalar()
    for period in PERIODS:
        for by in (None, *gateway.BY_VALUES):
            want = _naive(engine, period, by)
            assert want, (period, by)
            assert gateway._figures(engine, period, by) == want, (period, by)

    rebuild.rebuild(engine, TZ)  # the rollups again from the raw rows: the same figures
    for period in PERIODS:
        for by in (None, *gateway.BY_VALUES):
            assert gateway._figures(engine, period, by) == _naive(engine, period, by), (period, by)
    engine.dispose()

"""Where launches start (launches by source per month) and announcement reach on /reports, on
both databases: exact figures of a hand-built case, suppression, the rollup kept per flush
against a rebuild and a recount, the purge, and the API, CSV export, ``launcher report`` and
page showing the same rows (launcher/reports/sources.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from launcher.cli import main
from launcher.engage import announcements
from launcher.events import BatchWriter, Launch
from launcher.registry import Registry, load_registry
from launcher.reports import cellkey, rebuild, rollups, sources, tables
from launcher.reports.periods import Period
from tests.helpers import EXAMPLE_APPS, REVIEWER, SECRET, InProcess
from tests.reports_support import far_from_utc, insert_launches, utc

TZ = ZoneInfo("Europe/Amsterdam")
MARCH = Period(dt.date(2025, 3, 1), dt.date(2025, 3, 31))
T_MS, T_UMS = sources.T_MONTH_SOURCE, sources.T_USER_MONTH_SOURCE


# (UTC time, app, user, source): March has 6 people launching from a tile (8 launches), 5 from
# the digest (exactly the minimum group), 2 from the search (suppressed); the edges of the
# month in UTC fall on either side.
CASE = [
    *[("2025-03-03 08:00:00", "teams", f"u{i}", "portal") for i in range(1, 7)],
    ("2025-03-10 09:00:00", "ehr", "u1", "portal"),
    ("2025-03-31 23:59:59", "ehr", "u2", "portal"),
    *[("2025-03-17 07:30:00", "outlook", f"u{i}", "digest") for i in range(1, 6)],
    ("2025-03-05 10:00:00", "teams", "u1", "search"),
    ("2025-03-06 10:00:00", "teams", "u1", "search"),
    ("2025-03-07 10:00:00", "ehr", "u2", "search"),
    ("2025-02-28 23:59:59", "teams", "u7", "search"),  # February in UTC
    ("2025-04-01 00:00:00", "teams", "u7", "direct"),  # April in UTC
]


@pytest.fixture
def registry() -> Registry:
    return load_registry(EXAMPLE_APPS)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    yield from far_from_utc(database_url)


def _launches(case: Sequence[tuple[str, str, str, str]]) -> list[Launch]:
    return [Launch(utc(ts), app, user, "nursing", source) for ts, app, user, source in case]


class _Store(BatchWriter):
    """The event writer with the rollups, as the portal runs it; one call, one batch."""

    def __init__(self, engine: sa.Engine, tmp_path: Path) -> None:
        super().__init__(engine, tmp_path / "spool", on_flush=rollups.apply)
        self.batches = 0

    def launches(self, launches: list[Launch]) -> None:
        self.batches += 1
        self.write(f"sources-{self.batches}", launches, [], TZ)


def _rows(engine: sa.Engine, t: sa.Table) -> list[tuple[Any, ...]]:
    cols = sorted(t.c, key=lambda c: c.name)
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(*cols)))


def _row(month: str, source: str, launches: int, users: int) -> dict[str, Any]:
    return {
        "key": f"{month}/{source}",
        "month": month,
        "source": source,
        "launches": launches,
        "users": users,
    }


def _hidden(month: str, source: str) -> dict[str, Any]:
    return {**_row(month, source, 0, 0), "launches": None, "users": None, "suppressed": True}


def test_exact_figures_of_a_hand_built_case_and_suppression(
    engine: sa.Engine, tmp_path: Path
) -> None:
    _Store(engine, tmp_path).launches(_launches(CASE))
    # the figures before their noise: whole UTC months, sources in the report's order
    assert sources.by_month(engine, MARCH, 5, exact=True) == [
        _row("2025-03", "portal", 8, 6),
        _hidden("2025-03", "search"),  # 2 people
        _row("2025-03", "digest", 5, 5),  # exactly the minimum: shown
    ]
    # a range asks for every month it touches, whole
    touching = Period(dt.date(2025, 2, 28), dt.date(2025, 4, 1))
    assert sources.by_month(engine, touching, 1, exact=True) == [
        _row("2025-02", "search", 1, 1),
        _row("2025-03", "portal", 8, 6),
        _row("2025-03", "search", 3, 2),
        _row("2025-03", "digest", 5, 5),
        _row("2025-04", "direct", 1, 1),
    ]
    # published: the same rows and suppression, each count within the noise of the truth
    published = sources.by_month(engine, MARCH, 5)
    assert [(r["key"], r.get("suppressed", False)) for r in published] == [
        ("2025-03/portal", False),
        ("2025-03/search", True),
        ("2025-03/digest", False),
    ]
    assert published[1] == _hidden("2025-03", "search")
    for row, (launches, users) in zip((published[0], published[2]), ((8, 6), (5, 5)), strict=True):
        assert abs(row["users"] - users) <= 2 and abs(row["launches"] - launches) <= 2, row
        assert row["launches"] >= row["users"] > 0
    # the noise is the cell key's: the same rows give the same figures
    digest_key = sum(cellkey.person_key(f"u{i}") for i in range(1, 6))
    assert published[2]["users"] == cellkey.perturb(5, digest_key % cellkey.MOD)
    assert sources.by_month(engine, MARCH, 5) == published


def test_a_person_counts_once_per_month_and_source_across_batches(
    engine: sa.Engine, tmp_path: Path
) -> None:
    store = _Store(engine, tmp_path)
    for event in _launches(CASE):  # one batch per launch: every person arrives again
        store.launches([event])
    assert sources.by_month(engine, MARCH, 1, exact=True) == [
        _row("2025-03", "portal", 8, 6),
        _row("2025-03", "search", 3, 2),
        _row("2025-03", "digest", 5, 5),
    ]
    assert store.batches == len(CASE)


def _random_launches(n: int, seed: int = 11) -> list[Launch]:
    rnd = random.Random(seed)
    start = dt.datetime(2025, 1, 20, tzinfo=dt.UTC)
    names = [*sources.SOURCES, "tile"]  # an older stored value counts too
    return [
        Launch(
            start + dt.timedelta(seconds=rnd.randrange(0, 100 * 86400), microseconds=i),
            rnd.choice(["teams", "ehr", "outlook"]),
            f"u{rnd.randrange(30):02d}",
            None,
            rnd.choice(names),
        )
        for i in range(n)
    ]


def test_incremental_equals_rebuild_and_a_recount(engine: sa.Engine, tmp_path: Path) -> None:
    launches = _random_launches(2500)
    store = _Store(engine, tmp_path)
    shuffled = launches[:]
    random.Random(3).shuffle(shuffled)  # batches out of order, as spool replays arrive
    for i in range(0, len(shuffled), 97):
        store.launches(shuffled[i : i + 97])
    incremental = _rows(engine, T_MS), _rows(engine, T_UMS)

    # an independent recount in Python, keys included
    M = cellkey.MOD
    people: dict[tuple[dt.date, str], set[str]] = {}
    counts: dict[tuple[dt.date, str], list[int]] = {}
    for e in launches:
        cell = (e.ts.date().replace(day=1), e.source)
        people.setdefault(cell, set()).add(e.user_id)
        c = counts.setdefault(cell, [0, 0])
        c[0] += 1
        c[1] += cellkey.launch_key(e.ts, e.app_id, e.user_id)
    with engine.connect() as conn:
        found = {(r.month, r.source): r for r in conn.execute(sa.select(T_MS))}
    assert set(found) == set(counts)
    for cell, r in found.items():
        assert (r.launches, r.users) == (counts[cell][0], len(people[cell])), cell
        assert r.launches_key == counts[cell][1] % M, cell
        assert r.users_key == sum(cellkey.person_key(u) for u in people[cell]) % M, cell
    assert len(incremental[1]) == sum(len(p) for p in people.values())

    rebuild.rebuild(engine, TZ)
    assert (_rows(engine, T_MS), _rows(engine, T_UMS)) == incremental


def test_the_purge_keeps_the_counts_and_forgets_the_people(
    engine: sa.Engine, tmp_path: Path
) -> None:
    launches = _random_launches(900)
    _Store(engine, tmp_path).launches(launches)
    counts_before = _rows(engine, T_MS)
    now = dt.datetime(2025, 4, 20, tzinfo=dt.UTC)
    rebuild.purge_raw(engine, retention_days=35, tz=TZ, now=now)  # cuts where March begins
    assert _rows(engine, T_MS) == counts_before  # only counts after the retention
    with engine.connect() as conn:
        months = set(conn.execute(sa.select(T_UMS.c.month).distinct()).scalars())
        kept = set(conn.execute(sa.select(T_MS.c.month).distinct()).scalars())
    assert months and min(months) >= dt.date(2025, 3, 1)
    assert dt.date(2025, 1, 1) in kept and dt.date(2025, 2, 1) in kept
    rebuild.rebuild(engine, TZ)  # from what is left: older months kept as they were
    assert _rows(engine, T_MS) == counts_before


def _announce(engine: sa.Engine, title: str, starts: str, ends: str, groups: str = "") -> int:
    draft = announcements.parse(
        {"title": title, "body": "Body.", "starts": starts, "ends": ends, "groups": groups}
    )
    return announcements.create(engine, draft, "editor")


def _show(engine: sa.Engine, users: Sequence[str], today: dt.date) -> None:
    for user in users:
        announcements.for_user(engine, user, ("staff",), "nl", today)


def test_announcement_reach_of_the_period(engine: sa.Engine) -> None:
    early = _announce(engine, "Winter rota", "2025-02-01", "2025-02-28")
    wide = _announce(engine, "New EHR", "2025-02-20", "2025-03-10", "staff")
    small = _announce(engine, "=Fire drill", "2025-03-25", "2025-04-05")
    _announce(engine, "Summer", "2025-06-01", "2025-06-30")
    _show(engine, [f"p{i}" for i in range(6)], dt.date(2025, 2, 21))  # early and wide
    _show(engine, ["p0", "p1", "q1"], dt.date(2025, 3, 26))  # small
    rows = sources.announcement_reach(engine, MARCH, 5, exact=True)
    assert [(r["id"], r["reach"], r.get("suppressed", False)) for r in rows] == [
        (small, None, True),  # 3 people
        (wide, 6, False),  # reach over its whole window, February too
    ]
    assert rows[1] | {"reach": 0} == {
        "key": str(wide),
        "id": wide,
        "title": "New EHR",
        "starts": "2025-02-20",
        "ends": "2025-03-10",
        "groups": ["staff"],
        "language": "",
        "reach": 0,
    }
    published = sources.announcement_reach(engine, MARCH, 5)
    assert abs(published[1]["reach"] - 6) <= 2 and published[0]["reach"] is None
    keys = sum(cellkey.person_key(f"p{i}") for i in range(6)) % cellkey.MOD
    assert published[1]["reach"] == cellkey.perturb(6, keys)
    # the editors' page counts the same people
    listed = {e.item.id: e.reach for e in announcements.listing(engine, dt.date(2025, 3, 1), 5)}
    assert (listed[early], listed[wide], listed[small]) == (6, 6, None)
    assert (
        sources.announcement_reach(engine, Period(dt.date(2025, 5, 1), dt.date(2025, 5, 2)), 5)
        == []
    )


def test_api_csv_cli_and_page_show_the_same_rows(
    portal_any_db: InProcess,
    engine: sa.Engine,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    launches = _launches(CASE) + [
        Launch(utc("2024-11-04 10:00:00"), "teams", f"v{i}", None, "direct") for i in range(7)
    ]
    insert_launches(engine, launches)
    rebuild.rebuild(engine, TZ)
    news = _announce(engine, "New EHR", "2025-03-01", "2025-03-31")
    _show(engine, [f"p{i}" for i in range(5)], dt.date(2025, 3, 2))
    twelve = sources.trend_period(MARCH)
    assert twelve == Period(dt.date(2024, 4, 1), dt.date(2025, 3, 31))
    today = dt.datetime.now(dt.UTC).date()
    report = tables.build(engine, registry, MARCH, today, 5)
    csv_rows = report.tables["sources"].rows
    api_rows = sources.by_month(engine, twelve, 5)
    assert [r["key"] for r in api_rows] == [
        "2024-11/direct",
        "2025-02/search",
        *(f"2025-03/{s}" for s in ("portal", "search", "digest")),
    ]
    reviewer = portal_any_db.as_user(REVIEWER)
    reviewer.cookies.set("launcher_lang", "en")  # the CSV's headers in the report's language
    body = reviewer.get(
        "/api/v1/reports/sources", params={"from": "2024-04-01", "to": "2025-03-31"}
    ).json()
    assert body == {
        "from": "2024-04-01",
        "to": "2025-03-31",
        "months": ["2024-04", "2025-03"],
        "rows": api_rows,
    }
    assert [(r["month"], r["source"], r["launches"], r["users"]) for r in body["rows"]] == [
        (m, s, None if n == "< 5" else n, None if u == "< 5" else u) for m, s, _, n, u in csv_rows
    ]
    exported = reviewer.get(
        "/reports/export.csv",
        params={"table": "sources", "period": "month", "month": "2025-03"},
    )
    assert exported.status_code == 200
    assert exported.text == report.tables["sources"].csv()
    reach = reviewer.get(
        "/api/v1/reports/announcements", params={"from": "2025-03-01", "to": "2025-03-31"}
    ).json()
    assert reach["rows"] == sources.announcement_reach(engine, MARCH, 5)
    assert [r["id"] for r in reach["rows"]] == [news]
    assert report.tables["announcements"].rows == [
        (
            news,
            "New EHR",
            "2025-03-01",
            "2025-03-31",
            "everyone",
            "all languages",
            reach["rows"][0]["reach"],
        )
    ]
    # the page in Dutch: the section, the months by sources, the suppressed cell
    reviewer.cookies.set("launcher_lang", "nl")
    page = reviewer.get("/reports", params={"period": "month", "month": "2025-03"}).text
    assert "Waar starten mensen apps" in page and "Mededelingen en hun bereik" in page
    assert page.count('<svg class="chart spark-source-') == 4  # direct, portal, search, digest
    matrix = page.split('<table class="data sources">')[1].split("</table>")[0]
    assert '<th scope="row">2024-11</th>' in matrix and "2024-10" not in matrix
    assert "&lt; 5" in matrix  # the search in March
    assert "Tegel op de startpagina" in matrix and "Wekelijks overzicht" in matrix

    monkeypatch.setenv("LAUNCHER_DATABASE_URL", portal_any_db.settings.database_url)
    monkeypatch.setenv("LAUNCHER_APPS_FILE", str(EXAMPLE_APPS))
    monkeypatch.setenv("LAUNCHER_SECRET_KEY", SECRET)
    args = ["report", "--from", "2025-03-01", "--to", "2025-03-31", "--lang", "en"]
    assert main([*args, "--table", "sources", "--format", "csv"]) == 0
    assert capsys.readouterr().out == report.tables["sources"].csv()
    assert main([*args, "--table", "sources", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == [
        list(r) for r in report.tables["sources"].rows
    ]
    assert main([*args, "--table", "announcements", "--format", "csv"]) == 0
    lines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert lines[0] == ["id", "title", "starts", "ends", "audience", "language", "reach"]
    assert lines[1][:2] == [str(news), "New EHR"]

"""Rebuilding and purging the rollups: ``launcher db rebuild-rollups`` recomputes every rollup
from the raw events in set-based SQL; the daily purge deletes raw events of whole months past
the retention (the rollups stay). Both are serialized with the event writer's flushes."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from launcher import db, personal
from launcher.dates import month_of, utc
from launcher.reports import cellkey, people, sources
from launcher.reports.rollups import (
    BEFORE_RETENTION,
    ROLLUP_LOCK,
    ROLLUP_TABLES,
    T_COHORT_MONTH,
    T_DAY_STATS,
    T_LAUNCH,
    T_SIGNIN,
    T_USER_DAY,
    T_USER_DAY_APP,
    T_USER_FIRST,
    T_USER_MONTH,
    T_USER_MONTH_APP,
    prune_cell_seen,
)
from launcher.signins import join as gateway
from launcher.signins import rollups as signin_rollups


def month_edge(month: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The earliest instant that belongs to ``month``: its start in UTC (the daily rollups)
    or in the portal's time zone (the heatmap), whichever comes first."""
    utc = dt.datetime.combine(month, dt.time(), tzinfo=dt.UTC)
    local = dt.datetime.combine(month, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    return min(utc, local)


def purge_cutoff(now: dt.datetime, retention_days: int, tz: ZoneInfo) -> dt.datetime:
    """Where the raw events may be cut: the edge (see month_edge) of the month that holds the
    day ``retention_days`` ago. Whole months only, so that what is left always covers whole
    months and ``rebuild`` never recomputes a month from part of its events."""
    return month_edge(month_of((now - dt.timedelta(days=retention_days)).date()), tz)


def purge_raw(
    engine: sa.Engine, retention_days: int, tz: ZoneInfo, now: dt.datetime | None = None
) -> int:
    """Delete raw events of whole months past the retention; rollups stay. Returns rows
    deleted. Serialized with flushes, and in chunks, so that a large purge never holds the
    write lock for long."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = purge_cutoff(now, retention_days, tz)
    deleted = 0
    for table in (T_LAUNCH, T_SIGNIN, gateway.T_IMPORTED):
        while True:
            with db.serialized_write(engine, ROLLUP_LOCK) as conn:
                ids = sa.select(table.c.id).where(table.c.ts < cutoff).limit(20_000)
                count = conn.execute(sa.delete(table).where(table.c.id.in_(ids))).rowcount or 0
            deleted += count
            if count < 20_000:
                break
    with db.serialized_write(engine, ROLLUP_LOCK) as conn:
        prune_cell_seen(conn, now.date())
        purge_people(conn, month_of((now - dt.timedelta(days=retention_days)).date()))
        personal.purge_recent(conn, cutoff, now)  # the grid's last launch per person and app
    return deleted


PER_PERSON_DAYS = (T_USER_DAY, T_USER_DAY_APP)
PER_PERSON_MONTHS = (T_USER_MONTH, T_USER_MONTH_APP, sources.PER_PERSON)


def purge_people(conn: sa.Connection, month: dt.date) -> None:
    """Per-person rollups go with the raw events (docs/PRIVACY.md: "after 400 days only
    counts"): rows and bitmaps (launcher/reports/people.py) of days and months before
    ``month`` are deleted, with the person numbers of people not seen since; a person first
    seen before it keeps only that fact (cohort :data:`BEFORE_RETENTION`, never shown) -- or
    nothing, when not seen since. The per-month, per-day and per-cohort counts (with their
    cell keys) stay."""
    for table in PER_PERSON_DAYS:
        conn.execute(sa.delete(table).where(table.c.day < month))
    for table in PER_PERSON_MONTHS:
        conn.execute(sa.delete(table).where(table.c.month < month))
    uf, ud = T_USER_FIRST, T_USER_DAY
    seen_since = sa.exists().where(ud.c.user_id == uf.c.user_id)
    old = sa.and_(uf.c.first_day < month, uf.c.first_day > BEFORE_RETENTION)
    conn.execute(sa.delete(uf).where(old, ~seen_since))
    conn.execute(sa.update(uf).where(old).values(first_day=BEFORE_RETENTION))
    signin_rollups.purge_people(conn, month)  # and the gateway's per-person rows
    people.purge(conn, month)  # after user_day: the numbers of people no longer in it go


def rebuild(engine: sa.Engine, tz: ZoneInfo) -> int:
    """Recompute every rollup from the raw events (``launcher db rebuild-rollups``): the
    launch rollups, then the gateway rollups of imported sign-ins (launcher/signins/join.py),
    whose departments come from the rebuilt user_first, and the grid's user_recent
    (launcher/personal.py). Returns the raw rows read."""
    total = _rebuild_launches(engine, tz)
    with db.serialized_write(engine, ROLLUP_LOCK) as conn:
        total += gateway.rebuild(conn)
        personal.rebuild_recent(conn)  # the grid's "recently used" (not a report's)
    return total


def _rebuild_launches(engine: sa.Engine, tz: ZoneInfo) -> int:
    """Recompute the launch rollups from the raw launches and sign-ins.

    Set-based SQL, so that millions of events take seconds. Rollup rows for months before the
    oldest raw event are kept: raw events past the retention are gone, and their rollups are
    all that is left of them. Returns the number of raw events read.
    """
    with engine.connect() as conn:
        firsts = [
            conn.execute(sa.select(t.c.ts).order_by(t.c.ts).limit(1)).scalar()
            for t in (T_LAUNCH, T_SIGNIN)
        ]
        total = sum(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (T_LAUNCH, T_SIGNIN)
        )
    starts = [utc(ts) for ts in firsts if ts is not None]
    if not starts:
        return 0
    # whole months, so that per-month distinct counts are rebuilt complete
    oldest = min(starts)
    with engine.connect() as conn:
        # rollups older than any raw event: the raw history was purged, and the oldest month
        # left may be partial (its edge may precede the cut). Rebuild from the first month
        # whose raw events are all there; older rollups are all that is left of them.
        purged = conn.execute(
            # day_stats, not user_day: the per-person rows of purged months are gone too
            sa.select(T_DAY_STATS.c.day).where(T_DAY_STATS.c.day < oldest.date()).limit(1)
        ).first()
    start = min(month_of(oldest.date()), month_of(oldest.astimezone(tz).date()))
    if purged is not None:
        while month_edge(start, tz) < oldest:
            start = month_of(start + dt.timedelta(days=32))
    with db.serialized_write(engine, ROLLUP_LOCK) as conn:
        for table in ROLLUP_TABLES:
            if table is T_USER_FIRST:
                conn.execute(sa.delete(table).where(table.c.first_day >= start))
            elif table is T_COHORT_MONTH:  # older cohorts' members may be purged: kept
                conn.execute(
                    sa.delete(table).where(table.c.month >= start, table.c.cohort >= start)
                )
            else:
                col = table.c.month if "month" in table.c else table.c.day
                conn.execute(sa.delete(table).where(col >= start))
        _rebuild_sql(conn, start, tz)
        sources.rebuild(conn, start)
        people.rebuild(conn, start)  # from the user_day and user_day_app just rebuilt
        if not db.is_sqlite(engine):  # the planner's statistics, after rewriting so much
            for table in ROLLUP_TABLES:
                conn.exec_driver_sql(f"ANALYZE {table.name}")
    return int(total)


def _rebuild_sql(conn: sa.Connection, start: dt.date, tz: ZoneInfo) -> None:
    sqlite = conn.dialect.name == "sqlite"
    lo = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    local_lo = dt.datetime.combine(start, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    if sqlite:
        day = "substr(ts, 1, 10)"
        month_of_day = "substr({0}, 1, 7) || '-01'"
        params: dict[str, Any] = {
            "lo": lo.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "local_lo": local_lo.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "start": start.isoformat(),
        }
    else:
        day = "CAST(ts AT TIME ZONE 'UTC' AS date)"
        month_of_day = "CAST(date_trunc('month', {0}) AS date)"
        params = {"lo": lo, "local_lo": local_lo, "start": start, "tz": tz.key}
    dept = "COALESCE(department, '')"

    def run(sql: str) -> None:
        conn.execute(sa.text(sql), params)

    # Rows go in in key order, as they would have arrived live: a report reading a range of
    # days then reads few pages.
    # Cell keys (cellkey.py): each raw event's record key is derived here as the live upkeep
    # derives it, so a rebuild reproduces the keys exactly; md5 runs once per event and table.
    cellkey.register(conn)
    lk, sk = cellkey.sql_launch_key(conn), cellkey.sql_signin_key(conn)
    pk = cellkey.sql_person_key(conn, "user_id")
    M = cellkey.MOD
    run(f"""INSERT INTO usage_day (day, app_id, department, launches, launches_key)
        SELECT {day}, app_id, {dept}, COUNT(*), SUM({lk}) % {M} FROM launch_event WHERE ts >= :lo
        GROUP BY {day}, app_id, {dept} ORDER BY {day}, app_id, {dept}""")
    m = month_of_day.format("day")
    run(f"""INSERT INTO usage_month (month, app_id, department, launches, launches_key)
        SELECT {m}, app_id, department, SUM(launches), SUM(launches_key) % {M} FROM usage_day
        WHERE day >= :start GROUP BY {m}, app_id, department""")
    run(f"""INSERT INTO user_day_app (day, app_id, user_id, department, launches, person_key,
            launches_key)
        SELECT {day}, app_id, user_id, MAX({dept}), COUNT(*), {pk}, SUM({lk}) % {M}
        FROM launch_event WHERE ts >= :lo
        GROUP BY {day}, app_id, user_id ORDER BY {day}, app_id, user_id""")
    # the launches of a user's day are the sum of its apps' (one pass over launch_event less)
    run(f"""INSERT INTO user_day (day, user_id, department, launches, signins, person_key,
            launches_key, signins_key)
        SELECT d, user_id, MAX(dept), SUM(l), SUM(s), {pk}, SUM(lk) % {M}, SUM(sk) % {M} FROM (
            SELECT day AS d, user_id, department AS dept, launches AS l, 0 AS s,
                launches_key AS lk, 0 AS sk
            FROM user_day_app WHERE day >= :start
            UNION ALL
            SELECT {day} AS d, user_id, {dept} AS dept, 0 AS l, 1 AS s, 0 AS lk, {sk} AS sk
            FROM signin_event WHERE ts >= :lo
        ) AS e GROUP BY d, user_id ORDER BY d, user_id""")
    m = month_of_day.format("day")
    run(f"""INSERT INTO user_month (month, user_id, department, launches, signins, person_key,
            launches_key, signins_key)
        SELECT {m}, user_id, MAX(department), SUM(launches), SUM(signins), MAX(person_key),
            SUM(launches_key) % {M}, SUM(signins_key) % {M}
        FROM user_day WHERE day >= :start GROUP BY {m}, user_id ORDER BY {m}, user_id""")
    run(f"""INSERT INTO user_month_app (month, app_id, user_id, launches, person_key,
            launches_key)
        SELECT {m}, app_id, user_id, SUM(launches), MAX(person_key), SUM(launches_key) % {M}
        FROM user_day_app WHERE day >= :start GROUP BY {m}, app_id, user_id
        ORDER BY {m}, app_id, user_id""")
    run("""INSERT INTO user_first (user_id, first_day, department)
        SELECT user_id, MIN(day), MAX(department) FROM user_day WHERE day >= :start
        GROUP BY user_id ON CONFLICT (user_id) DO NOTHING""")
    for stats, per_user, when in (
        ("month_stats", "user_month", "month"),
        ("day_stats", "user_day", "day"),
    ):
        run(f"""INSERT INTO {stats} ({when}, active_users, launchers, launches, signins,
                active_key, launchers_key, launches_key, signins_key)
            SELECT {when}, COUNT(*), SUM(CASE WHEN launches > 0 THEN 1 ELSE 0 END),
                SUM(launches), SUM(signins), SUM(person_key) % {M},
                SUM(CASE WHEN launches > 0 THEN person_key ELSE 0 END) % {M},
                SUM(launches_key) % {M}, SUM(signins_key) % {M}
            FROM {per_user} WHERE {when} >= :start GROUP BY {when}""")
    run(f"""INSERT INTO month_app (month, app_id, launches, users, launches_key, users_key)
        SELECT month, app_id, SUM(launches), COUNT(*), SUM(launches_key) % {M},
            SUM(person_key) % {M}
        FROM user_month_app WHERE month >= :start GROUP BY month, app_id""")
    f = month_of_day.format("f.first_day")
    run(f"""INSERT INTO cohort_month (cohort, month, users, users_key)
        SELECT {f}, m.month, COUNT(*), SUM(m.person_key) % {M} FROM user_month AS m
        JOIN user_first AS f ON f.user_id = m.user_id
        WHERE m.month >= :start AND f.first_day >= :start GROUP BY {f}, m.month""")
    cells = _local_cells_sql(conn, tz, local_lo)
    run(f"""INSERT INTO month_cell (month, weekday, hour, launches, users, launches_key)
        SELECT month, weekday, hour, COUNT(*), COUNT(DISTINCT user_id), SUM(rk) % {M}
        FROM ({cells}) AS c
        GROUP BY month, weekday, hour""")
    recent = month_of(month_of(dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=1))
    params["recent"] = recent.isoformat() if sqlite else recent
    run(f"""INSERT INTO cell_seen (month, weekday, hour, user_id)
        SELECT DISTINCT month, weekday, hour, user_id FROM ({cells}) AS c
        WHERE month >= :recent""")


def _local_cells_sql(conn: sa.Connection, tz: ZoneInfo, since: dt.datetime) -> str:
    """SQL giving (month, weekday, hour, user_id) per launch in local time, from ``since``.

    PostgreSQL converts time zones itself. SQLite cannot, so a temporary table lists the UTC
    offset of each stretch between daylight-saving changes.
    """
    if conn.dialect.name != "sqlite":
        local = "(ts AT TIME ZONE :tz)"
        return f"""SELECT CAST(date_trunc('month', {local}) AS date) AS month,
            CAST(EXTRACT(ISODOW FROM {local}) AS integer) - 1 AS weekday,
            CAST(EXTRACT(HOUR FROM {local}) AS integer) AS hour, user_id,
            {cellkey.sql_launch_key(conn)} AS rk
            FROM launch_event WHERE ts >= :local_lo"""
    conn.exec_driver_sql("DROP TABLE IF EXISTS temp.tz_offset")
    conn.exec_driver_sql("CREATE TEMP TABLE tz_offset (start TEXT, stop TEXT, seconds INTEGER)")
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    stretches: list[tuple[str, str, int]] = []
    cursor = since.replace(minute=0, second=0, microsecond=0)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    offset = cursor.astimezone(tz).utcoffset() or dt.timedelta()
    begin = cursor
    while cursor < end:
        cursor += dt.timedelta(hours=1)
        current = cursor.astimezone(tz).utcoffset() or dt.timedelta()
        if current != offset:
            stretches.append(
                (begin.strftime(fmt), cursor.strftime(fmt), int(offset.total_seconds()))
            )
            begin, offset = cursor, current
    stretches.append((begin.strftime(fmt), "9999-12-31", int(offset.total_seconds())))
    stretches[0] = ("0000-01-01", stretches[0][1], stretches[0][2])
    conn.exec_driver_sql("INSERT INTO tz_offset VALUES (?, ?, ?)", stretches)
    local = "datetime(l.ts, o.seconds || ' seconds')"
    return f"""SELECT strftime('%Y-%m-01', {local}) AS month,
        (CAST(strftime('%w', {local}) AS INTEGER) + 6) % 7 AS weekday,
        CAST(strftime('%H', {local}) AS INTEGER) AS hour, l.user_id AS user_id,
        {cellkey.sql_launch_key(conn)} AS rk
        FROM launch_event AS l JOIN tz_offset AS o ON l.ts >= o.start AND l.ts < o.stop
        WHERE l.ts >= :local_lo"""

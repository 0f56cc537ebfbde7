"""The gateway rollups: what the front-door report reads instead of the imported sign-ins.

- signin_day: sign-ins and those through the portal per day, app and department (counts);
- signin_user_month / signin_person_month: per user and app / per person (apps with a tile),
  the days of each month with a sign-in and with one through the portal, as bit masks;
- signin_user_span / signin_person_span: the same for the months of two calendar years: every
  month is in its own year's row and the year before's (:func:`_span_bits`), so a period of up
  to a year reads one row per user (and app) for its whole months, and one per month row for a
  month it covers in part (the launch side has moved to bitmaps: launcher/reports/people.py);
- signin_month_users: for the months whose per-person rows the retention purged
  (:func:`purge_people`), their distinct people per app, department and the organisation.

Every count has its cell key beside it (launcher/reports/cellkey.py): signin_day the sums of
its sign-ins' record keys, the per-person rows the person's key.

Kept in set-based SQL from the imported rows (:func:`fold`, then :func:`spans` from the month
tables), and by a few keyed updates when a later launch marks a stored sign-in as through the
portal (:func:`add_via`) or a person's department changes (:func:`move`). Masks are OR-ed:
folding a row twice into a mask changes nothing, so spans can be derived again at will.
SQLite has no bitwise-OR aggregate; ``SUM(DISTINCT bit)`` is one wherever every value is a
single bit, which is how it is used here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from launcher.models import (
    ImportedSignIn,
    SignInDay,
    SignInMonthUsers,
    SignInPersonMonth,
    SignInPersonSpan,
    SignInUserMonth,
    SignInUserSpan,
    table,
)
from launcher.reports import cellkey

T_IMPORTED = table(ImportedSignIn)
T_SIGNIN_DAY = table(SignInDay)
T_USER_MONTH = table(SignInUserMonth)
T_PERSON_MONTH = table(SignInPersonMonth)
T_USER_SPAN = table(SignInUserSpan)
T_PERSON_SPAN = table(SignInPersonSpan)
T_MONTH_USERS = table(SignInMonthUsers)
GATEWAY_TABLES = (
    T_SIGNIN_DAY,
    T_USER_MONTH,
    T_PERSON_MONTH,
    T_USER_SPAN,
    T_PERSON_SPAN,
    T_MONTH_USERS,
)
FOLD_ROWS = 500_000  # imported rows per GROUP BY of a rebuild (SQLite sorts in memory)

# per month table: its span table and the columns of a person (and app)
_SPAN_OF = (
    ("signin_user_month", "signin_user_span", "app_id, provider_app, user_id"),
    ("signin_person_month", "signin_person_span", "user_id"),
)


def _sqlite(conn: sa.Connection) -> bool:
    return conn.dialect.name == "sqlite"


def _or(conn: sa.Connection, bits: str) -> str:
    """The OR of single-bit values over a group."""
    return f"SUM(DISTINCT {bits})" if _sqlite(conn) else f"bit_or({bits})"


def _bit(conn: sa.Connection, n: str) -> str:
    return f"(1 << ({n}))" if _sqlite(conn) else f"(CAST(1 AS bigint) << ({n}))"


def _db_date(conn: sa.Connection, value: dt.date) -> object:
    return value.isoformat() if _sqlite(conn) else value


def fold(conn: sa.Connection, where: str, params: dict[str, Any]) -> None:
    """Add the imported sign-ins that ``where`` selects to signin_day and the month tables
    (set-based). :func:`spans` then brings the span tables up to date with the months.

    Cell keys (launcher/reports/cellkey.py): signin_day adds the record keys of its sign-ins
    (``cellkey.imported_key``, derived here from the stored row, so a rebuild derives the
    same), the per-person rows carry the person's key."""
    if _sqlite(conn):
        day, month = "substr(ts, 1, 10)", "substr(ts, 1, 7) || '-01'"
        dom = "CAST(substr(ts, 9, 2) AS INTEGER)"
    else:
        day = "CAST(ts AT TIME ZONE 'UTC' AS date)"
        month = "CAST(date_trunc('month', ts AT TIME ZONE 'UTC') AS date)"
        dom = "CAST(EXTRACT(DAY FROM ts AT TIME ZONE 'UTC') AS integer)"
    cellkey.register(conn)
    M = cellkey.MOD
    rk, pk = cellkey.sql_imported_key(conn), cellkey.sql_person_key(conn, "user_id")
    bit = _bit(conn, f"{dom} - 1")
    days = _or(conn, bit)
    via_days = _or(conn, f"CASE WHEN via_portal = 1 THEN {bit} ELSE 0 END")
    add = (
        "signins = {t}.signins + excluded.signins, "
        "via_portal = {t}.via_portal + excluded.via_portal"
    )
    keys = (
        f"signins_key = (signin_day.signins_key + excluded.signins_key) % {M}, "
        f"via_key = (signin_day.via_key + excluded.via_key) % {M}"
    )
    masks = "days = {t}.days | excluded.days, via_days = {t}.via_days | excluded.via_days"
    # the record key once per row: grouped by via_portal first, then the two groups summed
    conn.execute(
        sa.text(f"""INSERT INTO signin_day (day, app_id, provider_app, department, signins,
            via_portal, signins_key, via_key)
            SELECT d, app_id, provider_app, department, SUM(n),
            SUM(CASE WHEN via = 1 THEN n ELSE 0 END), SUM(k) % {M},
            SUM(CASE WHEN via = 1 THEN k ELSE 0 END) % {M}
            FROM (SELECT {day} AS d, app_id, provider_app, department, via_portal AS via,
                COUNT(*) AS n, SUM({rk}) % {M} AS k
                FROM imported_signin WHERE {where}
                GROUP BY {day}, app_id, provider_app, department, via_portal) AS g
            GROUP BY d, app_id, provider_app, department
            ON CONFLICT (day, app_id, provider_app, department) DO UPDATE SET
            {add.format(t="signin_day")}, {keys}"""),
        params,
    )
    # the person key once per group (an outer SELECT), not once per imported row
    conn.execute(
        sa.text(f"""INSERT INTO signin_user_month (month, app_id, provider_app, user_id,
            department, signins, via_portal, days, via_days, person_key)
            SELECT m, app_id, provider_app, user_id, dept, n, via, d, vd, {pk} FROM (
                SELECT {month} AS m, app_id, provider_app, user_id, MAX(department) AS dept,
                COUNT(*) AS n, SUM(via_portal) AS via, {days} AS d, {via_days} AS vd
                FROM imported_signin WHERE {where}
                GROUP BY {month}, app_id, provider_app, user_id) AS g
            WHERE true
            ON CONFLICT (month, app_id, provider_app, user_id) DO UPDATE SET
            department = excluded.department, {add.format(t="signin_user_month")},
            {masks.format(t="signin_user_month")}"""),
        params,
    )
    conn.execute(
        sa.text(f"""INSERT INTO signin_person_month (month, user_id, department, days, via_days,
            person_key)
            SELECT m, user_id, dept, d, vd, {pk} FROM (
                SELECT {month} AS m, user_id, MAX(department) AS dept, {days} AS d,
                {via_days} AS vd FROM imported_signin WHERE ({where}) AND app_id <> ''
                GROUP BY {month}, user_id) AS g
            WHERE true
            ON CONFLICT (month, user_id) DO UPDATE SET department = excluded.department,
            {masks.format(t="signin_person_month")}"""),
        params,
    )


def fold_new(conn: sa.Connection, above: int, keys: int = 50_000) -> None:
    """SQLite: :func:`fold` of the imported rows with an id above ``above`` (an import's new
    rows), aggregated in Python while the rows are read once in id order, so that each
    signin_day row, user month and person month is upserted once per file rather than once
    per slice of rows (bench/README.md). Bounded: the three tables' pending rows are written
    out whenever together they hold ``keys`` rows (a few hundred bytes each); upserts add counts
    and keys and OR masks, so a key written out twice sums up the same."""
    raw: Any = conn.connection.driver_connection
    M = cellkey.MOD
    imported_key, person_key = cellkey.imported_key, cellkey.person_key_cached
    day: dict[tuple[str, str, str, str], list[int]] = {}  # signins, via, their keys
    user: dict[tuple[str, str, str, str], list[Any]] = {}  # dept, signins, via, days, via_days
    person: dict[tuple[str, str], list[Any]] = {}  # dept, days, via_days
    # one string object per day, month, app, person, department: not one per key
    days: dict[str, str] = {}
    months: dict[str, str] = {}  # by day
    strings: dict[str, str] = {}

    def flush() -> None:
        raw.executemany(
            """INSERT INTO signin_day (day, app_id, provider_app, department, signins,
            via_portal, signins_key, via_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (day, app_id, provider_app, department) DO UPDATE SET
            signins = signin_day.signins + excluded.signins,
            via_portal = signin_day.via_portal + excluded.via_portal,
            signins_key = (signin_day.signins_key + excluded.signins_key) % """
            + str(M)
            + """, via_key = (signin_day.via_key + excluded.via_key) % """
            + str(M),
            ((*k, n, v, nk % M, vk % M) for k, (n, v, nk, vk) in sorted(day.items())),
        )
        raw.executemany(
            """INSERT INTO signin_user_month (month, app_id, provider_app, user_id,
            department, signins, via_portal, days, via_days, person_key)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (month, app_id, provider_app, user_id) DO UPDATE SET
            department = excluded.department,
            signins = signin_user_month.signins + excluded.signins,
            via_portal = signin_user_month.via_portal + excluded.via_portal,
            days = signin_user_month.days | excluded.days,
            via_days = signin_user_month.via_days | excluded.via_days""",
            ((*k, *v, person_key(k[3])) for k, v in sorted(user.items())),
        )
        raw.executemany(
            """INSERT INTO signin_person_month (month, user_id, department, days, via_days,
            person_key) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (month, user_id) DO UPDATE SET department = excluded.department,
            days = signin_person_month.days | excluded.days,
            via_days = signin_person_month.via_days | excluded.via_days""",
            ((*k, *v, person_key(k[1])) for k, v in sorted(person.items())),
        )
        for held in (day, user, person, days, months, strings):
            held.clear()

    cursor = raw.execute(
        "SELECT ts, app_id, provider_app, user_id, department, via_portal, provider, "
        "record_id FROM imported_signin WHERE id > ? ORDER BY id",
        (above,),
    )
    try:
        while rows := cursor.fetchmany(min(5000, keys)):
            for ts, app, provider_app, uid, dept, via, provider, record_id in rows:
                rk = imported_key(uid, provider, record_id)
                app = strings.setdefault(app, app)
                provider_app = strings.setdefault(provider_app, provider_app)
                uid = strings.setdefault(uid, uid)
                dept = strings.setdefault(dept, dept)
                d = ts[:10]
                m = months.get(d)  # one string per day and month, not one per key
                if m is None:
                    d = days[d] = d
                    m = months[d] = ts[:7] + "-01"
                else:
                    d = days[d]
                bit = 1 << (int(ts[8:10]) - 1)
                c = day.get((d, app, provider_app, dept))
                if c is None:
                    c = day[d, app, provider_app, dept] = [0, 0, 0, 0]
                c[0] += 1
                c[2] += rk
                u = user.get((m, app, provider_app, uid))
                if u is None:
                    u = user[m, app, provider_app, uid] = [dept, 0, 0, 0, 0]
                elif dept > u[0]:
                    u[0] = dept
                u[1] += 1
                u[3] |= bit
                p = None
                if app:
                    p = person.get((m, uid))
                    if p is None:
                        p = person[m, uid] = [dept, 0, 0]
                    elif dept > p[0]:
                        p[0] = dept
                    p[1] |= bit
                if via:
                    c[1] += 1
                    c[3] += rk
                    u[2] += 1
                    u[4] |= bit
                    if p is not None:
                        p[2] |= bit
            if len(day) + len(user) + len(person) >= keys:
                flush()
    finally:
        cursor.close()
    flush()


def spans(conn: sa.Connection, first: dt.date, last: dt.date | None = None) -> None:
    """OR the months from ``first`` (to ``last``, else the last there is) of the month tables
    into the span tables. Month by month: a month row is one person's (and app's), so each
    goes into its two span rows without a GROUP BY -- nothing to sort, whatever the size."""
    if last is None:
        newest = conn.execute(sa.select(sa.func.max(T_USER_MONTH.c.month))).scalar()
        if newest is None:
            return
        last = dt.date.fromisoformat(newest) if isinstance(newest, str) else newest
    month = first.replace(day=1)
    while month <= last:
        for months, span, who in _SPAN_OF:
            for span_year, bit in _span_bits(month):
                conn.execute(
                    sa.text(f"""INSERT INTO {span} (year, {who}, department, months, via_months,
                        person_key)
                        SELECT :year, {who}, department, :bit,
                        CASE WHEN via_days <> 0 THEN :bit ELSE 0 END, person_key
                        FROM {months} WHERE month = :month AND days <> 0
                        ON CONFLICT (year, {who}) DO UPDATE SET
                        department = excluded.department,
                        months = {span}.months | excluded.months,
                        via_months = {span}.via_months | excluded.via_months"""),
                    {"year": span_year, "bit": bit, "month": _db_date(conn, month)},
                )
        month = (month + dt.timedelta(days=32)).replace(day=1)


def _span_bits(month: dt.date) -> tuple[tuple[int, int], tuple[int, int]]:
    """(span year, bit) of ``month`` in its two span rows: its own year's, where January is
    bit 0, and the year before's, where it is 12 bits higher."""
    return (month.year, 1 << (month.month - 1)), (month.year - 1, 1 << (month.month + 11))


def add_via(conn: sa.Connection, rows: Iterable[tuple[dt.date, str, str, str, str, int]]) -> None:
    """Count stored sign-ins (day, app, provider app, user, department, record key) that a
    later launch showed to have come through the portal: a few keyed updates per sign-in."""
    p = "?" if _sqlite(conn) else "%s"
    mod = "%" if _sqlite(conn) else "%%"  # psycopg's parameters are %s
    for d, app, provider_app, user, dept, key in rows:
        month = d.replace(day=1)
        day_bit = 1 << (d.day - 1)
        conn.exec_driver_sql(
            f"UPDATE signin_day SET via_portal = via_portal + 1, "
            f"via_key = (via_key + {p}) {mod} {cellkey.MOD} WHERE day = {p} AND app_id = {p} "
            f"AND provider_app = {p} AND department = {p}",
            (key, _db_date(conn, d), app, provider_app, dept),
        )
        conn.exec_driver_sql(
            f"UPDATE signin_user_month SET via_portal = via_portal + 1, "
            f"via_days = via_days | {p} WHERE month = {p} AND app_id = {p} "
            f"AND provider_app = {p} AND user_id = {p}",
            (day_bit, _db_date(conn, month), app, provider_app, user),
        )
        if app:
            conn.exec_driver_sql(
                f"UPDATE signin_person_month SET via_days = via_days | {p} "
                f"WHERE month = {p} AND user_id = {p}",
                (day_bit, _db_date(conn, month), user),
            )
        for span_year, bit in _span_bits(month):
            conn.exec_driver_sql(
                f"UPDATE signin_user_span SET via_months = via_months | {p} WHERE year = {p} "
                f"AND app_id = {p} AND provider_app = {p} AND user_id = {p}",
                (bit, span_year, app, provider_app, user),
            )
            if app:
                conn.exec_driver_sql(
                    f"UPDATE signin_person_span SET via_months = via_months | {p} "
                    f"WHERE year = {p} AND user_id = {p}",
                    (bit, span_year, user),
                )


def move(
    conn: sa.Connection, user: str, dept: str, keys: Iterable[tuple[dt.date, str, str]]
) -> None:
    """Give ``user``'s rows of the per-person tables for these (day, app, provider app) keys
    the department ``dept`` (signin_day is moved by the caller, with counts)."""
    p = "?" if _sqlite(conn) else "%s"
    months = {(d.replace(day=1), app, provider_app) for d, app, provider_app in keys}
    for month, app, provider_app in months:
        conn.exec_driver_sql(
            f"UPDATE signin_user_month SET department = {p} WHERE month = {p} AND app_id = {p} "
            f"AND provider_app = {p} AND user_id = {p}",
            (dept, _db_date(conn, month), app, provider_app, user),
        )
        for span_year, _ in _span_bits(month):
            conn.exec_driver_sql(
                f"UPDATE signin_user_span SET department = {p} WHERE year = {p} AND app_id = {p} "
                f"AND provider_app = {p} AND user_id = {p}",
                (dept, span_year, app, provider_app, user),
            )
    for month in {m for m, app, _ in months if app}:
        conn.exec_driver_sql(
            f"UPDATE signin_person_month SET department = {p} WHERE month = {p} AND user_id = {p}",
            (dept, _db_date(conn, month), user),
        )
        for span_year, _ in _span_bits(month):
            conn.exec_driver_sql(
                f"UPDATE signin_person_span SET department = {p} WHERE year = {p} "
                f"AND user_id = {p}",
                (dept, span_year, user),
            )


def clear_from(conn: sa.Connection, start: dt.date) -> None:
    """Delete the rollups of ``start``'s month and later: the rows of later days and months,
    and the bits of those months in the span rows that also hold earlier months."""
    conn.execute(sa.delete(T_SIGNIN_DAY).where(T_SIGNIN_DAY.c.day >= start))
    for t in (T_USER_MONTH, T_PERSON_MONTH):
        conn.execute(sa.delete(t).where(t.c.month >= start))
    for t in (T_USER_SPAN, T_PERSON_SPAN):
        conn.execute(sa.delete(t).where(t.c.year > start.year))
        for span_year in (start.year - 1, start.year):
            # bit b of the row of span_year is month b % 12 + 1 of year span_year + b // 12
            keep = sum(
                1 << b
                for b in range(24)
                if dt.date(span_year + b // 12, b % 12 + 1, 1) < start.replace(day=1)
            )
            conn.execute(
                sa.update(t)
                .where(t.c.year == span_year)
                .values(months=t.c.months.op("&")(keep), via_months=t.c.via_months.op("&")(keep))
            )
        conn.execute(sa.delete(t).where(t.c.months == 0))


# --- the retention (launcher/reports/rebuild.py purge_people) ------------------------------
# (kind, key column, month table, filter): the groups whose people signin_month_users counts
_MONTH_GROUPS = (
    ("app", "app_id", "signin_user_month", "app_id <> ''"),
    ("unregistered", "provider_app", "signin_user_month", "app_id = ''"),
    ("department", "department", "signin_person_month", "true"),
    ("all", "''", "signin_person_month", "true"),
)


def purge_people(conn: sa.Connection, month: dt.date) -> None:
    """The per-person sign-in rollups go with the raw events, as the launch side's
    (docs/PRIVACY.md: "after 400 days only counts"): before the month rows of the months
    before ``month`` are deleted, their distinct people per app, app without a tile,
    department and the organisation go into signin_month_users (counts and cell keys, no
    pseudonyms), so that a report of such a month still has its people; then those months'
    bits are cleared from the span rows, and span rows left empty deleted."""
    M = cellkey.MOD
    first = _db_date(conn, month)
    for kind, key, months, where in _MONTH_GROUPS:
        # one row per person (and key) first: an app may have several provider app ids
        conn.execute(
            sa.text(f"""INSERT INTO signin_month_users (month, kind, key, users, via_users,
                users_key, via_users_key)
                SELECT month, :kind, k, COUNT(*), SUM(via), SUM(pk) % {M}, SUM(via * pk) % {M}
                FROM (SELECT month, {key} AS k, user_id, MAX(person_key) AS pk,
                    MAX(CASE WHEN via_days <> 0 THEN 1 ELSE 0 END) AS via
                    FROM {months} WHERE month < :month AND {where}
                    GROUP BY 1, 2, 3) AS p
                GROUP BY month, k
                ON CONFLICT (month, kind, key) DO NOTHING"""),
            {"kind": kind, "month": first},
        )
    for t in (T_USER_MONTH, T_PERSON_MONTH):
        conn.execute(sa.delete(t).where(t.c.month < month))
    for t in (T_USER_SPAN, T_PERSON_SPAN):
        years = conn.execute(sa.select(t.c.year).distinct()).scalars().all()
        for year in years:
            before = min(max((month.year - year) * 12 + month.month - 1, 0), 24)
            if before == 0:
                continue
            keep = ((1 << 24) - 1) & ~((1 << before) - 1)
            conn.execute(
                sa.update(t)
                .where(t.c.year == year)
                .values(months=t.c.months.op("&")(keep), via_months=t.c.via_months.op("&")(keep))
            )
            conn.execute(sa.delete(t).where(t.c.year == year, t.c.months == 0))


def purged_before(conn: sa.Connection) -> dt.date | None:
    """The first month whose per-person rows are kept, when older ones were purged (the
    month after the last one signin_month_users holds); None when nothing was purged."""
    last = conn.execute(sa.select(sa.func.max(T_MONTH_USERS.c.month))).scalar()
    if last is None:
        return None
    last = dt.date.fromisoformat(last) if isinstance(last, str) else last
    return (last + dt.timedelta(days=32)).replace(day=1)

"""Storing a chunk of imported sign-ins set-based (launcher/signins/importer.py)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from launcher.signins import join
from launcher.signins.chunks import Chunk  # the rows, as the reading process makes them

COLUMNS = "record_id, ts, user_id, app_id, provider_app_id, provider_app"
# PostgreSQL: a chunk's launch probe is one hash join when its time range holds at most this
# many launches per staged row, else one index probe per row. Measured (bench/README.md,
# 2026-12-02): per chunk of 5,000 the join saved ~17 ms at 3,300 launches and cost ~14 ms more
# at 100,000 (an export in random order; a straight line between breaks even near 55,000)
JOIN_LAUNCHES = 2


class Stage:
    """Stores chunks of rows set-based: a chunk goes into a temporary table (COPY on
    PostgreSQL, one prepared INSERT run for every row on SQLite), then one statement moves it
    into imported_signin with each row's department (user_first) and its match with the
    launches (inside the database: one probe of ix_launch_event_user_ts per row, or on
    PostgreSQL one hash join with the launches of the chunk's time range when they are few),
    leaving out the records stored before."""

    def __init__(self, conn: sa.Connection, provider: str) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        if self.sqlite:
            # the window's edges come staged, computed by the importer (Python's datetime
            # arithmetic keeps the microseconds, so the window is exact, as on PostgreSQL);
            # strftime() for them here cost a quarter of the move (bench/README.md)
            conn.exec_driver_sql("DROP TABLE IF EXISTS temp.signin_stage")
            conn.exec_driver_sql(
                "CREATE TEMP TABLE signin_stage (record_id TEXT, ts TEXT, user_id TEXT, "
                "app_id TEXT, provider_app_id TEXT, provider_app TEXT, lo TEXT, hi TEXT)"
            )
            lo, hi = "s.lo", "s.hi"
        else:
            conn.exec_driver_sql(
                "CREATE TEMP TABLE IF NOT EXISTS signin_stage (record_id text, "
                "ts timestamptz, user_id text, app_id text, provider_app_id text, "
                "provider_app text) ON COMMIT DROP"
            )
            lo = f"s.ts - interval '{join.BEFORE_S} seconds'"
            hi = f"s.ts + interval '{join.AFTER_S} seconds'"
        p = join.ph(conn)

        def move(via_portal: str, joined: str = "") -> str:
            """The statement that moves the staged rows, each with its department and its
            ``via_portal`` (an SQL expression of them, and of what ``joined`` joins)."""
            return (
                f"INSERT INTO imported_signin (provider, {COLUMNS}, department, via_portal) "
                f"SELECT {p}, s.record_id, s.ts, s.user_id, s.app_id, s.provider_app_id, "
                f"s.provider_app, COALESCE(f.department, ''), {via_portal} "
                f"FROM signin_stage s LEFT JOIN user_first f ON f.user_id = s.user_id{joined} "
                "WHERE true"  # SQLite's parser needs a WHERE before ON CONFLICT
            )

        self.move = move(
            "CASE WHEN s.app_id <> '' AND EXISTS (SELECT 1 FROM launch_event l "
            f"WHERE l.user_id = s.user_id AND l.ts >= {lo} AND l.ts <= {hi} "
            "AND l.app_id = s.app_id) THEN 1 ELSE 0 END"
        )
        # a record stored before is left out. SQLite: OR IGNORE, because with ON CONFLICT a
        # statement that may abort keeps a statement journal -- in memory (temp_store), as
        # large as the pages a chunk touches; OR IGNORE cannot abort (no other constraint on
        # the table), so it needs none
        self.move_joined = ""
        if self.sqlite:
            self.move = self.move.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
        else:
            self.move += " ON CONFLICT (provider, record_id) DO NOTHING"
            # PostgreSQL, a chunk of an export in time order: the launches of the chunk's
            # time range are few, and one hash join of them with the chunk costs less than a
            # probe of ix_launch_event_user_ts per row (a tenth of the move, bench/README.md);
            # a record id staged twice is the same record, of which one row is stored
            t_lo, t_hi = lo.replace("s.ts", "t.ts", 1), hi.replace("s.ts", "t.ts", 1)
            matched = (
                " LEFT JOIN (SELECT DISTINCT t.record_id FROM signin_stage t "
                "JOIN launch_event l ON l.user_id = t.user_id AND l.app_id = t.app_id "
                f"AND l.ts >= {t_lo} AND l.ts <= {t_hi} "
                "WHERE t.app_id <> '' AND l.ts >= %s AND l.ts <= %s) m "
                "ON m.record_id = s.record_id"
            )
            self.move_joined = (
                move("CASE WHEN m.record_id IS NULL THEN 0 ELSE 1 END", matched)
                + " ON CONFLICT (provider, record_id) DO NOTHING"
            )
        self.provider = provider

    def store(self, chunk: Chunk) -> int:
        """Store the chunk's rows; returns how many were new."""
        conn = self.conn
        move: str = self.move
        params: tuple[object, ...] = (self.provider,)
        if self.sqlite:
            driver = conn.connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                cursor.executemany(
                    f"INSERT INTO signin_stage ({COLUMNS}, lo, hi) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    chunk.rows,
                )
            finally:
                cursor.close()
        else:
            driver = conn.connection.driver_connection
            assert driver is not None
            with (
                driver.cursor() as cursor,
                cursor.copy(f"COPY signin_stage ({COLUMNS}) FROM STDIN") as copy,
            ):
                copy.write(chunk.copy)  # the rows as COPY's text, made by the reading process
            assert chunk.first is not None and chunk.last is not None
            # the first and last time a launch in the window of one of the chunk's rows can have
            lo, hi = chunk.first - join.BEFORE, chunk.last + join.AFTER
            if self._few_launches(lo, hi, JOIN_LAUNCHES * chunk.size):
                move, params = self.move_joined, (self.provider, lo, hi)
        new = int(conn.exec_driver_sql(move, params).rowcount)
        conn.exec_driver_sql("DELETE FROM signin_stage" if self.sqlite else "TRUNCATE signin_stage")
        return new

    def _few_launches(self, lo: dt.datetime, hi: dt.datetime, most: int) -> bool:
        """Whether at most ``most`` launches lie between ``lo`` and ``hi`` (an index range
        scan of ix_launch_event_ts that stops after ``most`` + 1)."""
        n = self.conn.exec_driver_sql(
            "SELECT COUNT(*) FROM (SELECT 1 FROM launch_event WHERE ts >= %s AND ts <= %s "
            "LIMIT %s) AS l",
            (lo, hi, max(most + 1, 0)),
        ).scalar_one()
        return int(n) <= most

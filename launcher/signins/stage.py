"""Storing a chunk of imported sign-ins set-based (launcher/signins/importer.py)."""

from __future__ import annotations

import sqlalchemy as sa

from launcher.signins import join

# One row to store: record id, time (as the database stores it, see join.db_time), pseudonym,
# registry app id ("" when unregistered), the provider's app id, the provider's app name (for
# an unregistered app only); on SQLite then the first and last time of a launch that makes it
# a sign-in through the portal (the window of launcher/signins/join.py, as stored). Plain
# tuples: nothing per record outlives its chunk.
Row = tuple[str, object, str, str, str, str] | tuple[str, str, str, str, str, str, str, str]
COLUMNS = "record_id, ts, user_id, app_id, provider_app_id, provider_app"


class Stage:
    """Stores chunks of rows set-based: a chunk goes into a temporary table (COPY on
    PostgreSQL, one prepared INSERT run for every row on SQLite), then one statement moves it
    into imported_signin with each row's department (user_first) and its match with the
    launches (one probe of ix_launch_event_user_ts per row, inside the database), leaving out
    the records stored before."""

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
        self.move = (
            f"INSERT INTO imported_signin (provider, {COLUMNS}, department, via_portal) "
            f"SELECT {p}, s.record_id, s.ts, s.user_id, s.app_id, s.provider_app_id, "
            "s.provider_app, COALESCE(f.department, ''), "
            "CASE WHEN s.app_id <> '' AND EXISTS (SELECT 1 FROM launch_event l "
            f"WHERE l.user_id = s.user_id AND l.ts >= {lo} AND l.ts <= {hi} "
            "AND l.app_id = s.app_id) THEN 1 ELSE 0 END "
            "FROM signin_stage s LEFT JOIN user_first f ON f.user_id = s.user_id "
            "WHERE true"  # SQLite's parser needs a WHERE before ON CONFLICT
        )
        # a record stored before is left out. SQLite: OR IGNORE, because with ON CONFLICT a
        # statement that may abort keeps a statement journal -- in memory (temp_store), as
        # large as the pages a chunk touches; OR IGNORE cannot abort (no other constraint on
        # the table), so it needs none
        if self.sqlite:
            self.move = self.move.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
        else:
            self.move += " ON CONFLICT (provider, record_id) DO NOTHING"
        self.provider = provider

    def store(self, chunk: list[Row]) -> int:
        """Store the chunk's rows; returns how many were new."""
        conn = self.conn
        if self.sqlite:
            driver = conn.connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                cursor.executemany(
                    f"INSERT INTO signin_stage ({COLUMNS}, lo, hi) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    chunk,
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
                for row in chunk:
                    copy.write_row(row)
        new = int(conn.exec_driver_sql(self.move, (self.provider,)).rowcount)
        conn.exec_driver_sql("DELETE FROM signin_stage" if self.sqlite else "TRUNCATE signin_stage")
        return new

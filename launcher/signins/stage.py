"""Storing a chunk of imported sign-ins set-based (launcher/signins/importer.py)."""

from __future__ import annotations

import sqlalchemy as sa

from launcher.signins import join

# One row to store: record id, its hash (record.record_hash), its record key
# (cellkey.imported_key), time (as the database stores it, see join.db_time), pseudonym,
# registry app id ("" when unregistered), the provider's app id, the provider's app name (for
# an unregistered app only); on SQLite then the first and last time of a launch that makes it
# a sign-in through the portal (the window of launcher/signins/join.py, as stored). Plain
# tuples: nothing per record outlives its chunk.
Row = (
    tuple[str, int, int, object, str, str, str, str]
    | tuple[str, int, int, str, str, str, str, str, str, str]
)
COLUMNS = "record_id, record_hash, record_key, ts, user_id, app_id, provider_app_id, provider_app"


class Stage:
    """Stores chunks of rows set-based: a chunk goes into a temporary table (COPY on
    PostgreSQL, one prepared INSERT run for every row on SQLite), then one statement moves it
    into imported_signin with each row's department (user_first) and its match with the
    launches (one probe of ix_launch_event_user_ts per row, inside the database), leaving out
    the records stored before: found by their hash (ix_imported_signin_record_hash), the ids
    compared, so that two records whose hashes collide are both kept. That is exact because
    imports exclude each other (launcher/signins/importer.py) and a chunk's own repeats are
    dropped before it is staged; a unique index on the text ids did the same for half of a
    PostgreSQL import's insert (bench/README.md)."""

    def __init__(self, conn: sa.Connection, provider: str) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        if self.sqlite:
            # the window's edges come staged, computed by the importer (Python's datetime
            # arithmetic keeps the microseconds, so the window is exact, as on PostgreSQL);
            # strftime() for them here cost a quarter of the move (bench/README.md)
            conn.exec_driver_sql("DROP TABLE IF EXISTS temp.signin_stage")
            conn.exec_driver_sql(
                "CREATE TEMP TABLE signin_stage (record_id TEXT, record_hash INTEGER, "
                "record_key INTEGER, ts TEXT, "
                "user_id TEXT, "
                "app_id TEXT, provider_app_id TEXT, provider_app TEXT, lo TEXT, hi TEXT)"
            )
            lo, hi = "s.lo", "s.hi"
        else:
            conn.exec_driver_sql(
                "CREATE TEMP TABLE IF NOT EXISTS signin_stage (record_id text, record_hash bigint, "
                "record_key bigint, "
                "ts timestamptz, user_id text, app_id text, provider_app_id text, "
                "provider_app text) ON COMMIT DROP"
            )
            lo = f"s.ts - interval '{join.BEFORE_S} seconds'"
            hi = f"s.ts + interval '{join.AFTER_S} seconds'"
        p = join.ph(conn)
        self.move = (
            f"INSERT INTO imported_signin (provider, {COLUMNS}, department, via_portal) "
            f"SELECT {p}, s.record_id, s.record_hash, s.record_key, s.ts, s.user_id, s.app_id, "
            "s.provider_app_id, s.provider_app, COALESCE(f.department, ''), "
            "CASE WHEN s.app_id <> '' AND EXISTS (SELECT 1 FROM launch_event l "
            f"WHERE l.user_id = s.user_id AND l.ts >= {lo} AND l.ts <= {hi} "
            "AND l.app_id = s.app_id) THEN 1 ELSE 0 END "
            "FROM signin_stage s LEFT JOIN user_first f ON f.user_id = s.user_id "
            "WHERE NOT EXISTS (SELECT 1 FROM imported_signin i WHERE i.record_hash = "
            f"s.record_hash AND i.record_id = s.record_id AND i.provider = {p})"
        )
        # SQLite: OR IGNORE, so that the statement cannot abort: one that may keeps a
        # statement journal -- in memory (temp_store), as large as the pages a chunk touches
        if self.sqlite:
            self.move = self.move.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
        self.provider = provider

    def store(self, chunk: list[Row]) -> int:
        """Store the chunk's rows; returns how many were new."""
        conn = self.conn
        if len({r[0] for r in chunk}) < len(chunk):  # a record twice in the chunk: the first
            first: dict[str, Row] = {}
            for r in chunk:
                first.setdefault(r[0], r)
            chunk = list(first.values())
        if self.sqlite:
            driver = conn.connection.driver_connection
            assert driver is not None
            cursor = driver.cursor()
            try:
                cursor.executemany(
                    f"INSERT INTO signin_stage ({COLUMNS}, lo, hi) VALUES ({', '.join('?' * 10)})",
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
        new = int(conn.exec_driver_sql(self.move, (self.provider, self.provider)).rowcount)
        conn.exec_driver_sql("DELETE FROM signin_stage" if self.sqlite else "TRUNCATE signin_stage")
        return new

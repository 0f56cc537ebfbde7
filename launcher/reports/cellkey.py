"""The cell-key method: small, consistent noise on every published count.

Suppressing figures about fewer than ``LAUNCHER_REPORT_MIN_GROUP`` people protects one table;
it does not stop a reviewer from subtracting two figures that are both shown (a category
minus its apps, 1-31 October minus 1-30 October). So every count the reports publish gets a
little noise, in the way statistics offices publish flexible tables (the Australian Bureau of
Statistics' cell-key method):

- every launch and sign-in has a *record key*, a number in 0 … 2**32 - 1 derived from the
  stored event (a hash of its pseudonymous user id, app and time -- for a sign-in imported
  from the identity provider's logs, of its pseudonym and record id: no one without the
  database can compute it, and ``launcher db rebuild-rollups`` derives the same key again);
  every person has a *person key*, a hash of the pseudonymous user id;
- the rollups keep, beside each count, the sum of its records' (or people's) keys modulo
  2**32 -- additive, so any range of days or grouping has a *cell key*;
- :func:`perturb` maps (count, cell key) to the published figure with a fixed table: the
  count plus a noise of at most 2 (at most 1 for counts of 100 to 199, so that every count
  of 100 or more is within 1 %), symmetric around 0, never making a positive count 0.

The same set of records always gets the same noise (asking again tells nothing new); two
different sets -- October with and without the 31st -- get unrelated noise, so their
difference is the small figure give or take a few. docs/PRIVACY.md says it in plain words.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import sqlite3
from typing import Any

import sqlalchemy as sa

MOD = 1 << 32
Count = tuple[int, int]  # (count, cell key)
NONE: Count = (0, 0)


def _key(text: str) -> int:
    return int.from_bytes(hashlib.md5(text.encode(), usedforsecurity=False).digest()[:4], "big")


def ts_text(ts: dt.datetime) -> str:
    """A UTC time as SQLite stores it and PostgreSQL's ``to_char`` below writes it."""
    if ts.tzinfo is not None and ts.tzinfo is not dt.UTC:
        ts = ts.astimezone(dt.UTC)
    # strftime("%Y-%m-%d %H:%M:%S.%f")'s text at a third of the cost: every launch of every
    # batch is keyed (the event writer's largest cost after the statements)
    return ts.replace(tzinfo=None).isoformat(" ", "microseconds")


def person_key(user_id: str) -> int:
    return _key("p|" + user_id)


def launch_key(ts: dt.datetime, app_id: str, user_id: str) -> int:
    return _key(f"l|{user_id}|{app_id}|{ts_text(ts)}")


def signin_key(ts: dt.datetime, user_id: str) -> int:
    return _key(f"s|{user_id}|{ts_text(ts)}")


def imported_key(user_id: str, provider: str, record_id: str) -> int:
    """The record key of an imported sign-in (launcher/signins): from the stored row's
    pseudonym, provider and the provider's record id -- fields that never change, so the
    import, the join's later updates and ``rebuild`` derive the same key; and the pseudonym
    makes it one that a holder of the provider's export alone cannot compute."""
    return _key(f"i|{user_id}|{provider}|{record_id}")


def add(a: Count, b: Count) -> Count:
    return a[0] + b[0], (a[1] + b[1]) % MOD


def max_noise(count: int) -> int:
    """The p-table: how far a count may move. 2, but 1 for 100-199 (within 1 %), and never
    so far that a positive count reaches 0."""
    bound = 1 if 100 <= count < 200 else 2
    return max(0, min(bound, count - 1))


def noise(count: int, key: int) -> int:
    """Uniform on -d … d (d = :func:`max_noise`), chosen by the cell key: zero on average."""
    d = max_noise(count)
    return ((key % MOD) * (2 * d + 1) >> 32) - d


def perturb(count: int, key: int) -> int:
    return count + noise(count, key) if count > 0 else count


def shown(value: Count, exact: bool = False) -> int:
    """The published figure of a (count, cell key); ``exact`` only for tests of the rollups'
    arithmetic and the attack tests' control run -- no report asks for it."""
    return value[0] if exact else perturb(*value)


# --- the same keys in SQL, for ``rebuild`` ----------------------------------------------------
def _sqlite_key(text: str | None) -> int:
    return _key(text or "")


@functools.lru_cache(maxsize=16384)  # people recur group after group in a fold
def _cached_person_key(user_id: str | None) -> int:
    # as launcher_key('p|' || user_id), which is launcher_key(NULL) for a NULL
    return _key("") if user_id is None else person_key(user_id)


def person_key_cached(user_id: str) -> int:
    """:func:`person_key`, cached: an import's fold meets the same people again and again."""
    return _cached_person_key(user_id)


def register(conn: sa.Connection) -> None:
    """SQLite has no hash function: give this connection ours (PostgreSQL has md5)."""
    if conn.dialect.name == "sqlite":
        raw: Any = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.create_function("launcher_key", 1, _sqlite_key, deterministic=True)
        # the imported sign-in's key from its three columns: no SQL concatenation per row
        raw.create_function("launcher_imported_key", 3, imported_key, deterministic=True)
        raw.create_function("launcher_person_key", 1, _cached_person_key, deterministic=True)


def sql_key(conn: sa.Connection, text_sql: str) -> str:
    """SQL for :func:`_key` of the text expression ``text_sql``."""
    if conn.dialect.name == "sqlite":
        return f"launcher_key({text_sql})"
    return f"('x' || substr(md5({text_sql}), 1, 8))::bit(32)::bigint"


def sql_ts_text(conn: sa.Connection, col: str) -> str:
    if conn.dialect.name == "sqlite":
        return col  # stored as this text already
    return f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"


def sql_person_key(conn: sa.Connection, user_col: str) -> str:
    if conn.dialect.name == "sqlite":  # a person's key once per connection, not once a group
        return f"launcher_person_key({user_col})"
    return sql_key(conn, f"'p|' || {user_col}")


def sql_launch_key(conn: sa.Connection) -> str:
    ts = sql_ts_text(conn, "ts")
    return sql_key(conn, f"'l|' || user_id || '|' || app_id || '|' || {ts}")


def sql_signin_key(conn: sa.Connection) -> str:
    return sql_key(conn, f"'s|' || user_id || '|' || {sql_ts_text(conn, 'ts')}")


def sql_imported_key(conn: sa.Connection) -> str:
    """SQL for :func:`imported_key` of an imported_signin row."""
    if conn.dialect.name == "sqlite":
        return "launcher_imported_key(user_id, provider, record_id)"
    return sql_key(conn, "'i|' || user_id || '|' || provider || '|' || record_id")

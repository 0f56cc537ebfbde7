"""Requests for missing apps: an employee names an app the portal does not offer them; the
admin page shows what is asked for, by how many people, and lets an admin dismiss it."""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from launcher import db
from launcher.dates import utc
from launcher.errors import BadRequest, TooManyRequests
from launcher.models import AppRequest, table

MAX_NAME = 120
PER_DAY = 10  # requests one person may make in 24 hours

T_REQUEST = table(AppRequest)


@dataclass(frozen=True)
class Summary:
    key: str
    name: str  # the latest spelling
    people: int
    departments: tuple[str, ...]
    last: dt.datetime


def tidy(name: object) -> tuple[str, str]:
    """The name as shown (whitespace collapsed) and its key (case-folded); BadRequest when
    there is nothing usable."""
    if not isinstance(name, str):
        raise BadRequest("Type the name of the app you are missing.")
    shown = " ".join(name.split())
    if not shown:
        raise BadRequest("Type the name of the app you are missing.")
    if len(shown) > MAX_NAME:
        raise BadRequest(f"That name is too long: at most {MAX_NAME} characters.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") for c in shown):
        raise BadRequest("That name contains characters that cannot be shown.")
    return shown, shown.casefold()


def add(
    engine: sa.Engine,
    user_id: str,
    department: str | None,
    name: object,
    now: dt.datetime | None = None,
) -> None:
    """Record that this person misses ``name``; asking again for the same app changes nothing."""
    shown, key = tidy(name)
    now = now or dt.datetime.now(dt.UTC)
    # Count, then insert: two parallel requests of one person would both count 9 and both
    # insert. One transaction at a time per person (a PostgreSQL advisory lock on a hash of
    # the user id; SQLite's BEGIN IMMEDIATE) makes the pair atomic.
    with db.serialized_write(engine, _lock_id(user_id)) as conn:
        mine = T_REQUEST.c.user_id == user_id
        if conn.execute(sa.select(T_REQUEST.c.id).where(mine, T_REQUEST.c.key == key)).first():
            return
        recent = conn.execute(
            sa.select(sa.func.count())
            .select_from(T_REQUEST)
            .where(mine, T_REQUEST.c.created_at >= now - dt.timedelta(days=1))
        ).scalar_one()
        if recent >= PER_DAY:
            raise TooManyRequests("You have asked for many apps today. Please try again tomorrow.")
        conn.execute(
            sa.insert(T_REQUEST).values(
                created_at=now, name=shown, key=key, user_id=user_id, department=department
            )
        )


def _lock_id(user_id: str) -> int:
    """A signed 64-bit advisory lock id for this person's requests."""
    digest = hashlib.sha256(b"launcher.app_request\0" + user_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def summary(engine: sa.Engine) -> list[Summary]:
    """Every requested app once: most people first, then the most recently asked."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                T_REQUEST.c.key,
                T_REQUEST.c.name,
                T_REQUEST.c.user_id,
                T_REQUEST.c.department,
                T_REQUEST.c.created_at,
            ).order_by(T_REQUEST.c.created_at, T_REQUEST.c.id)
        ).all()
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.key, []).append(row)
    result = [
        Summary(
            key=key,
            name=group[-1].name,
            people=len({r.user_id for r in group}),
            departments=tuple(sorted({r.department for r in group if r.department})),
            last=utc(group[-1].created_at),
        )
        for key, group in grouped.items()
    ]
    return sorted(result, key=lambda s: (-s.people, -s.last.timestamp(), s.key))


def dismiss(engine: sa.Engine, key: str) -> int:
    """Forget every request for one app (it was added, or will not be); returns how many."""
    with engine.begin() as conn:
        return conn.execute(sa.delete(T_REQUEST).where(T_REQUEST.c.key == key)).rowcount

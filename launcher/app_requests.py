"""Requests for missing apps: an employee names an app the portal does not offer them; the
admin page shows what is asked for, by how many people, and an admin closes the request.

Closing is one of two outcomes, both kept in a history (``app_request_closed``: the name, how
many people asked, their departments, which admin and when -- counts, not the askers'
pseudonyms). *Dismissed* deletes the open requests. *Added* (with the id of an app in the
registry) keeps each asker's row, marked with the app, until their grid has told them the app
is there: the first grid that shows the notice stamps it, the visit after that (or the notice's
button) removes it. A notice for an app the person may not see waits until they may.

The grid asks on every page whether there is a notice, and there hardly ever is: each worker
keeps the set of people with a notice waiting (:class:`Pending`, a few seconds old at most),
so only those people's pages read their rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from launcher import db
from launcher.dates import utc
from launcher.errors import BadRequest, TooManyRequests
from launcher.fresh import Fresh
from launcher.models import AppRequest, AppRequestClosed, table

MAX_NAME = 120
PER_DAY = 10  # requests one person may make in 24 hours
HISTORY_SHOWN = 50  # closed requests on the admin page, latest first
PENDING_SECONDS = 5.0  # how long a worker's set of people with a notice is used (Pending)
NOTICE_DAYS = 400  # a notice nobody came back for goes after this (LAUNCHER_RAW_RETENTION_DAYS)

T_REQUEST = table(AppRequest)
T_CLOSED = table(AppRequestClosed)
OPEN = T_REQUEST.c.added_app.is_(None)

Outcome = Literal["dismissed", "added"]


@dataclass(frozen=True)
class Summary:
    key: str
    name: str  # the latest spelling
    people: int
    departments: tuple[str, ...]
    last: dt.datetime


@dataclass(frozen=True)
class Closed:
    """One entry of the history."""

    name: str
    people: int
    departments: tuple[str, ...]
    outcome: Outcome
    app_id: str | None
    closed_by: str  # pseudonymous user id of the admin
    closed_at: dt.datetime


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
        if conn.execute(
            sa.select(T_REQUEST.c.id).where(mine, T_REQUEST.c.key == key, OPEN)
        ).first():
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
    """Every open request once: most people first, then the most recently asked."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                T_REQUEST.c.key,
                T_REQUEST.c.name,
                T_REQUEST.c.user_id,
                T_REQUEST.c.department,
                T_REQUEST.c.created_at,
            )
            .where(OPEN)
            .order_by(T_REQUEST.c.created_at, T_REQUEST.c.id)
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


def close(
    engine: sa.Engine,
    key: str,
    outcome: Outcome,
    closed_by: str,
    app_id: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Close the open requests for one app: ``dismissed`` deletes them, ``added`` (with the
    ``app_id``, which the caller has checked against the registry) keeps them as notices for
    their askers. Either way one history entry records it. Returns how many people had asked;
    0 (and no entry) when nothing was open, so a second click changes nothing."""
    if (outcome == "added") != (app_id is not None):
        raise ValueError("an app id goes with 'added', and only with it")
    now = now or dt.datetime.now(dt.UTC)
    with db.write_transaction(engine) as conn:  # reads, then writes
        rows = conn.execute(
            sa.select(
                T_REQUEST.c.name,
                T_REQUEST.c.user_id,
                T_REQUEST.c.department,
                T_REQUEST.c.created_at,
            )
            .where(T_REQUEST.c.key == key, OPEN)
            .order_by(T_REQUEST.c.created_at, T_REQUEST.c.id)
        ).all()
        if not rows:
            return 0
        people = len({r.user_id for r in rows})
        conn.execute(
            sa.insert(T_CLOSED).values(
                closed_at=now,
                key=key,
                name=rows[-1].name,
                people=people,
                departments=",".join(sorted({r.department for r in rows if r.department})),
                first_asked=rows[0].created_at,
                last_asked=rows[-1].created_at,
                outcome=outcome,
                app_id=app_id,
                closed_by=closed_by,
            )
        )
        selected = (T_REQUEST.c.key == key) & OPEN
        if outcome == "dismissed":
            conn.execute(sa.delete(T_REQUEST).where(selected))
        else:
            conn.execute(sa.update(T_REQUEST).where(selected).values(added_app=app_id))
        # Notices whose askers never came back do not stay for ever.
        conn.execute(
            sa.delete(T_REQUEST).where(
                T_REQUEST.c.added_app.is_not(None),
                T_REQUEST.c.created_at < now - dt.timedelta(days=NOTICE_DAYS),
            )
        )
    return people


def dismiss(engine: sa.Engine, key: str, closed_by: str, now: dt.datetime | None = None) -> int:
    """Dismiss the requests for one app (it will not be offered): see :func:`close`."""
    return close(engine, key, "dismissed", closed_by, now=now)


def mark_added(
    engine: sa.Engine, key: str, app_id: str, closed_by: str, now: dt.datetime | None = None
) -> int:
    """The requested app is in the registry now as ``app_id``: see :func:`close`."""
    return close(engine, key, "added", closed_by, app_id=app_id, now=now)


def history(engine: sa.Engine, limit: int = HISTORY_SHOWN) -> list[Closed]:
    """The latest closed requests, newest first."""
    c = T_CLOSED.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_CLOSED).order_by(c.closed_at.desc(), c.id.desc()).limit(limit)
        ).all()
    return [
        Closed(
            name=r.name,
            people=r.people,
            departments=tuple(d for d in r.departments.split(",") if d),
            outcome="added" if r.outcome == "added" else "dismissed",
            app_id=r.app_id,
            closed_by=r.closed_by,
            closed_at=utc(r.closed_at),
        )
        for r in rows
    ]


def notices(
    engine: sa.Engine,
    user_id: str,
    visible: Collection[str],
    now: dt.datetime | None = None,
    pending: Pending | None = None,
) -> list[str]:
    """The ids of apps this person asked for that were added since, to tell them on the grid
    (each once, in the order asked). Only apps in ``visible`` (the tiles they have) are told;
    a notice shown on an earlier visit is removed now, so it shows on one visit only.
    With ``pending``, nothing is read for a person who is not in it."""
    if pending is not None and not pending.has(engine, user_id):
        return []
    now = now or dt.datetime.now(dt.UTC)
    c = T_REQUEST.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.id, c.added_app, c.notice_shown_at)
            .where(c.user_id == user_id, c.added_app.is_not(None))
            .order_by(c.created_at, c.id)
        ).all()
    if not rows:  # the grid's usual case: one indexed read, no write
        return []
    seen = [r.id for r in rows if r.notice_shown_at is not None]
    fresh = [r for r in rows if r.notice_shown_at is None and r.added_app in visible]
    with engine.begin() as conn:
        if seen:
            conn.execute(sa.delete(T_REQUEST).where(c.id.in_(seen)))
        if fresh:
            conn.execute(
                sa.update(T_REQUEST)
                .where(c.id.in_([r.id for r in fresh]))
                .values(notice_shown_at=now)
            )
    return list(dict.fromkeys(str(r.added_app) for r in fresh))


class Pending(Fresh[frozenset[str]]):
    """One worker's set of the people who have a notice waiting (a request marked added),
    read again after ``seconds``, and dropped by :meth:`clear` when this worker's admin page
    marks a request added. A person missing from it has nothing to be told; one in it may
    have had their notices removed meanwhile, and their read finds that."""

    def __init__(
        self, seconds: float = PENDING_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(seconds, clock)

    def may_have(self, user_id: str) -> bool | None:
        """Whether ``user_id`` may have a notice; None when the set must be read first."""
        users = self.peek()
        return None if users is None else user_id in users

    def has(self, engine: sa.Engine, user_id: str) -> bool:
        return user_id in self.get(lambda: _waiting(engine))


def _waiting(engine: sa.Engine) -> frozenset[str]:
    """The people who have a notice waiting."""
    with engine.connect() as conn:
        return frozenset(
            conn.execute(
                sa.select(T_REQUEST.c.user_id).where(T_REQUEST.c.added_app.is_not(None)).distinct()
            ).scalars()
        )


def clear_notices(engine: sa.Engine, user_id: str) -> int:
    """The notice's button: remove the notices this person has been shown."""
    c = T_REQUEST.c
    with engine.begin() as conn:
        return conn.execute(
            sa.delete(T_REQUEST).where(
                c.user_id == user_id, c.added_app.is_not(None), c.notice_shown_at.is_not(None)
            )
        ).rowcount

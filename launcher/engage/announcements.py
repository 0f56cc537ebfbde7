"""Announcements: news that editors write on /admin/announcements.

An announcement is shown above the grid to its audience (``groups``, empty = everyone) between
``starts`` and ``ends`` (dates in the portal's time zone, both inclusive), in its ``language``
("" = both), until that person dismisses it. Each person it was shown to is one row in
``announcement_seen`` -- written once, with an insert that ignores a row already there, so that
a grid render that shows nothing new writes nothing -- and the number of those rows is its
reach, which editors see only from the minimum group size up.

The grid asks on every page; most pages have no announcement for that person. Each worker
keeps the current announcements for :data:`CACHE_SECONDS` (:class:`Current`), so such a page
reads nothing; a person with something to see still has their own marks read on every page,
so a dismissal shows at once. An editor's change is seen at once by the worker that made it
and within :data:`CACHE_SECONDS` by the others.
"""

from __future__ import annotations

import datetime as dt
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from launcher import db
from launcher.dates import utc
from launcher.errors import BadRequest, NotFound
from launcher.fresh import Fresh
from launcher.models import Announcement, AnnouncementSeen, table
from launcher.reports import cellkey

MAX_TITLE = 120
MAX_BODY = 1000
MAX_LINK = 2000
MAX_GROUPS = 2000  # the comma list as stored
LANGUAGES = ("", "nl", "en")
CACHE_SECONDS = 5.0  # how long a worker's list of current announcements is used (Current)

T_ANNOUNCEMENT = table(Announcement)
T_SEEN = table(AnnouncementSeen)


class InvalidField(BadRequest):
    """Bad input in one field of the announcement form; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Draft:
    """A validated announcement, before it is stored."""

    title: str
    body: str
    link: str | None
    starts: dt.date
    ends: dt.date
    groups: tuple[str, ...]
    language: str


@dataclass(frozen=True)
class Item:
    """A stored announcement."""

    id: int
    title: str
    body: str
    link: str | None
    starts: dt.date
    ends: dt.date
    groups: tuple[str, ...]
    language: str
    created_at: dt.datetime

    def for_audience(self, groups: Iterable[str] | None) -> bool:
        """Whether people (or a display) in ``groups`` are its audience; None means any."""
        return groups is None or not self.groups or not set(self.groups).isdisjoint(groups)

    def in_language(self, lang: str | None) -> bool:
        return lang is None or not self.language or self.language == lang

    def current(self, today: dt.date) -> bool:
        return self.starts <= today <= self.ends


@dataclass(frozen=True)
class Listed:
    """An announcement on the editors' page: its reach is None below the minimum group size."""

    item: Item
    reach: int | None
    status: str  # "current", "upcoming" or "ended"


def _text(field: str, value: object, limit: int, *, multiline: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, "this field is required.")
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not multiline:
        text = " ".join(text.split())
    if len(text) > limit:
        raise InvalidField(field, f"at most {limit} characters (this has {len(text)}).")
    allowed = "\n\t" if multiline else ""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") and c not in allowed for c in text):
        raise InvalidField(field, "contains control or invisible characters.")
    return text


def _link(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidField("link", "must be an https:// address.")
    link = value.strip()
    if len(link) > MAX_LINK:
        raise InvalidField("link", f"at most {MAX_LINK} characters.")
    parts = urlsplit(link)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or any(c.isspace() or ord(c) < 0x20 or c in "\\\x7f" for c in link)
    ):
        raise InvalidField("link", "must be an https:// address (no spaces, no user name).")
    return link


def _date(field: str, value: object) -> dt.date:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(field, "a date (YYYY-MM-DD) is required.")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidField(field, f"not a date (YYYY-MM-DD): {value.strip()[:20]!r}.") from None


def _groups(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, str):
        raise InvalidField("groups", "a comma-separated list of group names.")
    groups = tuple(dict.fromkeys(g.strip() for g in value.split(",") if g.strip()))
    for group in groups:
        if len(group) > 256 or any(unicodedata.category(c)[0] in "CZ" and c != " " for c in group):
            raise InvalidField("groups", f"not a group name: {group[:40]!r}.")
    if len(",".join(groups)) > MAX_GROUPS:
        raise InvalidField("groups", f"at most {MAX_GROUPS} characters in all.")
    return groups


def parse(form: Mapping[str, object]) -> Draft:
    """The announcement in an editor's form; InvalidField (400) naming the first bad field."""
    title = _text("title", form.get("title"), MAX_TITLE)
    body = _text("body", form.get("body"), MAX_BODY, multiline=True)
    link = _link(form.get("link"))
    starts = _date("starts", form.get("starts"))
    ends = _date("ends", form.get("ends"))
    if ends < starts:
        raise InvalidField("ends", "the end date is before the start date.")
    groups = _groups(form.get("groups"))
    language = form.get("language") or ""
    if language not in LANGUAGES:
        raise InvalidField("language", "nl, en, or empty for both.")
    assert isinstance(language, str)
    return Draft(title, body, link, starts, ends, groups, language)


def create(engine: sa.Engine, draft: Draft, author: str, now: dt.datetime | None = None) -> int:
    """Store ``draft`` (written by the pseudonymous ``author``); returns its id."""
    values = {
        "created_at": now or dt.datetime.now(dt.UTC),
        "title": draft.title,
        "body": draft.body,
        "link": draft.link,
        "starts": draft.starts,
        "ends": draft.ends,
        "groups": ",".join(draft.groups),
        "language": draft.language,
        "author": author,
    }
    with engine.begin() as conn:
        new_id = conn.execute(
            sa.insert(T_ANNOUNCEMENT).values(values).returning(T_ANNOUNCEMENT.c.id)
        ).scalar_one()
    return int(new_id)


def delete(engine: sa.Engine, announcement_id: int) -> bool:
    """Remove an announcement and who saw it; False when there was none with that id."""
    with engine.begin() as conn:
        conn.execute(sa.delete(T_SEEN).where(T_SEEN.c.announcement_id == announcement_id))
        deleted = conn.execute(
            sa.delete(T_ANNOUNCEMENT).where(T_ANNOUNCEMENT.c.id == announcement_id)
        ).rowcount
    return bool(deleted)


def item_of(row: Any) -> Item:
    """The announcement of a row of ``announcement``."""
    return Item(
        id=int(row.id),
        title=row.title,
        body=row.body,
        link=row.link,
        starts=row.starts,
        ends=row.ends,
        groups=tuple(g for g in row.groups.split(",") if g),
        language=row.language,
        created_at=utc(row.created_at),
    )


def current(
    conn: sa.Connection,
    today: dt.date,
    groups: Iterable[str] | None = None,
    lang: str | None = None,
) -> list[Item]:
    """Announcements in their window on ``today`` for ``groups`` (None: any audience) in
    ``lang`` (None: any language), newest start first."""
    a = T_ANNOUNCEMENT.c
    rows = conn.execute(
        sa.select(T_ANNOUNCEMENT)
        .where(a.starts <= today, a.ends >= today)
        .order_by(a.starts.desc(), a.id.desc())
    )
    wanted = None if groups is None else frozenset(groups)
    items = (item_of(row) for row in rows)
    return [i for i in items if i.for_audience(wanted) and i.in_language(lang)]


def for_user(
    engine: sa.Engine,
    user_id: str,
    groups: Iterable[str],
    lang: str,
    today: dt.date,
    cache: Current | None = None,
) -> list[Item]:
    """What the grid shows this person now (not dismissed), recording that they saw it.

    With ``cache`` the announcements come from it (read when stale), and the database is asked
    only for this person's marks on the ones for them: nothing at all when there are none."""
    if cache is None:
        return _for_user_joined(engine, user_id, frozenset(groups), lang, today)
    wanted = frozenset(groups)
    items = cache.peek(today)
    if items is None:
        with engine.connect() as conn:
            items = cache.read(conn, today)
    mine = [i for i in items if i.for_audience(wanted) and i.in_language(lang)]
    if not mine:
        return []
    s = T_SEEN.c
    with engine.connect() as conn:
        marks = dict(
            conn.execute(
                sa.select(s.announcement_id, s.dismissed).where(
                    s.user_id == user_id, s.announcement_id.in_([i.id for i in mine])
                )
            ).all()
        )
    visible = [i for i in mine if not marks.get(i.id)]
    _record_seen(engine, user_id, [i.id for i in visible if i.id not in marks])
    return visible


def _for_user_joined(
    engine: sa.Engine, user_id: str, wanted: frozenset[str], lang: str, today: dt.date
) -> list[Item]:
    a = T_ANNOUNCEMENT.c
    mine = sa.and_(T_SEEN.c.announcement_id == a.id, T_SEEN.c.user_id == user_id)
    # One query for the announcements and this person's marks on them: the grid pays one
    # round trip whether or not there is news (bench/bench_digest.py measures it).
    query = (
        sa.select(T_ANNOUNCEMENT, T_SEEN.c.dismissed)
        .select_from(T_ANNOUNCEMENT.outerjoin(T_SEEN, mine))
        .where(a.starts <= today, a.ends >= today)
        .order_by(a.starts.desc(), a.id.desc())
    )
    visible, unseen = [], []
    with engine.connect() as conn:
        for row in conn.execute(query):
            item = item_of(row)
            if not (item.for_audience(wanted) and item.in_language(lang)) or row.dismissed:
                continue
            visible.append(item)
            if row.dismissed is None:
                unseen.append(item.id)
    _record_seen(engine, user_id, unseen)
    return visible


def _record_seen(engine: sa.Engine, user_id: str, unseen: list[int]) -> None:
    if unseen:
        # a write transaction of its own (SQLite: a read that turns into a write can fail on
        # a concurrent commit); another tab recording the same view meanwhile is no error
        rows = [{"announcement_id": i, "user_id": user_id, "dismissed": False} for i in unseen]
        with engine.begin() as conn:
            conn.execute(_insert(conn)(T_SEEN).values(rows).on_conflict_do_nothing())


class Current(Fresh[list[Item]]):
    """One worker's copy of the announcements in their window today (every audience and
    language), read again after ``seconds`` or on another day, and dropped by :meth:`clear`
    when this worker's editor page writes or deletes one. ``peek(today)``: the announcements
    when the copy is fresh, else None (no database there)."""

    def __init__(
        self, seconds: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(seconds, clock)

    def read(self, conn: sa.Connection, today: dt.date) -> list[Item]:
        """The announcements, read through ``conn`` when the copy is not fresh."""
        return self.get(lambda: current(conn, today), today)


def _insert(conn: sa.Connection) -> Any:
    return sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert


def dismiss(engine: sa.Engine, announcement_id: int, user_id: str, groups: Iterable[str]) -> None:
    """Hide one announcement from this person for good; NotFound when it is not theirs to see."""
    with db.write_transaction(engine) as conn:  # reads, then writes
        row = conn.execute(
            sa.select(T_ANNOUNCEMENT).where(T_ANNOUNCEMENT.c.id == announcement_id)
        ).first()
        if row is None or not item_of(row).for_audience(groups):
            raise NotFound("There is no such announcement.")
        insert = _insert(conn)(T_SEEN).values(
            announcement_id=announcement_id, user_id=user_id, dismissed=True
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[T_SEEN.c.announcement_id, T_SEEN.c.user_id],
                set_={"dismissed": True},
            )
        )


def listing(engine: sa.Engine, today: dt.date, min_group: int) -> list[Listed]:
    """Every announcement for the editors' page, current and upcoming first, with its reach
    (distinct people shown it; None below ``min_group``)."""
    a = T_ANNOUNCEMENT.c
    query = sa.select(T_ANNOUNCEMENT).order_by(a.ends.desc(), a.starts.desc(), a.id.desc())
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        people_of = reach(conn)
    listed = []
    for row in rows:
        item = item_of(row)
        status = "upcoming" if today < item.starts else "ended" if today > item.ends else "current"
        people = people_of.get(item.id, (0, 0))[0]
        listed.append(Listed(item, people if people >= min_group else None, status))
    order = {"current": 0, "upcoming": 1, "ended": 2}
    return sorted(listed, key=lambda entry: order[entry.status])


def reach(
    conn: sa.Connection, ids: Iterable[int] | None = None, *, keyed: bool = False
) -> dict[int, tuple[int, int]]:
    """Per announcement (those in ``ids``, or all): the distinct people shown it, and with
    ``keyed`` the sum of their person keys modulo 2**32 -- the cell key with which the reports
    publish it (launcher/reports/cellkey.py, launcher/reports/sources.py); else 0. The
    editors' page and the reports count the same rows."""
    s = T_SEEN.c
    key: sa.ColumnElement[Any] = sa.literal(0)
    if keyed:
        cellkey.register(conn)
        key = sa.func.sum(sa.literal_column(cellkey.sql_person_key(conn, "user_id")))
    query = sa.select(s.announcement_id, sa.func.count(), key).group_by(s.announcement_id)
    if ids is not None:
        query = query.where(s.announcement_id.in_(list(ids)))
    return {int(i): (int(n), int(k or 0) % cellkey.MOD) for i, n, k in conn.execute(query)}

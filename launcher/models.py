"""Database tables. Every change to them goes with an Alembic migration in migrations/versions.

All tables live in this one module, longer than the house's ~400 lines, so that Alembic's
autogenerate and the migration tests (tests/test_migrations.py) see every table in one
metadata; sections below group them by the part of the portal that writes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def table(model: type[SQLModel]) -> sa.Table:
    """The SQLAlchemy table of a SQLModel class, typed (SQLModel declares ``__table__`` untyped)."""
    result = model.__table__  # type: ignore[attr-defined]
    assert isinstance(result, sa.Table)
    return result


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def _key() -> Any:
    """A cell key beside a count: the sum of its records' (or people's) keys modulo 2**32
    (launcher/reports/cellkey.py). BIGINT: PostgreSQL's INTEGER is signed 32-bit."""
    return Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))


class LaunchEvent(SQLModel, table=True):
    """One launch of one app. ``user_id`` is a keyed hash, never the raw identity."""

    __tablename__ = "launch_event"
    __table_args__ = (
        sa.Index("ix_launch_event_ts", "ts"),
        # a user's recent apps, from the index alone (migration 0020)
        sa.Index("ix_launch_event_user_ts", "user_id", "ts", "app_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(_ID, primary_key=True))
    ts: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    app_id: str = Field(max_length=64)
    user_id: str = Field(max_length=64)
    department: str | None = Field(default=None, max_length=128)
    source: str = Field(default="tile", max_length=16)


class SignInEvent(SQLModel, table=True):
    """One completed sign-in (a new session)."""

    __tablename__ = "signin_event"
    __table_args__ = (sa.Index("ix_signin_event_ts", "ts"),)

    id: int | None = Field(default=None, sa_column=sa.Column(_ID, primary_key=True))
    ts: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    user_id: str = Field(max_length=64)
    department: str | None = Field(default=None, max_length=128)


class Favourite(SQLModel, table=True):
    """An app a user starred on the grid."""

    __tablename__ = "favourite"

    user_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    app_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    created_at: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    # the person's order on the grid (migration 0011); ties keep the order of starring
    position: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )


class UserRecent(SQLModel, table=True):
    """When a user last launched an app: the grid's "recently used" row (launcher/personal.py),
    kept by each flush of launches and read with one short index scan of the person's rows
    instead of their launches (migration 0021). Rows older than the 90 days it looks back go
    with the daily purge."""

    __tablename__ = "user_recent"

    user_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    app_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    last_ts: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class AppStatus(SQLModel, table=True):
    """The last background check of an app's ``status_url`` (launcher/status.py). One row per
    app, shared by every worker and replica: a worker claims a check by moving
    ``last_checked`` forward with a conditional UPDATE, so an app is checked once a minute."""

    __tablename__ = "app_status"

    app_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    last_checked: dt.datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    ok: bool | None = Field(default=None, sa_column=sa.Column(sa.Boolean, nullable=True))
    status_code: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    # when ``ok`` last changed (or the first check): "may be down for 5 minutes"
    since: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    detail: str = Field(default="", sa_column=sa.Column(sa.String(200), nullable=False))


class AppRequest(SQLModel, table=True):
    """An employee's request for an app the portal does not offer them, for the admin page."""

    __tablename__ = "app_request"

    id: int | None = Field(default=None, sa_column=sa.Column(_ID, primary_key=True))
    created_at: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    name: str = Field(max_length=120)  # as typed (whitespace tidied)
    key: str = Field(sa_column=sa.Column(sa.String(120), nullable=False, index=True))
    user_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, index=True))
    department: str | None = Field(default=None, max_length=128)
    # Set when an admin marked the request as added: the row then only waits to tell its
    # asker, on their grid, that the app is there (launcher/app_requests.py).
    added_app: str | None = Field(default=None, max_length=64)
    notice_shown_at: dt.datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )


_TIME = sa.DateTime(timezone=True)


class AppRequestClosed(SQLModel, table=True):
    """The history of requests an admin closed: dismissed, or added as an app. Counts and
    departments only; the askers' pseudonyms are not kept here."""

    __tablename__ = "app_request_closed"

    id: int | None = Field(default=None, sa_column=sa.Column(_ID, primary_key=True))
    closed_at: dt.datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, index=True)
    )
    key: str = Field(max_length=120)
    name: str = Field(max_length=120)  # the latest spelling
    people: int
    departments: str = Field(default="", max_length=2000)  # comma list
    first_asked: dt.datetime = Field(sa_column=sa.Column(_TIME, nullable=False))
    last_asked: dt.datetime = Field(sa_column=sa.Column(_TIME, nullable=False))
    outcome: str = Field(max_length=10)  # "dismissed" or "added"
    app_id: str | None = Field(default=None, max_length=64)  # with "added"
    closed_by: str = Field(max_length=64)  # the admin's pseudonymous user id


class EventBatch(SQLModel, table=True):
    """The id of a batch of events that has been written, kept for a week: a batch that comes
    again (spooled as well as written, when a writer died between the two) is skipped."""

    __tablename__ = "event_batch"

    batch_id: str = Field(sa_column=sa.Column(sa.String(80), primary_key=True))
    written_at: dt.datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, index=True)
    )


class Revocation(SQLModel, table=True):
    """A signed-out session (kind ``sid``), all sessions of a user (``user``), or all sessions
    that belong to one provider session (``op_sid``). Workers poll this table by id."""

    __tablename__ = "revocation"

    id: int | None = Field(default=None, sa_column=sa.Column(_ID, primary_key=True))
    kind: str = Field(max_length=8)
    value: str = Field(max_length=128)
    # for kind "user": sessions created before this moment are dead
    created_at: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    expires_at: dt.datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, index=True)
    )


# --- rollups: what reports read (kept up to date as launches are flushed) ------------------
# Departments are stored as "" when unknown, so that they can be part of a primary key.


class UsageDay(SQLModel, table=True):
    """Launches per day x app x department."""

    __tablename__ = "usage_day"

    day: dt.date = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(primary_key=True, max_length=128)
    launches: int = 0
    launches_key: int = _key()


class UsageMonth(SQLModel, table=True):
    """Launches per month x app x department: usage_day's sums, so that a range of years
    reads a row per month and key and usage_day only at its edges (launcher/reports/
    queries.py)."""

    __tablename__ = "usage_month"

    month: dt.date = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(primary_key=True, max_length=128)
    launches: int = 0
    launches_key: int = _key()


class UserDay(SQLModel, table=True):
    """One row per user per day with activity: what distinct-user counts need."""

    __tablename__ = "user_day"
    # "was this user active between two days (in this department)": one index probe
    __table_args__ = (sa.Index("ix_user_day_user", "user_id", "day", "department", "launches"),)

    day: dt.date = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(default="", max_length=128)
    launches: int = 0
    signins: int = 0
    person_key: int = _key()
    launches_key: int = _key()
    signins_key: int = _key()


class UserDayApp(SQLModel, table=True):
    """One row per user per app per day: distinct users of an app over any range of days."""

    __tablename__ = "user_day_app"
    __table_args__ = (sa.Index("ix_user_day_app_user", "app_id", "user_id", "day"),)

    day: dt.date = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(default="", max_length=128)
    launches: int = 0
    person_key: int = _key()
    launches_key: int = _key()


class UserMonth(SQLModel, table=True):
    """One row per user per month with activity: monthly actives, cohorts, dormancy."""

    __tablename__ = "user_month"

    month: dt.date = Field(primary_key=True)  # first day of the month
    user_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(default="", max_length=128)
    launches: int = 0
    signins: int = 0
    person_key: int = _key()
    launches_key: int = _key()
    signins_key: int = _key()


class UserFirst(SQLModel, table=True):
    """The first day each user was seen: cohorts are built from it."""

    __tablename__ = "user_first"

    user_id: str = Field(primary_key=True, max_length=64)
    first_day: dt.date
    department: str = Field(default="", max_length=128)


class MonthStats(SQLModel, table=True):
    """Per-month totals, distinct counts included, kept incrementally."""

    __tablename__ = "month_stats"

    month: dt.date = Field(primary_key=True)
    active_users: int = 0  # signed in or launched
    launchers: int = 0  # launched at least one app
    launches: int = 0
    signins: int = 0
    active_key: int = _key()
    launchers_key: int = _key()
    launches_key: int = _key()
    signins_key: int = _key()


class DayStats(SQLModel, table=True):
    """Per-day totals, distinct counts included, kept incrementally (as MonthStats)."""

    __tablename__ = "day_stats"

    day: dt.date = Field(primary_key=True)
    active_users: int = 0
    launchers: int = 0
    launches: int = 0
    signins: int = 0
    active_key: int = _key()
    launchers_key: int = _key()
    launches_key: int = _key()
    signins_key: int = _key()


class MonthCell(SQLModel, table=True):
    """Launches and distinct users per month x weekday x hour (UTC), for the heatmap."""

    __tablename__ = "month_cell"

    month: dt.date = Field(primary_key=True)
    weekday: int = Field(primary_key=True)  # 0 = Monday
    hour: int = Field(primary_key=True)
    launches: int = 0
    users: int = 0
    launches_key: int = _key()


class CellSeen(SQLModel, table=True):
    """Which users were counted in which heatmap cell of a month. Only the recent months are
    kept: older months no longer change, and their MonthCell rows stay."""

    __tablename__ = "cell_seen"

    month: dt.date = Field(primary_key=True)
    weekday: int = Field(primary_key=True)
    hour: int = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=64)


class UserMonthApp(SQLModel, table=True):
    """One row per user per app per month: distinct users of an app over whole months."""

    __tablename__ = "user_month_app"

    month: dt.date = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(primary_key=True, max_length=64)
    launches: int = 0
    person_key: int = _key()
    launches_key: int = _key()


class MonthApp(SQLModel, table=True):
    """Launches and distinct users per app per month, kept incrementally."""

    __tablename__ = "month_app"

    month: dt.date = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    launches: int = 0
    users: int = 0
    launches_key: int = _key()
    users_key: int = _key()


class UserMonthSource(SQLModel, table=True):
    """That a user launched from a ``source`` (a tile, search, a favourite, the digest, …) in a
    month: the distinct people behind month_source's figures (launcher/reports/sources.py).
    Purged with the raw events."""

    __tablename__ = "user_month_source"

    month: dt.date = Field(primary_key=True)
    source: str = Field(primary_key=True, max_length=16)
    user_id: str = Field(primary_key=True, max_length=64)


class MonthSource(SQLModel, table=True):
    """Launches and distinct launching users per ``source`` per month, kept incrementally."""

    __tablename__ = "month_source"

    month: dt.date = Field(primary_key=True)
    source: str = Field(primary_key=True, max_length=16)
    launches: int = 0
    users: int = 0
    launches_key: int = _key()
    users_key: int = _key()


class CohortMonth(SQLModel, table=True):
    """Users first seen in ``cohort`` who were active in ``month``."""

    __tablename__ = "cohort_month"

    cohort: dt.date = Field(primary_key=True)
    month: dt.date = Field(primary_key=True)
    users: int = 0
    users_key: int = _key()


class PersonNumber(SQLModel, table=True):
    """A small number per person, given on first sight and never reused: the members of the
    people_day and people_month bitmaps (launcher/reports/people.py). ``person_key`` is the
    person's cell key (cellkey.person_key), kept so that reports can sum it over a bitmap."""

    __tablename__ = "person_number"

    user_id: str = Field(primary_key=True, max_length=64)
    number: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, unique=True))
    person_key: int = _key()


class PersonCounter(SQLModel, table=True):
    """One row: the next person number to give (it only grows, so a number is never reused
    after a purge) and a random ``epoch`` that changes when the numbering starts afresh, so
    that a report process's cache of person keys (launcher/reports/distinct.py) knows."""

    __tablename__ = "person_counter"

    id: int = Field(default=1, primary_key=True)
    next_number: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    epoch: str = Field(max_length=32)


_BITMAP = sa.LargeBinary()


class PeopleDay(SQLModel, table=True):
    """Who was active on a day, as Roaring bitmaps of person numbers (launcher/reports/
    people.py): per app (``app_id`` "" = any activity) and department ("" = every department;
    a person's department on a day is user_day's). ``active``: signed in or launched
    (empty in app rows); ``launched``: launched (that app)."""

    __tablename__ = "people_day"

    day: dt.date = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(primary_key=True, max_length=128)
    active: bytes = Field(sa_column=sa.Column(_BITMAP, nullable=False))
    launched: bytes = Field(sa_column=sa.Column(_BITMAP, nullable=False))


class PeopleMonth(SQLModel, table=True):
    """The union of a month's people_day bitmaps, per app and department, so that a range of
    years reads a bitmap per month and a few per day at its edges."""

    __tablename__ = "people_month"

    month: dt.date = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(primary_key=True, max_length=128)
    active: bytes = Field(sa_column=sa.Column(_BITMAP, nullable=False))
    launched: bytes = Field(sa_column=sa.Column(_BITMAP, nullable=False))


class PeopleStamp(SQLModel, table=True):
    """A version per day (``kind`` "day") and month ("month") of the bitmaps: a new random
    number each time a people_day (people_month) row of that day (month) is written or
    deleted, in the same transaction (launcher/reports/people.py). A report process keeps
    decoded bitmaps keyed by it (launcher/reports/distinct.py), so a stamp that has not
    changed means bitmaps that have not. No stamp: no rows."""

    __tablename__ = "people_stamp"

    kind: str = Field(primary_key=True, max_length=8)
    at: dt.date = Field(primary_key=True)
    version: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


# --- reasons to come back: announcements and the weekly digest (launcher/engage/) -----------


class Announcement(SQLModel, table=True):
    """News that editors write for the grid, the hallway screens and the digest."""

    __tablename__ = "announcement"
    __table_args__ = (sa.Index("ix_announcement_window", "ends", "starts"),)

    id: int | None = Field(default=None, sa_column=sa.Column(_ID, primary_key=True))
    created_at: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    title: str = Field(max_length=120)
    body: str = Field(sa_column=sa.Column(sa.String(1000), nullable=False))
    link: str | None = Field(default=None, max_length=2000)
    starts: dt.date
    ends: dt.date
    groups: str = Field(default="", max_length=2000)  # comma list; "" = everyone
    language: str = Field(default="", max_length=2)  # "nl", "en" or "" = both
    author: str = Field(max_length=64)  # pseudonymous user id of the editor


class AnnouncementSeen(SQLModel, table=True):
    """That one person saw one announcement (its reach), and whether they dismissed it."""

    __tablename__ = "announcement_seen"

    announcement_id: int = Field(
        sa_column=sa.Column(
            _ID, sa.ForeignKey("announcement.id", ondelete="CASCADE"), primary_key=True
        )
    )
    user_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    dismissed: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))


class DigestSubscriber(SQLModel, table=True):
    """Someone who opted in to the weekly digest. The row (and with it the e-mail address)
    goes when they opt out or unsubscribe (docs/PRIVACY.md)."""

    __tablename__ = "digest_subscriber"

    user_id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    email: str = Field(max_length=320)
    groups: str = Field(default="", max_length=4000)  # comma list, as of the last opt-in
    language: str = Field(default="", max_length=2)
    created_at: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    last_week: str | None = Field(default=None, max_length=8)  # ISO week sent, "2026-W21"


# --- imported sign-ins: the identity provider's logs, the denominator of the front door -----
# An app is a registry app id, or for an app without a tile ("unregistered") app_id "" and the
# provider's display name in provider_app; both are part of the keys below.


class ImportedSignIn(SQLModel, table=True):
    """One successful interactive sign-in from the provider's logs (launcher/signins). The user
    id is the portal's pseudonym, never the raw id. ``via_portal`` is 1 once a launch of the
    app by the same person falls in the window around it; ``department`` is the person's
    department as the portal knows it (user_first), "" when unknown."""

    __tablename__ = "imported_signin"
    __table_args__ = (
        # the same record imported twice (overlapping exports) is stored once
        sa.UniqueConstraint("provider", "record_id", name="uq_imported_signin_record"),
        sa.Index("ix_imported_signin_user_ts", "user_id", "ts"),  # the join's probes
        sa.Index("ix_imported_signin_ts", "ts"),  # purge, rebuild, the launch hook's gate
    )

    id: int | None = Field(default=None, sa_column=sa.Column(_ID, primary_key=True))
    provider: str = Field(max_length=16)
    record_id: str = Field(max_length=128)
    ts: dt.datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    user_id: str = Field(max_length=64)
    app_id: str = Field(default="", max_length=64)
    provider_app_id: str = Field(default="", max_length=128)
    provider_app: str = Field(default="", max_length=200)
    department: str = Field(default="", max_length=128)
    via_portal: int = Field(default=0, sa_column=sa.Column(sa.SmallInteger, nullable=False))


class SignInDay(SQLModel, table=True):
    """Imported sign-ins and those through the portal per day x app x department, each with
    its cell key (launcher/reports/cellkey.py)."""

    __tablename__ = "signin_day"

    day: dt.date = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    provider_app: str = Field(primary_key=True, max_length=200)
    department: str = Field(primary_key=True, max_length=128)
    signins: int = 0
    via_portal: int = 0
    signins_key: int = _key()
    via_key: int = _key()


class SignInUserMonth(SQLModel, table=True):
    """One row per user per app per month with imported sign-ins: the days of the month with
    one (bit 0 = the 1st) and those with one through the portal, for distinct users over the
    days of a month the period covers in part; and the counts, for the department's moves."""

    __tablename__ = "signin_user_month"

    month: dt.date = Field(primary_key=True)  # first day of the month
    app_id: str = Field(primary_key=True, max_length=64)
    provider_app: str = Field(primary_key=True, max_length=200)
    user_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(default="", max_length=128)
    signins: int = 0
    via_portal: int = 0
    days: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    via_days: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    person_key: int = _key()


class SignInPersonMonth(SQLModel, table=True):
    """As SignInUserMonth over all apps with a tile: one row per person per month, for the
    organisation's and the departments' distinct users (one row per person, not per app)."""

    __tablename__ = "signin_person_month"

    month: dt.date = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(default="", max_length=128)
    days: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    via_days: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    person_key: int = _key()


class SignInUserSpan(SQLModel, table=True):
    """Per user and app, the months of two calendar years with imported sign-ins (and with
    one through the portal) as bit masks (bit 0 is January of ``year``, bit 23 December of the
    year after; every month is in two rows): distinct users over whole months from one row per
    user and app, however many months the period has."""

    __tablename__ = "signin_user_span"

    year: int = Field(primary_key=True)
    app_id: str = Field(primary_key=True, max_length=64)
    provider_app: str = Field(primary_key=True, max_length=200)
    user_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(default="", max_length=128)
    months: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    via_months: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    person_key: int = _key()


class SignInPersonSpan(SQLModel, table=True):
    """As SignInUserSpan over all apps with a tile: one row per person."""

    __tablename__ = "signin_person_span"

    year: int = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=64)
    department: str = Field(default="", max_length=128)
    months: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    via_months: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    person_key: int = _key()


class SignInMonthUsers(SQLModel, table=True):
    """The distinct people of a month whose per-person sign-in rows were purged with the
    retention (launcher/signins/rollups.py ``purge_people``): per app (``kind`` app, ``key``
    the app id), app without a tile (unregistered, the provider's name), department and the
    organisation (all, ""), with those who came through the portal and the cell keys. Counts
    only, no pseudonyms: kept like signin_day."""

    __tablename__ = "signin_month_users"

    month: dt.date = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=16)
    key: str = Field(primary_key=True, max_length=200)
    users: int = 0
    via_users: int = 0
    users_key: int = _key()
    via_users_key: int = _key()


class SpentToken(SQLModel, table=True):
    """A single-use value that has been used: a sign-in ``state`` (kind ``state``) or a logout
    token's ``jti`` (kind ``jti``), as a hash, kept until it could no longer be presented.
    The primary key makes a second use fail on insert, whichever worker sees it."""

    __tablename__ = "spent_token"

    kind: str = Field(sa_column=sa.Column(sa.String(8), primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    expires_at: dt.datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, index=True)
    )

"""Database tables. Every change to them goes with an Alembic migration in migrations/versions."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class LaunchEvent(SQLModel, table=True):
    """One launch of one app. ``user_id`` is a keyed hash, never the raw identity."""

    __tablename__ = "launch_event"
    __table_args__ = (sa.Index("ix_launch_event_ts", "ts"),)

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

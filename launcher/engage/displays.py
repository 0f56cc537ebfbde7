"""Hallway screens (narrowcasting): which display a secret token opens, and what it shows.

A display is configured in the registry's ``displays:`` section (id, name, the environment
variable holding its token, the groups whose announcements it shows); :func:`from_config`
turns those entries into :class:`Display` values. The page shows no person: the announcements
current for its groups (in any language) and this week's most-launched apps, each only when
at least the minimum group size of distinct people launched it.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from launcher.engage import announcements
from launcher.errors import ConfigError
from launcher.models import UserDayApp, table
from launcher.registry import App, Registry

MIN_TOKEN = 24  # characters: a token in a URL must not be guessable
TOP_APPS = 8
T_USER_DAY_APP = table(UserDayApp)


@dataclass(frozen=True)
class Display:
    id: str
    name: str
    token: str
    groups: tuple[str, ...] | None = None  # None: every announcement


@dataclass(frozen=True)
class Board:
    """What one display shows now."""

    announcements: list[announcements.Item]
    apps: list[tuple[App, int]]  # (app, launches this week), most launched first


def from_config(entries: Iterable[Mapping[str, Any]], environ: Mapping[str, str]) -> list[Display]:
    """Displays from the registry's ``displays:`` entries (``id``, ``name``, ``token_env``,
    ``groups``), their tokens read from ``environ``; ConfigError naming a missing or short one."""
    displays = []
    for entry in entries:
        variable = str(entry["token_env"])
        token = environ.get(variable, "")
        if len(token) < MIN_TOKEN:
            raise ConfigError(
                f"display {entry['id']}: {variable} must hold a token of at least "
                f"{MIN_TOKEN} characters"
            )
        groups = entry.get("groups")
        displays.append(
            Display(
                id=str(entry["id"]),
                name=str(entry.get("name") or entry["id"]),
                token=token,
                groups=tuple(groups) if groups else None,
            )
        )
    return displays


def find(displays: Sequence[Display], token: str) -> Display | None:
    """The display whose token this is. Every token is compared in constant time, and all of
    them, so the answer's timing tells nothing about how close a guess came."""
    found = None
    given = token.encode()
    for display in displays:
        if hmac.compare_digest(display.token.encode(), given):
            found = display
    return found


def week_start(today: dt.date) -> dt.date:
    return today - dt.timedelta(days=today.weekday())  # Monday


def top_apps(
    conn: sa.Connection,
    registry: Registry,
    groups: Iterable[str] | None,
    today: dt.date,
    min_group: int,
    limit: int = TOP_APPS,
) -> list[tuple[App, int]]:
    """This week's most-launched apps (Monday to ``today``) that the display's audience may
    see, leaving out any app fewer than ``min_group`` distinct people launched."""
    c = T_USER_DAY_APP.c
    query = (
        sa.select(
            c.app_id,
            sa.func.sum(c.launches).label("launches"),
            sa.func.count(sa.distinct(c.user_id)).label("users"),
        )
        .where(c.day >= week_start(today), c.day <= today)
        .group_by(c.app_id)
        .having(sa.func.count(sa.distinct(c.user_id)) >= min_group)
        .order_by(sa.desc("launches"), c.app_id)
    )
    wanted = None if groups is None else frozenset(groups)
    result = []
    for row in conn.execute(query):
        app = registry.app(row.app_id)
        if app is None or app.hidden:
            continue
        if wanted is not None and not app.visible_to(wanted):
            continue
        result.append((app, int(row.launches)))
        if len(result) == limit:
            break
    return result


def board(
    engine: sa.Engine, registry: Registry, display: Display, today: dt.date, min_group: int
) -> Board:
    with engine.connect() as conn:
        news = announcements.current(conn, today, display.groups)
        apps = top_apps(conn, registry, display.groups, today, min_group)
    return Board(news, apps)

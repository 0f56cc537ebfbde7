"""Report queries. Pure functions of (engine, registry, parameters) -> rows; no HTTP here.

Every row about fewer distinct users than the minimum group size is suppressed, so that no
figure describes an individual.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from launcher.errors import BadRequest
from launcher.models import LaunchEvent
from launcher.registry import Registry

By = Literal["app", "category", "department", "day", "month"]
BY_VALUES: tuple[str, ...] = ("app", "category", "department", "day", "month")
_LAUNCH = LaunchEvent.__table__  # type: ignore[attr-defined]
MAX_RANGE_DAYS = 5 * 366


@dataclass(frozen=True)
class Period:
    start: dt.date  # inclusive
    end: dt.date  # inclusive

    @property
    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        lo = dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)
        hi = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        return lo, hi


def parse_period(start: str | None, end: str | None, today: dt.date) -> Period:
    """``from``/``to`` as YYYY-MM-DD (both inclusive); defaults to the last 30 days."""

    def parse(value: str | None, name: str, default: dt.date) -> dt.date:
        if value is None or value == "":
            return default
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise BadRequest(f"'{name}' must be a date as YYYY-MM-DD, got {value[:40]!r}") from None

    end_date = parse(end, "to", today)
    start_date = parse(start, "from", end_date - dt.timedelta(days=29))
    if start_date > end_date:
        raise BadRequest("'from' must not be after 'to'")
    if (end_date - start_date).days > MAX_RANGE_DAYS:
        raise BadRequest(f"a report covers at most {MAX_RANGE_DAYS} days")
    return Period(start_date, end_date)


def parse_by(value: str | None) -> By:
    value = value or "app"
    if value not in BY_VALUES:
        raise BadRequest(f"'by' must be one of {', '.join(BY_VALUES)}, got {value[:40]!r}")
    return value  # type: ignore[return-value]


def _key_expression(engine: sa.Engine, registry: Registry, by: By) -> sa.ColumnElement[Any]:
    ts = _LAUNCH.c.ts
    sqlite = engine.dialect.name == "sqlite"
    if by == "app":
        return _LAUNCH.c.app_id  # type: ignore[no-any-return]
    if by == "department":
        return sa.func.coalesce(_LAUNCH.c.department, "unknown")
    if by == "category":
        mapping = {app.id: app.category or "other" for app in registry.apps}
        if not mapping:
            return sa.literal("other")
        return sa.case(mapping, value=_LAUNCH.c.app_id, else_=sa.literal("other"))
    fmt = (
        ("%Y-%m-%d" if by == "day" else "%Y-%m")
        if sqlite
        else ("YYYY-MM-DD" if by == "day" else "YYYY-MM")
    )
    if sqlite:
        return sa.func.strftime(fmt, ts)
    return sa.func.to_char(sa.func.timezone("UTC", ts), fmt)


def launches(
    engine: sa.Engine, registry: Registry, period: Period, by: By, min_group: int
) -> list[dict[str, Any]]:
    """Launches and distinct users per key, keys with no launches left out, sorted by key."""
    key = _key_expression(engine, registry, by).label("key")
    lo, hi = period.bounds
    query = (
        sa.select(
            key,
            sa.func.count().label("launches"),
            sa.func.count(sa.distinct(_LAUNCH.c.user_id)).label("users"),
        )
        .where(_LAUNCH.c.ts >= lo, _LAUNCH.c.ts < hi)
        .group_by(key)
        .order_by(key)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        suppress({"key": r.key, "launches": r.launches, "users": r.users}, min_group) for r in rows
    ]


def suppress(row: dict[str, Any], min_group: int) -> dict[str, Any]:
    if row["users"] < min_group:
        return {"key": row["key"], "launches": None, "users": None, "suppressed": True}
    return row

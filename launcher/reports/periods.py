"""Report periods: a range of whole days (UTC), parsed from the API's ``from``/``to``, and the
periods reports compare it with (the one before, the months just after go-live)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from launcher.dates import add_months, month_end, month_of
from launcher.errors import BadRequest

By = Literal["app", "category", "department", "day", "month"]
BY_VALUES: tuple[str, ...] = ("app", "category", "department", "day", "month")
MAX_RANGE_DAYS = 5 * 366
# Dates a report may ask about. Reports reach back from a period (the one before, a year of
# trends) and forward (its end + 1 day): near year 1 or 9999 that arithmetic overflows, so the
# range is bounded well inside what dates (and PostgreSQL) can hold.
FIRST_DAY = dt.date(1970, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)


@dataclass(frozen=True)
class Period:
    start: dt.date  # inclusive
    end: dt.date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        lo = dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)
        hi = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        return lo, hi

    @property
    def whole_months(self) -> int:
        """How many calendar months the period is, when it is whole months; else 0."""
        if self.start.day != 1 or self.end != month_end(self.end):
            return 0
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1

    def previous(self) -> Period:
        """The period of the same kind just before: the previous month for a month, the
        previous quarter for a quarter, else as many days just before."""
        if n := self.whole_months:
            return Period(add_months(self.start, -n), self.start - dt.timedelta(days=1))
        return Period(self.start - dt.timedelta(days=self.days), self.start - dt.timedelta(days=1))

    def months(self) -> list[dt.date]:
        out, month = [], month_of(self.start)
        while month <= self.end:
            out.append(month)
            month = month_end(month) + dt.timedelta(days=1)
        return out


def month_period(month: dt.date) -> Period:
    return Period(month_of(month), month_end(month_of(month)))


def quarter_period(day: dt.date) -> Period:
    first = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    last = month_end(dt.date(first.year, first.month + 2, 1))
    return Period(first, last)


def parse_period(start: str | None, end: str | None, today: dt.date) -> Period:
    """``from``/``to`` as YYYY-MM-DD (both inclusive); defaults to the last 30 days."""

    def parse(value: str | None, name: str) -> dt.date | None:
        if value is None or value == "":
            return None
        try:
            date: dt.date | None = dt.date.fromisoformat(value)
        except ValueError:
            date = None
        if date is None or date.isoformat() != value:  # fromisoformat takes 2025-W10-1 too
            raise BadRequest(f"'{name}' must be a date as YYYY-MM-DD, got {value[:40]!r}")
        return check_in_range(date, name)

    given_start, given_end = parse(start, "from"), parse(end, "to")
    end_date = given_end or today
    start_date = given_start or end_date - dt.timedelta(days=29)
    if start_date > end_date:
        raise BadRequest("'from' must not be after 'to'")
    if (end_date - start_date).days > MAX_RANGE_DAYS:
        raise BadRequest(f"a report covers at most {MAX_RANGE_DAYS} days")
    return Period(start_date, end_date)


def check_in_range(day: dt.date, name: str) -> dt.date:
    """``day``, or BadRequest naming the parameter when a report cannot cover it."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadRequest(
            f"'{name}' must lie between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}, "
            f"got {day.isoformat()}"
        )
    return day


def parse_by(value: str | None, allowed: Sequence[str] = BY_VALUES) -> str:
    value = value or allowed[0]
    if value not in allowed:
        raise BadRequest(f"'by' must be one of {', '.join(allowed)}, got {value[:40]!r}")
    return value


def go_live_baseline(go_live: dt.date | None, period: Period) -> Period | None:
    """The period to compare with "just after go-live": from the first full month after
    go-live, as many calendar months as ``period`` has (a month for a month, three for a
    quarter), or as many days for a range that is not whole months."""
    if go_live is None:
        return None
    first = go_live if go_live.day == 1 else month_end(go_live) + dt.timedelta(days=1)
    if n := period.whole_months:
        return Period(first, add_months(first, n) - dt.timedelta(days=1))
    return Period(first, first + dt.timedelta(days=period.days - 1))


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return Period(month_of(first), last).months()


def period_from_query(get: Callable[[str], str | None], today: dt.date) -> tuple[str, Period]:
    """The period selector: month=YYYY-MM, quarter=YYYY-Qn, or from/to (custom)."""
    kind = get("period") or ("custom" if get("from") or get("to") else "month")
    if kind == "month":
        value = get("month")
        if value:
            try:
                month = dt.date.fromisoformat(value + "-01")
            except ValueError:
                raise BadRequest(f"'month' must be YYYY-MM, got {value[:20]!r}") from None
            check_in_range(month, "month")
        else:
            month = month_of(month_of(today) - dt.timedelta(days=1))  # last full month
        return kind, month_period(month)
    if kind == "quarter":
        value = get("quarter")
        if value:
            try:
                year, q = value.upper().split("-Q")
                day = dt.date(int(year), 3 * (int(q) - 1) + 1, 1)
            except ValueError:
                raise BadRequest(f"'quarter' must be YYYY-Qn, got {value[:20]!r}") from None
            check_in_range(day, "quarter")
        else:
            day = quarter_period(today).start - dt.timedelta(days=1)
        return kind, quarter_period(day)
    if kind == "custom":
        return kind, parse_period(get("from"), get("to"), today)
    raise BadRequest("'period' must be month, quarter or custom")

"""Date and time helpers shared by the reports, their rollups and the stores: UTC and months."""

from __future__ import annotations

import calendar
import datetime as dt


def utc(ts: dt.datetime) -> dt.datetime:
    """``ts`` in UTC; a naive time (SQLite hands those back) is taken to be UTC already."""
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def month_of(day: dt.date) -> dt.date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def add_months(month: dt.date, n: int) -> dt.date:
    """The first day of the month ``n`` months after ``month``'s (``n`` may be negative)."""
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def month_end(month: dt.date) -> dt.date:
    """The last day of ``month``'s month."""
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])

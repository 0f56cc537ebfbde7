"""launcher/reports/periods.py: parsing ``from``/``to`` and the periods reports compare with."""

from __future__ import annotations

import datetime as dt

import pytest

from launcher.dates import add_months, month_end
from launcher.errors import BadRequest
from launcher.reports.periods import (
    MAX_RANGE_DAYS,
    Period,
    go_live_baseline,
    parse_by,
    parse_period,
    quarter_period,
)

TODAY = dt.date(2025, 3, 15)
D = dt.date


def test_the_default_is_the_last_30_days_up_to_today() -> None:
    assert parse_period(None, None, TODAY) == Period(D(2025, 2, 14), TODAY)
    assert parse_period("", "", TODAY).days == 30
    assert parse_period(None, "2025-01-31", TODAY) == Period(D(2025, 1, 2), D(2025, 1, 31))


def test_both_ends_are_inclusive() -> None:
    period = parse_period("2025-03-01", "2025-03-01", TODAY)
    assert period.days == 1
    lo, hi = period.bounds
    assert lo == dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    assert hi == dt.datetime(2025, 3, 2, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("start", "end", "mentioned"),
    [
        pytest.param("2025-13-01", "2025-12-31", "'from'", id="month 13"),
        pytest.param("2025-01-01", "2025-02-30", "'to'", id="30 February"),
        pytest.param("yesterday", None, "'from'", id="words"),
        pytest.param("20250301", "2025-03-31", "'from'", id="no dashes"),
        pytest.param("2025-W10-1", "2025-03-31", "'from'", id="ISO week date"),
        pytest.param("2025-03-01T00:00:00", "2025-03-31", "'from'", id="with a time"),
        pytest.param("2025-04-01", "2025-03-01", "'from' must not be after", id="reversed"),
        pytest.param("2015-01-01", "2025-01-01", f"{MAX_RANGE_DAYS} days", id="too long"),
    ],
)
def test_bad_periods_are_refused_by_name(start: str, end: str | None, mentioned: str) -> None:
    with pytest.raises(BadRequest, match=mentioned):
        parse_period(start, end, TODAY)


def test_the_longest_period_allowed() -> None:
    end = D(2025, 1, 1)
    start = end - dt.timedelta(days=MAX_RANGE_DAYS)
    assert parse_period(start.isoformat(), end.isoformat(), TODAY).days == MAX_RANGE_DAYS + 1


def test_a_long_bad_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_period("x" * 1000, None, TODAY)
    assert len(str(caught.value)) < 200


def test_parse_by() -> None:
    assert parse_by(None) == "app" and parse_by("") == "app" and parse_by("month") == "month"
    assert parse_by(None, ("day", "month")) == "day"
    with pytest.raises(BadRequest, match="'by'"):
        parse_by("App")


@pytest.mark.parametrize(
    ("month", "n", "expected"),
    [
        (D(2025, 1, 1), 1, D(2025, 2, 1)),
        (D(2025, 12, 1), 1, D(2026, 1, 1)),
        (D(2025, 1, 1), -1, D(2024, 12, 1)),
        (D(2025, 3, 1), -15, D(2023, 12, 1)),
        (D(2025, 3, 1), 0, D(2025, 3, 1)),
        (D(2025, 1, 31), 1, D(2025, 2, 1)),  # the first of the month, whatever the day
    ],
)
def test_add_months(month: dt.date, n: int, expected: dt.date) -> None:
    assert add_months(month, n) == expected


def test_month_end_and_quarters() -> None:
    assert month_end(D(2024, 2, 10)) == D(2024, 2, 29)
    assert month_end(D(2025, 2, 1)) == D(2025, 2, 28)
    assert quarter_period(D(2025, 5, 20)) == Period(D(2025, 4, 1), D(2025, 6, 30))
    assert quarter_period(D(2025, 12, 31)) == Period(D(2025, 10, 1), D(2025, 12, 31))


def test_previous_period_is_of_the_same_kind() -> None:
    march = Period(D(2025, 3, 1), D(2025, 3, 31))
    assert march.whole_months == 1
    assert march.previous() == Period(D(2025, 2, 1), D(2025, 2, 28))
    q2 = Period(D(2025, 4, 1), D(2025, 6, 30))
    assert q2.whole_months == 3 and q2.previous() == Period(D(2025, 1, 1), D(2025, 3, 31))
    ten_days = Period(D(2025, 3, 5), D(2025, 3, 14))
    assert ten_days.whole_months == 0
    assert ten_days.previous() == Period(D(2025, 2, 23), D(2025, 3, 4))
    assert march.months() == [D(2025, 3, 1)]
    assert Period(D(2024, 12, 15), D(2025, 2, 1)).months() == [
        D(2024, 12, 1),
        D(2025, 1, 1),
        D(2025, 2, 1),
    ]


def test_go_live_baseline() -> None:
    march = Period(D(2025, 3, 1), D(2025, 3, 31))
    quarter = Period(D(2025, 4, 1), D(2025, 6, 30))
    ten_days = Period(D(2025, 3, 5), D(2025, 3, 14))
    assert go_live_baseline(None, march) is None
    # going live on the first: that month is the first full one
    assert go_live_baseline(D(2024, 9, 1), march) == Period(D(2024, 9, 1), D(2024, 9, 30))
    # mid-month: the first full month after
    assert go_live_baseline(D(2024, 9, 17), march) == Period(D(2024, 10, 1), D(2024, 10, 31))
    assert go_live_baseline(D(2024, 11, 17), quarter) == Period(D(2024, 12, 1), D(2025, 2, 28))
    assert go_live_baseline(D(2024, 9, 1), ten_days) == Period(D(2024, 9, 1), D(2024, 9, 10))

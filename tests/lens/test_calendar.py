"""lens.calendar: month arithmetic, units, windows and relative dates as of a run date. Pure Python.

Every expected date below is worked out by hand (2026-03-15 is a Sunday; 2024 and 2000 are leap
years, 1900 and 2100 are not).
"""
from __future__ import annotations

import datetime as dt
import importlib

import pytest

from lens.calendar import (
    FixedPeriod,
    RelativeDate,
    Window,
    add_months,
    days_in_month,
    month_end,
    month_start,
    parse_relative_date,
    parse_window,
    shift,
    unit_start,
)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# ----------------------------------------------------------------------------------------------
# month arithmetic
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "year, month, days",
    [(2026, 1, 31), (2026, 2, 28), (2024, 2, 29), (2000, 2, 29), (1900, 2, 28), (2100, 2, 28),
     (2026, 4, 30), (2026, 6, 30), (2026, 9, 30), (2026, 11, 30), (2026, 12, 31), (2026, 7, 31)],
)
def test_days_in_month(year, month, days):
    assert days_in_month(year, month) == days


@pytest.mark.parametrize(
    "day, months, expected",
    [
        ("2026-03-15", 0, "2026-03-15"),
        ("2026-01-31", 1, "2026-02-28"),     # month end: February is shorter
        ("2024-01-31", 1, "2024-02-29"),     # leap year
        ("2000-01-31", 1, "2000-02-29"),     # a century divisible by 400 is a leap year
        ("1900-01-31", 1, "1900-02-28"),     # other centuries are not
        ("2024-02-29", 12, "2025-02-28"),    # a leap day a year later
        ("2024-02-29", 48, "2028-02-29"),    # ... and four years later
        ("2026-05-31", 1, "2026-06-30"),
        ("2026-03-31", -1, "2026-02-28"),    # negative offsets clamp too
        ("2026-08-31", -6, "2026-02-28"),
        ("2026-01-15", -1, "2025-12-15"),    # January wraps back to December
        ("2025-12-15", 1, "2026-01-15"),     # December wraps on to January
        ("2026-12-31", 2, "2027-02-28"),
        ("2026-01-31", -13, "2024-12-31"),
        ("2026-01-01", -24, "2024-01-01"),
        ("2026-10-31", -120, "2016-10-31"),
    ],
)
def test_add_months(day, months, expected):
    assert add_months(d(day), months) == d(expected)


@pytest.mark.parametrize(
    "day, months, expected",
    [
        ("2026-03-15", 0, "2026-03-01"),
        ("2026-03-15", -1, "2026-02-01"),
        ("2026-01-31", -1, "2025-12-01"),    # "last month" of January is December of the year before
        ("2026-01-31", 0, "2026-01-01"),
        ("2026-01-31", -13, "2024-12-01"),
        ("2025-12-31", 1, "2026-01-01"),
        ("2026-03-31", -12, "2025-03-01"),
        ("2026-02-28", 11, "2027-01-01"),
        ("2024-02-29", -24, "2022-02-01"),
    ],
)
def test_month_start(day, months, expected):
    assert month_start(d(day), months) == d(expected)


@pytest.mark.parametrize(
    "day, months, expected",
    [
        ("2024-02-10", 0, "2024-02-29"),
        ("2026-02-10", 0, "2026-02-28"),
        ("2100-02-01", 0, "2100-02-28"),
        ("2026-03-15", -1, "2026-02-28"),
        ("2026-01-15", -1, "2025-12-31"),
        ("2025-12-01", 2, "2026-02-28"),
        ("2026-04-30", 0, "2026-04-30"),
    ],
)
def test_month_end(day, months, expected):
    assert month_end(d(day), months) == d(expected)


@pytest.mark.parametrize(
    "day, unit, expected",
    [
        ("2026-03-15", "day", "2026-03-15"),
        ("2026-03-15", "week", "2026-03-09"),      # Sunday -> its Monday
        ("2026-03-09", "week", "2026-03-09"),      # a Monday is its own week's start
        ("2026-01-01", "week", "2025-12-29"),      # the week crosses the year
        ("2026-03-15", "month", "2026-03-01"),
        ("2026-03-15", "quarter", "2026-01-01"),
        ("2026-05-20", "quarter", "2026-04-01"),
        ("2026-12-31", "quarter", "2026-10-01"),
        ("2026-12-31", "year", "2026-01-01"),
    ],
)
def test_unit_start(day, unit, expected):
    assert unit_start(d(day), unit) == d(expected)


@pytest.mark.parametrize(
    "day, unit, count, expected",
    [
        ("2026-03-01", "day", -1, "2026-02-28"),
        ("2024-03-01", "day", -1, "2024-02-29"),
        ("2026-03-09", "week", -2, "2026-02-23"),
        ("2026-01-31", "month", 1, "2026-02-28"),
        ("2026-01-01", "quarter", -1, "2025-10-01"),
        ("2024-02-29", "year", 1, "2025-02-28"),
        ("2024-02-29", "year", -4, "2020-02-29"),
    ],
)
def test_shift(day, unit, count, expected):
    assert shift(d(day), unit, count) == d(expected)


def test_an_unknown_unit_is_an_error():
    with pytest.raises(ValueError, match=r"unknown unit 'fortnight' \(one of day, week, month, quarter, year\)"):
        unit_start(d("2026-03-15"), "fortnight")


def _months_by_walking(day: dt.date, months: int) -> dt.date:
    """add_months by stepping one month at a time over first days (an independent construction)."""
    first = day.replace(day=1)
    step = 1 if months >= 0 else -1
    for _ in range(abs(months)):
        first = (first + dt.timedelta(days=32)).replace(day=1) if step > 0 else (first - dt.timedelta(days=1)).replace(day=1)
    last_day = ((first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)).day
    return first.replace(day=min(day.day, last_day))


def test_add_months_agrees_with_walking_month_by_month():
    days = [d("2023-12-28") + dt.timedelta(days=i) for i in range(0, 800, 3)]
    for day in days:
        for months in (-25, -13, -12, -2, -1, 0, 1, 2, 11, 12, 13, 25):
            assert add_months(day, months) == _months_by_walking(day, months), (day, months)
            assert month_start(day, months) == _months_by_walking(day, months).replace(day=1), (day, months)


# ----------------------------------------------------------------------------------------------
# windows
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window, run_date, first, last",
    [
        (Window.days_ending_on_run_date(30), "2026-03-15", "2026-02-14", "2026-03-15"),
        (Window.days_ending_on_run_date(1), "2026-03-15", "2026-03-15", "2026-03-15"),
        (Window.days_ending_on_run_date(3), "2024-03-01", "2024-02-28", "2024-03-01"),
        (Window.months_before_run_date(1), "2026-03-15", "2026-02-01", "2026-02-28"),
        (Window.months_before_run_date(1), "2026-01-01", "2025-12-01", "2025-12-31"),
        (Window.months_before_run_date(1), "2024-03-31", "2024-02-01", "2024-02-29"),
        (Window.months_before_run_date(12), "2026-03-15", "2025-03-01", "2026-02-28"),
        (Window.months_before_run_date(12), "2026-01-31", "2025-01-01", "2025-12-31"),
        (Window("month", 0, 0), "2026-03-15", "2026-03-01", "2026-03-15"),     # this month, cut at D
        (Window("week", -1, 0), "2026-03-15", "2026-03-02", "2026-03-15"),
        (Window("week", -1, -1), "2026-01-01", "2025-12-22", "2025-12-28"),
        (Window("quarter", -1, -1), "2026-01-15", "2025-10-01", "2025-12-31"),
        (Window("quarter", 0, 0), "2026-05-20", "2026-04-01", "2026-05-20"),
        (Window("year", -1, -1), "2026-03-15", "2025-01-01", "2025-12-31"),
        (Window("year", 0, 0), "2026-03-15", "2026-01-01", "2026-03-15"),
        (Window("day", -1, -1), "2026-03-01", "2026-02-28", "2026-02-28"),
        (Window("day", -30, -1), "2026-03-15", "2026-02-13", "2026-03-14"),    # lens "last 30 days": D excluded
    ],
)
def test_window_bounds(window, run_date, first, last):
    assert window.bounds(d(run_date)) == (d(first), d(last))
    assert window.half_open(d(run_date)) == (d(first), d(last) + dt.timedelta(days=1))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"days": 30}, Window("day", -29, 0)),
        ({"calendar_months": 1}, Window("month", -1, -1)),
        ({"calendar_months": 12}, Window("month", -12, -1)),
        ({"unit": "quarter", "start": -4, "end": -1}, Window("quarter", -4, -1)),
        ({"unit": "day", "start": -29, "end": 0, "days": None}, Window("day", -29, 0)),   # unset keys are None
        ("last 12 months", Window("month", -12, -1)),
        ("last month", Window("month", -1, -1)),
        ("this month", Window("month", 0, 0)),
        ("today", Window("day", 0, 0)),
        ("yesterday", Window("day", -1, -1)),
        ("last 30 days", Window("day", -30, -1)),
        ("Last   2 Weeks", Window("week", -2, -1)),
        ("this quarter", Window("quarter", 0, 0)),
        ("last year", Window("year", -1, -1)),
    ],
)
def test_every_window_spelling_reads_into_one_canonical_window(raw, expected):
    window = parse_window(raw)
    assert window == expected
    assert parse_window(window.to_config()) == window


def test_the_spellings_that_mean_the_same_are_equal_and_those_that_do_not_are_not():
    assert parse_window({"calendar_months": 12}) == parse_window("last 12 months")
    assert parse_window({"calendar_months": 1}) == parse_window("last month")
    # `{days: 30}` includes the run date; the lens's `last 30 days` ends the day before
    assert parse_window({"days": 30}) != parse_window("last 30 days")
    assert parse_window({"days": 1}) == parse_window("today")


@pytest.mark.parametrize(
    "window, months",
    [(Window("month", -12, -1), 12), (Window("month", -1, -1), 1), (Window("quarter", -4, -1), 12),
     (Window("year", -2, -1), 24), (Window("month", 0, 0), None), (Window("month", -3, 0), None),
     (Window("day", -29, 0), None), (Window("week", -4, -1), None)],
)
def test_whole_calendar_months_of_a_window(window, months):
    assert window.calendar_months == months


@pytest.mark.parametrize(
    "raw, message",
    [
        ({}, r"'window' needs exactly one of \{unit: day\|week\|month\|quarter\|year, start: S, end: E\}, "
             r"\{days: N\}, \{calendar_months: N\}"),
        ({"days": 3, "calendar_months": 1}, r"'window' needs exactly one of"),
        ({"days": 3, "unit": "day"}, r"'window' needs exactly one of"),
        ({"start": -1, "end": 0}, r"'window' needs exactly one of"),
        ({"calendar_months": 2, "end": -1}, r"'window' needs exactly one of"),
        ({"days": 0}, r"'window\.days' must be at least 1, got 0"),
        ({"calendar_months": -1}, r"'window\.calendar_months' must be at least 1, got -1"),
        ({"days": True}, r"'window\.days' must be a whole number, got True"),
        ({"days": 2.5}, r"'window\.days' must be a whole number, got 2\.5"),
        ({"weeks": 2}, r"unknown key 'window\.weeks'"),
        ({"unit": "hour", "start": -1, "end": -1}, r"'window\.unit' must be one of day, week, month, quarter, year, got 'hour'"),
        ({"unit": "month", "start": -1}, r"'window\.end' is required with unit"),
        ({"unit": "month", "start": -1, "end": 1}, r"'window': a window ends with the run date's month \(end 0\) or before, got end 1"),
        ({"unit": "month", "start": -1, "end": -2}, r"'window': a window's start \(-1\) must not be after its end \(-2\)"),
        ("soon", r"'window' must be one of .* or a relative range such as 'last 12 months'; got 'soon'"),
        ("last 0 days", r"'window': 'last 0 days' covers no time"),
        (["days", 3], r"'window' must be one of"),
    ],
)
def test_bad_windows_name_the_key(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_window(raw, "window")


# ----------------------------------------------------------------------------------------------
# fixed periods: the same days on every run date
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "run_date, first, last",
    [
        # 2026 Q1 before it begins (first after last: no day), inside it (cut at D), on its last day, after it
        ("2025-12-31", "2026-01-01", "2025-12-31"),
        ("2026-01-01", "2026-01-01", "2026-01-01"),
        ("2026-02-10", "2026-01-01", "2026-02-10"),
        ("2026-03-31", "2026-01-01", "2026-03-31"),
        ("2027-07-04", "2026-01-01", "2026-03-31"),
    ],
)
def test_a_fixed_period_does_not_move_with_the_run_date(run_date, first, last):
    q1 = parse_window({"first_day": d("2026-01-01"), "last_day": "2026-03-31"})
    assert q1 == FixedPeriod(d("2026-01-01"), d("2026-03-31"))
    assert q1.bounds(d(run_date)) == (d(first), d(last))
    assert q1.half_open(d(run_date)) == (d(first), d(last) + dt.timedelta(days=1))


@pytest.mark.parametrize(
    "first, last, months",
    [("2026-01-01", "2026-03-31", 3), ("2025-11-01", "2026-02-28", 4), ("2024-02-01", "2024-02-29", 1),
     ("2024-02-01", "2024-02-28", None), ("2026-01-02", "2026-03-31", None), ("2026-03-15", "2026-03-15", None)],
)
def test_whole_calendar_months_of_a_fixed_period(first, last, months):
    assert FixedPeriod(d(first), d(last)).calendar_months == months


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"first_day": "2026-01-01"}, r"'window\.last_day' is required with first_day"),
        ({"last_day": "2026-01-01"}, r"'window\.first_day' is required with last_day"),
        ({"first_day": "2026-04-01", "last_day": "2026-03-31"},
         r"'window': a fixed period's first_day \(2026-04-01\) must not be after its last_day \(2026-03-31\)"),
        ({"first_day": "1 January", "last_day": "2026-03-31"}, r"'window\.first_day' must be a date \(YYYY-MM-DD\), got '1 January'"),
        ({"first_day": "2026-01-01", "last_day": 20260331}, r"'window\.last_day' must be a date \(YYYY-MM-DD\), got 20260331"),
        ({"first_day": "2026-01-01", "last_day": "2026-03-31", "days": 3}, r"'window' needs exactly one of .*\{first_day: YYYY-MM-DD, last_day: YYYY-MM-DD\}"),
    ],
)
def test_bad_fixed_periods_name_the_key(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_window(raw, "window")


def test_a_window_checks_itself():
    with pytest.raises(ValueError, match="ends with the run date's day"):
        Window("day", -1, 3)
    with pytest.raises(ValueError, match="unknown unit"):
        Window("days", -1, 0)


@pytest.mark.parametrize("text", ["2026-01-01", "last 2 month", "next month", "last -1 days", ""])
def test_text_that_is_no_relative_range_is_none(text):
    assert Window.from_phrase(text) is None


def test_the_lens_date_ranges_agree_with_windows_on_every_day():
    """lens.query_format.resolve_date_range (today's lens) and Window.from_phrase(...).half_open give
    the same [start, stop) for every relative phrase and run date over three years."""
    resolve = getattr(importlib.import_module("lens.query_format"), "resolve_date_range", None)
    if resolve is None:
        pytest.skip("lens.query_format.resolve_date_range is gone: the lens reads lens.calendar now")
    phrases = ["today", "yesterday", "this week", "this month", "this quarter", "this year", "last day",
               "last week", "last month", "last quarter", "last year", "last 7 days", "last 30 days",
               "last 2 weeks", "last 1 months", "last 6 months", "last 12 months", "last 13 months",
               "last 2 quarters", "last 3 years"]
    midnight = lambda day: dt.datetime.combine(day, dt.time())  # noqa: E731
    run_date = d("2023-12-25")
    while run_date <= d("2026-12-31"):
        for phrase in phrases:
            first, stop = Window.from_phrase(phrase).half_open(run_date)
            assert resolve((phrase,), run_date, "test") == (midnight(first), midnight(stop)), (phrase, run_date)
        run_date += dt.timedelta(days=1)


# ----------------------------------------------------------------------------------------------
# relative dates
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, run_date, expected",
    [
        ({"days_before_run_date": 30}, "2026-03-01", "2026-01-30"),
        ({"days_before_run_date": 0}, "2026-03-01", "2026-03-01"),
        ({"days_before_run_date": -3}, "2026-02-27", "2026-03-02"),      # a negative count is after D
        ({"month_start": -1}, "2026-03-15", "2026-02-01"),
        ({"month_start": -1}, "2026-01-31", "2025-12-01"),
        ({"month_start": 0}, "2026-01-31", "2026-01-01"),
        ({"month_start": -13}, "2026-01-31", "2024-12-01"),
        ({"month_start": 1}, "2025-12-31", "2026-01-01"),
        ({"unit": "month", "offset": -1}, "2026-03-15", "2026-02-01"),
        ({"unit": "day", "offset": -30}, "2026-03-01", "2026-01-30"),
        ({"unit": "week", "offset": -1}, "2026-03-15", "2026-03-02"),
        ({"unit": "week", "offset": 0}, "2026-01-01", "2025-12-29"),
        ({"unit": "quarter", "offset": 1}, "2026-03-15", "2026-04-01"),
        ({"unit": "quarter", "offset": -1}, "2026-01-15", "2025-10-01"),
        ({"unit": "year", "offset": -1}, "2024-02-29", "2023-01-01"),
    ],
)
def test_relative_dates(raw, run_date, expected):
    relative = parse_relative_date(raw)
    assert relative.on(d(run_date)) == d(expected)
    assert parse_relative_date(relative.to_config()) == relative


def test_the_older_relative_date_spellings_are_synonyms():
    assert parse_relative_date({"days_before_run_date": 30}) == RelativeDate("day", -30)
    assert parse_relative_date({"month_start": -1}) == RelativeDate("month", -1)
    # the first day of a window is the relative date of its start
    assert RelativeDate("month", -12).on(d("2026-03-15")) == Window.months_before_run_date(12).bounds(d("2026-03-15"))[0]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"weeks_ago": 2}, r"'value': a run-date relative date is one of \{unit: day\|week\|month\|quarter\|year, "
                           r"offset: K\}, \{days_before_run_date: N\}, \{month_start: K\}; got \{'weeks_ago': 2\}"),
        ({"month_start": 1.5}, r"'value\.month_start' must be a whole number, got 1\.5"),
        ({"days_before_run_date": "30"}, r"'value\.days_before_run_date' must be a whole number, got '30'"),
        ({"month_start": -1, "days_before_run_date": 2}, r"a run-date relative date is one of"),
        ({"unit": "month"}, r"a run-date relative date is one of"),
        ({"unit": "month", "offset": -1, "days": 2}, r"a run-date relative date is one of"),
        ({"unit": "fortnight", "offset": -1}, r"'value\.unit' must be one of day, week, month, quarter, year"),
        ({"unit": "month", "offset": "-1"}, r"'value\.offset' must be a whole number"),
        ("last month", r"a run-date relative date is one of"),
    ],
)
def test_bad_relative_dates_name_the_key(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_relative_date(raw)

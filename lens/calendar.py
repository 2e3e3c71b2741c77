"""Dates relative to a run date: month arithmetic and the one window vocabulary. Pure Python.

Everything c360 computes "as of" the run date D uses these, never the wall clock: the computed traits'
windows (jobs/traits), the segments' run-date relative values (jobs/segments) and the lens's relative
date ranges (`last 12 months`). The lens is a library: this module imports nothing from jobs/ (jobs
import it) and needs no Spark.

Units are day, week (Monday to Sunday), month, quarter (from January, April, July, October) and year.
A unit offset counts whole units from the unit that contains D: 0 is D's own unit (its day, week,
month, ...), -1 the one before, -12 (months) the same month a year earlier.

Window (canonical spelling `{unit: U, start: S, end: E}`): the units S .. E, both included, as of D:
the unit 0 ends at D (later days have not happened yet). Every spelling in use reads into one:

    {days: N}                 the N days ending on D, D included   = {unit: day, start: -(N-1), end: 0}
    {calendar_months: N}      the N whole months before D's month  = {unit: month, start: -N, end: -1}
    "last N months"           (lens dateRange) the same            = {unit: month, start: -N, end: -1}
    "last N days"             the N days before D, D excluded      = {unit: day, start: -N, end: -1}
    "last month" / "this month" / "today" / "yesterday"            = {unit: month, start: -1, end: -1} /
                              {unit: month, start: 0, end: 0} / {unit: day, start: 0, end: 0} /
                              {unit: day, start: -1, end: -1}   (likewise week, quarter, year)

FixedPeriod (`{first_day: 2026-01-01, last_day: 2026-03-31}`): the days first_day .. last_day, both
included, whatever the run date (cut at D while D is inside it; empty before it begins): a window
that does not move, for audiences such as "ordered in 2026 Q1".

RelativeDate (canonical spelling `{unit: U, offset: K}`): the first day of the unit K units from D's:

    {days_before_run_date: N} the day N days before D               = {unit: day, offset: -N}
    {month_start: K}          the first day of the month K from D's = {unit: month, offset: K}
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Mapping

UNITS = ("day", "week", "month", "quarter", "year")
UNIT_MONTHS = {"month": 1, "quarter": 3, "year": 12}
ONE_DAY = dt.timedelta(days=1)

# The spellings of a window (config keys) and of a relative date, canonical first.
WINDOW_KEYS = ("unit", "start", "end")
DAYS = "days"
CALENDAR_MONTHS = "calendar_months"
FIXED_PERIOD_KEYS = ("first_day", "last_day")
RELATIVE_DATE_KEYS = ("unit", "offset")
DAYS_BEFORE_RUN_DATE = "days_before_run_date"
MONTH_START = "month_start"
UNITS_HELP = "|".join(UNITS)
WINDOW_SPELLINGS = (f"{{unit: {UNITS_HELP}, start: S, end: E}}, {{{DAYS}: N}}, {{{CALENDAR_MONTHS}: N}}, "
                    "{first_day: YYYY-MM-DD, last_day: YYYY-MM-DD}")
RELATIVE_DATE_SPELLINGS = f"{{unit: {UNITS_HELP}, offset: K}}, {{{DAYS_BEFORE_RUN_DATE}: N}}, {{{MONTH_START}: K}}"

# The lens's relative date ranges (Cube's): `this|last <unit>`, `last N <units>`, `today`, `yesterday`.
PHRASE = re.compile(r"^(?:(?P<this>this|last)\s+(?P<unit>day|week|month|quarter|year)"
                    r"|last\s+(?P<count>\d+)\s+(?P<units>days|weeks|months|quarters|years)"
                    r"|(?P<fixed>today|yesterday))$")


# ----------------------------------------------------------------------------------------------
# Month arithmetic
# ----------------------------------------------------------------------------------------------


def days_in_month(year: int, month: int) -> int:
    """28..31 (February 29 days in leap years: divisible by 4, centuries only by 400)."""
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day of the month `months` months later (earlier when negative), moved back to the
    month's last day when that month is shorter: add_months(2026-01-31, 1) = 2026-02-28."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return dt.date(year, month0 + 1, min(day.day, days_in_month(year, month0 + 1)))


def month_start(day: dt.date, months: int = 0) -> dt.date:
    """The first day of the month `months` months from `day`'s month (0: its own, -1: the month before)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return dt.date(year, month0 + 1, 1)


def month_end(day: dt.date, months: int = 0) -> dt.date:
    """The last day of the month `months` months from `day`'s month."""
    first = month_start(day, months)
    return first.replace(day=days_in_month(first.year, first.month))


def _check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r} (one of {', '.join(UNITS)})")


def unit_start(day: dt.date, unit: str) -> dt.date:
    """The first day of the unit that contains `day` (a week starts on Monday)."""
    _check_unit(unit)
    if unit == "day":
        return day
    if unit == "week":
        return day - dt.timedelta(days=day.weekday())
    return month_start(day, -((day.month - 1) % UNIT_MONTHS[unit]))


def shift(day: dt.date, unit: str, count: int) -> dt.date:
    """`day` moved by `count` units (months, quarters and years as add_months: clamped to month ends)."""
    _check_unit(unit)
    if unit == "day":
        return day + dt.timedelta(days=count)
    if unit == "week":
        return day + dt.timedelta(weeks=count)
    return add_months(day, count * UNIT_MONTHS[unit])


# ----------------------------------------------------------------------------------------------
# Windows and relative dates
# ----------------------------------------------------------------------------------------------


def _whole_number(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"'{key}' must be a whole number, got {value!r}")
    return value


@dataclass(frozen=True)
class Window:
    """The units `start` .. `end` (both included) relative to the run date's unit, cut at the run date.

    0 is the unit that contains the run date D, -1 the one before; `end` is at most 0 (nothing after D
    exists as of D). Build one from any spelling with `parse_window` or `Window.from_phrase`."""

    unit: str
    start: int
    end: int

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        if self.end > 0:
            raise ValueError(f"a window ends with the run date's {self.unit} (end 0) or before, got end {self.end}")
        if self.start > self.end:
            raise ValueError(f"a window's start ({self.start}) must not be after its end ({self.end})")

    @classmethod
    def days_ending_on_run_date(cls, days: int) -> Window:
        """`{days: N}`: the N days ending on D, D included."""
        return cls("day", 1 - days, 0)

    @classmethod
    def months_before_run_date(cls, months: int) -> Window:
        """`{calendar_months: N}` or `last N months`: the N whole calendar months before D's month."""
        return cls("month", -months, -1)

    @classmethod
    def from_phrase(cls, text: str) -> Window | None:
        """A lens relative date range (`last 12 months`, `this week`, `today`, ...) or None when `text`
        is not one (a date, say). `last 0 days` covers no time: ValueError."""
        found = PHRASE.match(" ".join(str(text).lower().split()))
        if found is None:
            return None
        if found["fixed"]:
            offset = 0 if found["fixed"] == "today" else -1
            return cls("day", offset, offset)
        if found["this"] == "this":
            return cls(found["unit"], 0, 0)
        count = int(found["count"] or 1)
        if count < 1:
            raise ValueError(f"{text!r} covers no time")
        return cls(found["unit"] or found["units"][:-1], -count, -1)

    def bounds(self, run_date: dt.date) -> tuple[dt.date, dt.date]:
        """[first, last] days of the window as of `run_date`, both included."""
        current = unit_start(run_date, self.unit)
        first = shift(current, self.unit, self.start)
        last = min(shift(current, self.unit, self.end + 1) - ONE_DAY, run_date)
        return first, last

    def half_open(self, run_date: dt.date) -> tuple[dt.date, dt.date]:
        """[first, stop): stop is the day after the window's last day (for `time < midnight(stop)`)."""
        first, last = self.bounds(run_date)
        return first, last + ONE_DAY

    @property
    def calendar_months(self) -> int | None:
        """How many whole calendar months the window covers, or None when it is not whole months
        (days, weeks, or a window that reaches into the run date's own, unfinished unit)."""
        if self.unit not in UNIT_MONTHS or self.end >= 0:
            return None
        return (self.end - self.start + 1) * UNIT_MONTHS[self.unit]

    def to_config(self) -> dict[str, Any]:
        """The canonical spelling: {unit, start, end}."""
        return {"unit": self.unit, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class FixedPeriod:
    """The days `first_day` .. `last_day` (both included), the same on every run date: as of D, the
    part of them on or before D (none while D is before `first_day`)."""

    first_day: dt.date
    last_day: dt.date

    def __post_init__(self) -> None:
        if self.first_day > self.last_day:
            raise ValueError(f"a fixed period's first_day ({self.first_day}) must not be after its last_day ({self.last_day})")

    def bounds(self, run_date: dt.date) -> tuple[dt.date, dt.date]:
        """[first, last] days as of `run_date`, both included (first > last: no day yet)."""
        return self.first_day, min(self.last_day, run_date)

    # [first, stop) from `bounds`, as for a Window
    half_open = Window.half_open

    @property
    def calendar_months(self) -> int | None:
        """How many whole calendar months the period covers (it starts on a month's first day and ends
        on a month's last day), else None. Fixed, like the period: Q1 is three months in February too."""
        if self.first_day.day != 1 or self.last_day != month_end(self.last_day):
            return None
        return (self.last_day.year - self.first_day.year) * 12 + self.last_day.month - self.first_day.month + 1

    def to_config(self) -> dict[str, Any]:
        return {"first_day": self.first_day.isoformat(), "last_day": self.last_day.isoformat()}


def _calendar_day(value: Any, key: str) -> dt.date:
    """A YAML date (read as one) or an ISO date string."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"'{key}' must be a date (YYYY-MM-DD), got {value!r}")


def _fixed_period(given: Mapping[str, Any], key: str) -> FixedPeriod:
    missing = [k for k in FIXED_PERIOD_KEYS if k not in given]
    if missing:
        raise ValueError(f"'{key}.{missing[0]}' is required with {' and '.join(k for k in FIXED_PERIOD_KEYS if k in given)} "
                         "(a fixed period names its first and last day)")
    first, last = (_calendar_day(given[k], f"{key}.{k}") for k in FIXED_PERIOD_KEYS)
    try:
        return FixedPeriod(first, last)
    except ValueError as exc:
        raise ValueError(f"'{key}': {exc}") from None


@dataclass(frozen=True)
class RelativeDate:
    """The first day of the unit `offset` units from the run date's unit (for days: D + offset days)."""

    unit: str
    offset: int

    def __post_init__(self) -> None:
        _check_unit(self.unit)

    def on(self, run_date: dt.date) -> dt.date:
        return shift(unit_start(run_date, self.unit), self.unit, self.offset)

    def to_config(self) -> dict[str, Any]:
        """The canonical spelling: {unit, offset}."""
        return {"unit": self.unit, "offset": self.offset}


def _spelled(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The keys given a value (a config dataclass passes its unset keys as None)."""
    return {str(k): v for k, v in raw.items() if v is not None}


def parse_window(raw: Mapping[str, Any] | str, key: str = "window") -> Window | FixedPeriod:
    """A window from any of its spellings (module docstring); ValueError names `key` and the sub-key."""
    if isinstance(raw, str):
        try:
            window = Window.from_phrase(raw)
        except ValueError as exc:
            raise ValueError(f"'{key}': {exc}") from None
        if window is None:
            raise ValueError(f"'{key}' must be one of {WINDOW_SPELLINGS} or a relative range such as "
                             f"'last 12 months'; got {raw!r}")
        return window
    if not isinstance(raw, Mapping):
        raise ValueError(f"'{key}' must be one of {WINDOW_SPELLINGS}; got {raw!r}")
    given = _spelled(raw)
    unknown = [k for k in given if k not in (*WINDOW_KEYS, DAYS, CALENDAR_MONTHS, *FIXED_PERIOD_KEYS)]
    if unknown:
        raise ValueError(f"unknown key '{key}.{unknown[0]}' (a window is one of {WINDOW_SPELLINGS})")
    if any(k in given for k in FIXED_PERIOD_KEYS):
        if len(given) != sum(k in given for k in FIXED_PERIOD_KEYS):
            raise ValueError(f"'{key}' needs exactly one of {WINDOW_SPELLINGS}")
        return _fixed_period(given, key)
    spellings = [s for s in ("unit", DAYS, CALENDAR_MONTHS) if s in given]
    offsets = [k for k in ("start", "end") if k in given]
    if len(spellings) != 1 or (offsets and spellings != ["unit"]):
        raise ValueError(f"'{key}' needs exactly one of {WINDOW_SPELLINGS}")
    if spellings == [DAYS] or spellings == [CALENDAR_MONTHS]:
        name = spellings[0]
        count = _whole_number(given[name], f"{key}.{name}")
        if count < 1:
            raise ValueError(f"'{key}.{name}' must be at least 1, got {count}")
        return Window.days_ending_on_run_date(count) if name == DAYS else Window.months_before_run_date(count)
    unit = given["unit"]
    if unit not in UNITS:
        raise ValueError(f"'{key}.unit' must be one of {', '.join(UNITS)}, got {unit!r}")
    for name in ("start", "end"):
        if name not in given:
            raise ValueError(f"'{key}.{name}' is required with unit (units from the run date's {unit}: 0 = its own, -1 = the one before)")
        _whole_number(given[name], f"{key}.{name}")
    try:
        return Window(unit, given["start"], given["end"])
    except ValueError as exc:
        raise ValueError(f"'{key}': {exc}") from None


def parse_relative_date(raw: Mapping[str, Any], key: str = "value") -> RelativeDate:
    """A run-date relative date from any of its spellings (module docstring); ValueError names `key`."""
    given = _spelled(raw) if isinstance(raw, Mapping) else None
    if given is not None and len(given) == 1 and next(iter(given)) in (DAYS_BEFORE_RUN_DATE, MONTH_START):
        name, amount = next(iter(given.items()))
        amount = _whole_number(amount, f"{key}.{name}")
        return RelativeDate("day", -amount) if name == DAYS_BEFORE_RUN_DATE else RelativeDate("month", amount)
    if given is None or set(given) != set(RELATIVE_DATE_KEYS):
        raise ValueError(f"'{key}': a run-date relative date is one of {RELATIVE_DATE_SPELLINGS}; got {raw!r}")
    if given["unit"] not in UNITS:
        raise ValueError(f"'{key}.unit' must be one of {', '.join(UNITS)}, got {given['unit']!r}")
    return RelativeDate(given["unit"], _whole_number(given["offset"], f"{key}.offset"))

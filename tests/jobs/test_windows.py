"""Run-date windows in config: traits' `window` and segments' relative dates read through lens.calendar.

Pure Python (config loading; no Spark session). Dates worked out by hand; 2026-03-15 is a Sunday.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jobs.core.config import load_config
from jobs.core.errors import ConfigError
from jobs.traits.settings import TraitDefinition, TraitWindow
from lens.calendar import RelativeDate, Window

RUN_DATE = dt.date(2026, 3, 15)


def _traits(tmp_path: Path, *lines: str):
    path = tmp_path / "traits.yml"
    path.write_text("traits:\n  computed:\n" + "".join(f"    - {line}\n" for line in lines))
    return load_config(path).traits


@pytest.mark.parametrize(
    "older, canonical, window, first, last",
    [
        ("{days: 30}", "{unit: day, start: -29, end: 0}", Window("day", -29, 0), "2026-02-14", "2026-03-15"),
        ("{days: 1}", "{unit: day, start: 0, end: 0}", Window("day", 0, 0), "2026-03-15", "2026-03-15"),
        ("{calendar_months: 1}", "{unit: month, start: -1, end: -1}", Window("month", -1, -1), "2026-02-01", "2026-02-28"),
        ("{calendar_months: 12}", "{unit: month, start: -12, end: -1}", Window("month", -12, -1), "2025-03-01", "2026-02-28"),
    ],
)
def test_trait_window_spellings_load_as_one_window(tmp_path, older, canonical, window, first, last):
    a = _traits(tmp_path, f"{{name: x, kind: count, window: {older}}}").computed[0].window
    b = _traits(tmp_path, f"{{name: x, kind: count, window: {canonical}}}").computed[0].window
    assert a == b and hash(a) == hash(b)
    assert a.canonical == b.canonical == window
    assert window.bounds(RUN_DATE) == (dt.date.fromisoformat(first), dt.date.fromisoformat(last))


def test_a_trait_in_the_canonical_spelling_equals_the_older_one(tmp_path):
    loaded = _traits(tmp_path, "{name: n, kind: count_distinct, activity: order_rejected, of: order_no, "
                               "window: {unit: month, start: -12, end: -1}, monthly_average: true}")
    assert loaded.computed == [TraitDefinition("n", "count_distinct", activity="order_rejected", of="order_no",
                                               window=TraitWindow(calendar_months=12), monthly_average=True)]
    assert loaded.computed[0].window.canonical.calendar_months == 12


def test_monthly_averages_over_quarters_and_years_count_their_months(tmp_path):
    loaded = _traits(tmp_path,
                     "{name: q, kind: sum, of: feature9, window: {unit: quarter, start: -4, end: -1}, monthly_average: true}",
                     "{name: y, kind: count, window: {unit: year, start: -2, end: -1}, monthly_average: true}")
    assert [t.window.canonical.calendar_months for t in loaded.computed] == [12, 24]


def test_windows_that_differ_are_not_equal():
    assert TraitWindow(days=30) != TraitWindow(days=31)
    assert TraitWindow(days=30) != TraitWindow(unit="day", start=-30, end=-1)   # the lens's "last 30 days"
    assert TraitWindow(days=3, calendar_months=1) != TraitWindow(days=3)        # invalid: compared as written
    assert len({TraitWindow(days=30), TraitWindow(unit="day", start=-29, end=0)}) == 1


@pytest.mark.parametrize(
    "window, message",
    [
        ("{unit: month, start: -1}", r"'traits\.computed\[0\]\.window\.end' is required with unit"),
        ("{unit: fortnight, start: -1, end: -1}",
         r"'traits\.computed\[0\]\.window\.unit' must be one of day, week, month, quarter, year, got 'fortnight'"),
        ("{unit: month, start: -1, end: 1}",
         r"'traits\.computed\[0\]\.window': a window ends with the run date's month \(end 0\) or before, got end 1"),
        ("{unit: month, start: -1, end: -2}",
         r"'traits\.computed\[0\]\.window': a window's start \(-1\) must not be after its end \(-2\)"),
        ("{unit: day, days: 3}", r"'traits\.computed\[0\]\.window' needs exactly one of"),
        ("{unit: day, start: x, end: 0}", r"'traits\.computed\[0\]\.window\.start' must be a whole number, got 'x'"),
        ("{weeks: 2}", r"unknown key 'traits\.computed\[0\]\.window\.weeks' \(known keys: unit, start, end, days, calendar_months, first_day, last_day\)"),
    ],
)
def test_bad_canonical_windows_name_file_and_key(tmp_path, window, message):
    with pytest.raises(ConfigError, match=r"traits\.yml: .*" + message):
        _traits(tmp_path, f"{{name: x, kind: count, window: {window}}}")


@pytest.mark.parametrize("window", ["{unit: month, start: 0, end: 0}", "{unit: week, start: -4, end: -1}",
                                    "{unit: month, start: -3, end: 0}"])
def test_a_monthly_average_needs_whole_months(tmp_path, window):
    with pytest.raises(ConfigError, match=r"'traits\.computed\[0\]\.monthly_average' needs window\.calendar_months "
                                          r"\(trait 'x'\) \(or a window of whole months"):
        _traits(tmp_path, f"{{name: x, kind: count, window: {window}, monthly_average: true}}")


def _segment_value(tmp_path: Path, value: str):
    path = tmp_path / "seg.yml"
    path.write_text("segments:\n  definitions:\n"
                    f"    - {{name: s, condition: {{field: traits.last_order_date, op: lt, value: {value}}}}}\n")
    return load_config(path).segments.definitions[0].parsed_condition("c").value


@pytest.mark.parametrize(
    "value, expected, on_run_date",
    [
        ("{month_start: -1}", RelativeDate("month", -1), "2026-02-01"),
        ("{unit: month, offset: -1}", RelativeDate("month", -1), "2026-02-01"),
        ("{days_before_run_date: 30}", RelativeDate("day", -30), "2026-02-13"),
        ("{unit: day, offset: -30}", RelativeDate("day", -30), "2026-02-13"),
        ("{unit: week, offset: 0}", RelativeDate("week", 0), "2026-03-09"),
        ("{unit: year, offset: -1}", RelativeDate("year", -1), "2025-01-01"),
    ],
)
def test_segment_relative_date_spellings(tmp_path, value, expected, on_run_date):
    parsed = _segment_value(tmp_path, value)
    assert parsed == expected
    assert parsed.on(RUN_DATE) == dt.date.fromisoformat(on_run_date)


def test_a_bad_segment_relative_date_names_file_segment_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"seg\.yml: segment 's': 'segments\.definitions\[0\]\.condition\.value\.offset' "
                                          r"must be a whole number, got 'soon'"):
        _segment_value(tmp_path, "{unit: month, offset: soon}")

"""generator.values: timestamps written in any offset parse back to the same instant."""
from __future__ import annotations

import datetime as dt

import pytest

from generator.values import TIMESTAMP_OFFSETS_MIN, format_timestamp


@pytest.mark.parametrize("offset", TIMESTAMP_OFFSETS_MIN + (0,))
def test_formatted_timestamps_parse_to_the_intended_instant(offset):
    for instant in (dt.datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=dt.timezone.utc),
                    dt.datetime(2025, 12, 31, 23, 59, 59, 999000, tzinfo=dt.timezone.utc),
                    dt.datetime(2024, 2, 29, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)):
        ms = int(instant.timestamp()) * 1000 + instant.microsecond // 1000
        text = format_timestamp(ms, offset)
        parsed = dt.datetime.fromisoformat(text)
        assert parsed == instant
        assert parsed.utcoffset() == dt.timedelta(minutes=offset)
        assert text.endswith("Z") == (offset == 0)

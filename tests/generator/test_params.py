"""generator.params: rate validation, chunk count and the event window."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from generator.params import GenerateParams, Rates
from jobs.core.errors import InputError


def test_the_documented_rates_are_valid():
    Rates().validate()
    Rates(malformed=3.0).validate()          # malformed is a ratio, not a share


@pytest.mark.parametrize("changes, message", [
    ({"replay": -0.1}, "must not be negative"),
    ({"chains_per_chunk": -1}, "must not be negative"),
    ({"late": 1.5}, "at most 1"),
    ({"reject": 0.5, "invoice": 0.6}, "reject \\+ invoice"),
    ({"chain_hops": 7}, "even number"),
    ({"chain_hops": 0}, "even number"),
])
def test_invalid_rates_are_refused(changes, message):
    with pytest.raises(InputError, match=message):
        Rates(**changes).validate()


def test_chunks_and_the_window():
    params = GenerateParams(out=Path("unused"), profiles=201, chunk_size=100, days=2, run_date=dt.date(1970, 1, 3))
    assert params.chunks == 3
    assert (params.window_start_ms, params.window_end_ms) == (1 * 86_400_000, 3 * 86_400_000)

"""Survivorship (jobs.identity.survivorship): the value each silver/customers column keeps, checked
against a plain-Python reference written from the rules in the module docstring, on random
candidate rows full of ties, blanks and placeholders."""
from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re

import pytest
from chispa import assert_df_equality

from jobs.identity.settings import DEFAULT_BLOCKED_PATTERNS, DEFAULT_BLOCKED_VALUES, IdentitySettings
from jobs.identity.survivorship import (
    ATTRIBUTE_COLUMNS,
    candidate_cells,
    choose_from_rows,
    choose_values,
)

SEED = 20261206
CUSTOMERS = [f"c{i}" for i in range(15)]
TIMES = [dt.datetime(2026, 1, d, 10, 0) for d in (1, 2, 3)]
SOURCES = ["s1", "s2", "s3"]
# Per column a few values: blanks, and for email and phone the placeholders the identity rules block.
POOLS = {
    "email": [None, "", "a@x.com", "b@x.com", "TEST@test.com", "noreply@shop.com"],
    "phone_number": [None, "+14151996488", "+14151996400", "+11111111111", "+442079460958"],
}
OTHER_POOL = [None, "", "x", "y", "z"]
ROW_SCHEMA = ", ".join(
    ["customer_id string", "source_rank int", "seen_at timestamp", "source_id string"]
    + [f"{c} string" for c in ATTRIBUTE_COLUMNS])
RESULT_SCHEMA = ", ".join(["customer_id string"] + [f"{c} string" for c in ATTRIBUTE_COLUMNS])


def _random_rows(count: int = 400) -> list[tuple]:
    rng = random.Random(SEED)
    return [
        (rng.choice(CUSTOMERS), rng.choice((0, 1)), rng.choice(TIMES), rng.choice(SOURCES),
         *[rng.choice(POOLS.get(c, OTHER_POOL)) for c in ATTRIBUTE_COLUMNS])
        for _ in range(count)
    ]


# ----------------------------------------------------------------------------------------------
# Reference: the rules, in plain Python
# ----------------------------------------------------------------------------------------------

PLACEHOLDER_PATTERNS = {"email": DEFAULT_BLOCKED_PATTERNS["email"], "phone_number": DEFAULT_BLOCKED_PATTERNS["phone"]}


def _counts(value: str | None, column: str) -> bool:
    """A candidate value: present, not blank, not a blocked email or phone."""
    if value is None or value == "":
        return False
    if column in PLACEHOLDER_PATTERNS:
        if value.lower() in DEFAULT_BLOCKED_VALUES:
            return False
        if any(re.search(p, value) for p in PLACEHOLDER_PATTERNS[column]):
            return False
    return True


def reference_choice(rows: list[tuple], strategies: dict[str, str], default: str) -> list[tuple]:
    """Per customer and column the winning value: master rows (rank 0) before traits; most_recent =
    latest first, oldest = earliest first, most_frequent = most rows first then latest; then the
    smallest source id, then the smallest value."""
    out = []
    for customer in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == customer]
        chosen = []
        for i, column in enumerate(ATTRIBUTE_COLUMNS):
            cands = [(rank, seen, source, r[4 + i]) for r in mine for rank, seen, source in [r[1:4]]
                     if _counts(r[4 + i], column)]
            strategy = strategies.get(column, default)
            frequency = {}
            for c in cands:
                frequency[c[3]] = frequency.get(c[3], 0) + 1

            def key(c):
                rank, seen, source, value = c
                micros = int(seen.replace(tzinfo=dt.timezone.utc).timestamp() * 1_000_000)
                if strategy == "most_frequent":
                    return (-frequency[value], rank, -micros, source, value)
                return (rank, micros if strategy == "oldest" else -micros, source, value)

            chosen.append(min(cands, key=key)[3] if cands else None)
        out.append((customer, *chosen))
    return out


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------

STRATEGY_CASES = [
    ("most_recent", {}),
    ("most_recent", {"email": "oldest", "state": "oldest"}),
    ("oldest", {"zip": "most_recent", "phone_number": "most_recent"}),
    ("most_recent", {"customer_name": "most_frequent", "email": "oldest"}),
    ("most_frequent", {"zip": "oldest"}),
]


@pytest.fixture(scope="module")
def rows(spark):
    data = _random_rows()
    return data, spark.createDataFrame(data, ROW_SCHEMA)


@pytest.mark.parametrize(("default", "strategies"), STRATEGY_CASES)
def test_choice_from_cells_equals_the_reference(spark, rows, default, strategies):
    data, frame = rows
    settings = dataclasses.replace(IdentitySettings(), survivorship_default=default, survivorship=strategies)
    expected = spark.createDataFrame(reference_choice(data, strategies, default), RESULT_SCHEMA)
    got = choose_values(candidate_cells(frame), settings)
    assert_df_equality(got.select("customer_id", *ATTRIBUTE_COLUMNS), expected,
                       ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(("default", "strategies"), [c for c in STRATEGY_CASES if "most_frequent" not in
                                                     (c[0], *c[1].values())])
def test_choice_straight_from_rows_equals_the_reference(spark, rows, default, strategies):
    data, frame = rows
    settings = dataclasses.replace(IdentitySettings(), survivorship_default=default, survivorship=strategies)
    expected = spark.createDataFrame(reference_choice(data, strategies, default), RESULT_SCHEMA)
    got = choose_from_rows(frame, settings)
    assert_df_equality(got.select("customer_id", *ATTRIBUTE_COLUMNS), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_the_random_rows_hold_the_cases_the_rules_decide():
    """The data above is worth testing on: ties on rank and time, placeholders, blanks."""
    data = _random_rows()
    keys = [(r[0], r[1], r[2]) for r in data]
    assert len(keys) > len(set(keys))  # several rows of one customer, rank and time: source id decides
    flat = [v for r in data for v in r[4:]]
    assert {"", "TEST@test.com", "noreply@shop.com", "+11111111111", None} <= set(flat)

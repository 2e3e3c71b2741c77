"""Phones in E.164 (jobs.identity.phones) and phone evidence re-keyed to E.164 (jobs.identity.evidence)."""
from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality

from jobs.identity.evidence import (
    EDGE_KEY,
    EVIDENCE_COLUMNS,
    IDENTIFIER_KEY,
    edges_in_e164,
    identifiers_in_e164,
    unparseable_phones,
)
from jobs.identity.phones import e164, parsed_phones, with_e164

T1 = dt.datetime(2026, 1, 1, 10, 0)
T2 = dt.datetime(2026, 1, 2, 10, 0)
D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
EVIDENCE_DDL = ("first_seen timestamp, last_seen timestamp, first_source_kind string, first_source_id string, "
                "first_source_file string, last_run_date date")


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 199-6488", "US", "+14151996488"),
        ("415-199-6488", "US", "+14151996488"),
        ("1 415 199 6488", "US", "+14151996488"),
        ("+1 415 199 6488", "US", "+14151996488"),
        ("  4151996488 ", "US", "+14151996488"),
        ("+1 555 123 4567", "US", "+15551234567"),     # not an assigned range, still a number
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),   # a country code wins over the region
        ("not a phone", "US", None),
        ("12", "US", None),                           # impossible length
        ("", "US", None),
        (None, "US", None),
    ],
)
def test_e164(raw, region, expected):
    assert e164(raw, region) == expected


def test_parsed_phones_maps_each_distinct_value_once(spark):
    raw = spark.createDataFrame([("(415) 199-6488",), ("(415) 199-6488",), ("nope",), (None,)], "phone string")
    expected = spark.createDataFrame([("(415) 199-6488", "+14151996488"), ("nope", None)],
                                     "_phone_raw string, _phone_e164 string")
    assert_df_equality(parsed_phones(raw, "US"), expected, ignore_row_order=True, ignore_nullable=True)


def test_with_e164_only_in_the_chosen_rows(spark):
    df = spark.createDataFrame([("phone_number", "415.199.6488"), ("zip", "4151996488"), ("phone_number", "x")],
                               "column string, value string")
    expected = spark.createDataFrame([("phone_number", "+14151996488"), ("zip", "4151996488"), ("phone_number", None)],
                                     "column string, value string")
    from pyspark.sql import functions as F

    got = with_e164(df, "value", "US", where=F.col("column") == "phone_number")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_with_e164_takes_known_values_from_the_lookup_and_parses_only_the_rest(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([("phone_number", "415.199.6488"), ("phone_number", "ext 12"), ("zip", "ext 12"),
                                ("phone_number", "x")], "column string, value string")
    # "ext 12" is no number; the lookup's answer for it wins, which shows it was not parsed again
    known = spark.createDataFrame([("ext 12", "+12025550123")], "_phone_raw string, _phone_e164 string")
    expected = spark.createDataFrame(
        [("phone_number", "+14151996488"), ("phone_number", "+12025550123"), ("zip", "ext 12"), ("phone_number", None)],
        "column string, value string")
    got = with_e164(df, "value", "US", where=F.col("column") == "phone_number", known=known)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def _ev(first, last, source, run_date):
    return (first, last, "identify", source, "f.jsonl", run_date)


def test_two_spellings_of_one_number_become_one_identifier_with_merged_evidence(spark):
    identifiers = spark.createDataFrame(
        [
            ("phone", "(415) 199-6488", *_ev(T2, T2, "m2", D2)),
            ("phone", "415-199-6488", *_ev(T1, T1, "m1", D1)),
            ("phone", "call me", *_ev(T1, T1, "m3", D1)),
            ("email", "a@x.com", *_ev(T1, T2, "m1", D2)),
        ],
        f"identifier_type string, identifier_value string, {EVIDENCE_DDL}",
    )
    parsed = parsed_phones(identifiers.where("identifier_type = 'phone'").select("identifier_value"), "US")
    expected = spark.createDataFrame(
        [("phone", "+14151996488", *_ev(T1, T2, "m1", D2)), ("email", "a@x.com", *_ev(T1, T2, "m1", D2))],
        f"identifier_type string, identifier_value string, {EVIDENCE_DDL}",
    )
    assert_df_equality(identifiers_in_e164(identifiers, parsed).select(*IDENTIFIER_KEY, *EVIDENCE_COLUMNS), expected,
                       ignore_row_order=True, ignore_nullable=True)
    bad = spark.createDataFrame([("phone", "call me")], "identifier_type string, identifier_value string")
    assert_df_equality(unparseable_phones(identifiers, parsed), bad, ignore_row_order=True, ignore_nullable=True)


def test_edges_are_re_keyed_and_an_edge_to_an_unparseable_phone_is_dropped(spark):
    edges = spark.createDataFrame(
        [
            ("phone", "(415) 199-6488", "user_id", "u1", *_ev(T2, T2, "m2", D2)),
            ("phone", "4151996488", "user_id", "u1", *_ev(T1, T1, "m1", D1)),
            ("phone", "call me", "user_id", "u1", *_ev(T1, T1, "m3", D1)),
            ("email", "a@x.com", "user_id", "u1", *_ev(T1, T1, "m1", D1)),
        ],
        f"a_type string, a_value string, b_type string, b_value string, {EVIDENCE_DDL}",
    )
    parsed = parsed_phones(
        edges.where("a_type = 'phone'").select("a_value"), "US")
    expected = spark.createDataFrame(
        [
            ("phone", "+14151996488", "user_id", "u1", *_ev(T1, T2, "m1", D2)),
            ("email", "a@x.com", "user_id", "u1", *_ev(T1, T1, "m1", D1)),
        ],
        f"a_type string, a_value string, b_type string, b_value string, {EVIDENCE_DDL}",
    )
    assert_df_equality(edges_in_e164(edges, parsed).select(*EDGE_KEY, *EVIDENCE_COLUMNS), expected,
                       ignore_row_order=True, ignore_nullable=True)

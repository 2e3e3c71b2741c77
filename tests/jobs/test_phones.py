"""Phones in E.164 (jobs.identity.phones) and phone evidence re-keyed to E.164 (jobs.identity.evidence)."""
from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality

from jobs.identity.evidence import (
    ALIAS_CLAIM_KEY,
    EDGE_KEY,
    EVIDENCE_COLUMNS,
    IDENTIFIER_KEY,
    alias_claims,
    edge_evidence,
    identifier_evidence,
    identifier_sets,
    set_phones,
    sets_in_e164,
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


OBSERVATION_DDL = ("source_kind string, source_id string, source_file string, seen_at timestamp, run_date date, "
                   "ids array<struct<identifier_type: string, identifier_value: string>>, previous_id string")


def _observed_in_e164(spark):
    """Four identify calls: one number in two spellings beside u1, an email seen alone later, and a
    value that is no number beside u2 and b@x.com."""
    observations = spark.createDataFrame(
        [
            ("identify", "m1", "f.jsonl", T1, D1, [("user_id", "u1"), ("phone", "415-199-6488"), ("email", "a@x.com")], None),
            ("identify", "m2", "f.jsonl", T2, D2, [("user_id", "u1"), ("phone", "(415) 199-6488")], None),
            ("identify", "m3", "f.jsonl", T1, D1, [("user_id", "u2"), ("email", "b@x.com"), ("phone", "call me")], None),
            ("identify", "m4", "f.jsonl", T2, D2, [("email", "a@x.com")], None),
        ],
        OBSERVATION_DDL,
    )
    sets = identifier_sets(observations)
    parsed = parsed_phones(set_phones(sets), "US")
    return sets_in_e164(sets, parsed), parsed


def test_two_spellings_of_one_number_become_one_identifier_with_merged_evidence(spark):
    observed, parsed = _observed_in_e164(spark)
    expected = spark.createDataFrame(
        [
            ("phone", "+14151996488", *_ev(T1, T2, "m1", D2)),
            ("user_id", "u1", *_ev(T1, T2, "m1", D2)),
            ("email", "a@x.com", *_ev(T1, T2, "m1", D2)),
            # the unparseable value is no identifier; the others of its call are
            ("user_id", "u2", *_ev(T1, T1, "m3", D1)),
            ("email", "b@x.com", *_ev(T1, T1, "m3", D1)),
        ],
        f"identifier_type string, identifier_value string, {EVIDENCE_DDL}",
    )
    assert_df_equality(identifier_evidence(observed).select(*IDENTIFIER_KEY, *EVIDENCE_COLUMNS), expected,
                       ignore_row_order=True, ignore_nullable=True)
    bad = spark.createDataFrame([("phone", "call me")], "identifier_type string, identifier_value string")
    assert_df_equality(unparseable_phones(parsed), bad, ignore_row_order=True, ignore_nullable=True)


def test_edges_are_re_keyed_and_an_edge_to_an_unparseable_phone_is_dropped(spark):
    observed, _ = _observed_in_e164(spark)
    expected = spark.createDataFrame(
        [
            ("phone", "+14151996488", "user_id", "u1", *_ev(T1, T2, "m1", D2)),
            ("email", "a@x.com", "phone", "+14151996488", *_ev(T1, T1, "m1", D1)),
            ("email", "a@x.com", "user_id", "u1", *_ev(T1, T1, "m1", D1)),
            ("email", "b@x.com", "user_id", "u2", *_ev(T1, T1, "m3", D1)),
        ],
        f"a_type string, a_value string, b_type string, b_value string, {EVIDENCE_DDL}",
    )
    assert_df_equality(edge_evidence(observed).select(*EDGE_KEY, *EVIDENCE_COLUMNS), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_alias_claims_are_re_keyed_and_a_claim_of_an_unparseable_phone_is_dropped(spark):
    """Alias calls' claims come from their identifier sets, phones in E.164: two spellings of one
    number are one claim with merged evidence, a value that is no number is no claim; an identify
    call carrying the same identifiers claims nothing."""
    observations = spark.createDataFrame(
        [
            ("alias", "m1", "f.jsonl", T1, D1, [("user_id", "u1"), ("phone", "4151996488")], "anon-1"),
            ("alias", "m2", "f.jsonl", T2, D2, [("phone", "(415) 199-6488")], "anon-1"),
            ("alias", "m3", "f.jsonl", T1, D1, [("phone", "call me")], "anon-1"),
            ("identify", "m0", "f.jsonl", T1, D1, [("user_id", "u1"), ("phone", "4151996488")], None),
        ],
        OBSERVATION_DDL,
    )
    sets = identifier_sets(observations)
    observed = sets_in_e164(sets, parsed_phones(set_phones(sets), "US"))
    expected = spark.createDataFrame(
        [
            ("anon-1", "phone", "+14151996488", T1, T2, "alias", "m1", "f.jsonl", D2),
            ("anon-1", "user_id", "u1", T1, T1, "alias", "m1", "f.jsonl", D1),
        ],
        f"previous_id string, other_type string, other_value string, {EVIDENCE_DDL}",
    )
    assert_df_equality(alias_claims(observed).select(*ALIAS_CLAIM_KEY, *EVIDENCE_COLUMNS), expected,
                       ignore_row_order=True, ignore_nullable=True)

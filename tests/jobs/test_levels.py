"""Identifier, customer and group levels (docs/levels.md): the seed's "best hour to email Joe"."""
from __future__ import annotations

import pytest
from chispa import assert_df_equality

from jobs import activities, levels
from jobs.activity_settings import ActivitySettings
from tests.jobs.event_builders import bronze_events, group_members, identity_map, track, utc

ROLLUP_DDL = (
    "level string, member_type string, member_id string, activity string, activity_count long, "
    "first_ts timestamp, last_ts timestamp, revenue double, best_hour int"
)


def opened(mid: str, at: str, address: str, user: str = "joe") -> dict:
    return track(mid, "Email Opened", at, user=user, properties={"email_address": address})


# Joe opens work mail in the morning and home mail in the evening; per person the evening wins.
JOE = [
    opened("w1", "2026-01-05 08:10", "joe@work.com"),
    opened("w2", "2026-01-06 08:40", "joe@work.com"),
    opened("w3", "2026-01-07 09:05", "Joe@Work.com"),
    opened("h1", "2026-01-05 20:15", "joe@home.net"),
    opened("h2", "2026-01-06 20:30", "joe@home.net"),
    opened("h3", "2026-01-07 20:45", "joe@home.net"),
]


def stream_of(spark, events, members):
    idmap = identity_map(spark, {"CJ": ["joe"], "CK": ["kim"]})
    return activities.build_stream(bronze_events(spark, events), idmap, members, ActivitySettings())


def test_best_hour_per_email_differs_from_the_customers(spark):
    stream = stream_of(spark, JOE, group_members(spark, {}))
    per_email = levels.activity_rollup(stream, levels.IDENTIFIER_LEVEL, activities=["email_opened"])
    per_customer = levels.activity_rollup(stream, levels.CUSTOMER_LEVEL, activities=["email_opened"])
    expected_email = spark.createDataFrame(
        [("identifier", "email", "joe@work.com", "email_opened", 3, utc("2026-01-05 08:10"), utc("2026-01-07 09:05"), None, 8),
         ("identifier", "email", "joe@home.net", "email_opened", 3, utc("2026-01-05 20:15"), utc("2026-01-07 20:45"), None, 20)],
        ROLLUP_DDL,
    )
    expected_customer = spark.createDataFrame(
        [("customer", "customer", "CJ", "email_opened", 6, utc("2026-01-05 08:10"), utc("2026-01-07 20:45"), None, 20)],
        ROLLUP_DDL,
    )
    assert_df_equality(per_email, expected_email, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)
    assert_df_equality(per_customer, expected_customer, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)


def test_group_level_counts_each_event_once_and_includes_members_own_events(spark):
    events = [
        track("bill", "Bill Paid", "2026-01-05 10:00", user="joe", group="H1", properties={"amount": 50}),
        track("o1", "Order Placed", "2026-01-06 11:00", user="kim", properties={"order_id": "O1-1", "order_value": 20}),
        track("o2", "Order Placed", "2026-01-07 11:00", user="joe", properties={"order_id": "O2-1", "order_value": 30}),
    ]
    members = group_members(spark, {"H1": ["CJ", "CK"]})
    stream = stream_of(spark, events, members)
    got = levels.activity_rollup(stream, levels.GROUP_LEVEL, group_members=members).select(
        "member_id", "activity", "activity_count", "revenue"
    )
    expected = spark.createDataFrame(
        [("H1", "bill_paid", 1, None), ("H1", "order_placed", 2, 50.0)],
        "member_id string, activity string, activity_count long, revenue double",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # at the customer level the group event is in both members' histories
    per_customer = levels.activity_rollup(stream, levels.CUSTOMER_LEVEL, activities=["bill_paid"]).select(
        "member_id", "activity_count"
    )
    assert_df_equality(per_customer, spark.createDataFrame([("CJ", 1), ("CK", 1)], "member_id string, activity_count long"),
                       ignore_row_order=True, ignore_nullable=True)


def test_unknown_level_is_refused(spark):
    with pytest.raises(ValueError, match="household"):
        levels.at_level(spark.createDataFrame([], "entity_id string"), "household")

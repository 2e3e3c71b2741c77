"""gold/groups and gold/group_members from group and identify calls."""
from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.context import RunParams
from jobs.groups import stage as groups
from jobs.identity.profile_calls import profile_calls
from tests.jobs.event_builders import bronze_events, event, identity_map, utc

CALLS = [
    # Blueshift's own payload spellings (firstname, phone_number) and Segment's (firstName)
    event("g1", "group", "2026-01-02 10:00", user="u1", group="G1",
          traits={"name": "Smith household", "email": " Bills@Smith.ORG ", "firstname": "Ann",
                  "phone_number": "(555) 010-0001", "plan": "family", "income": 70000}),
    event("g2", "group", "2026-01-05 10:00", user="u2", group="G1",
          traits={"firstName": "Anne", "income": 82000, "email": None}),
    # an older call arriving late does not win over newer values
    event("g0", "group", "2026-01-01 10:00", anon="a3", group="G1", traits={"name": "Old name", "lastName": "Smith"}),
    event("i1", "identify", "2026-01-03 10:00", user="u4", group="G2", traits={"email": "kid@x.com"}),
    event("i2", "identify", "2026-01-06 10:00", user="u1", group="G1"),
    event("t1", "track", "2026-01-06 11:00", user="u5", group="G3", name="Bill Paid"),
]
IDMAP_CUSTOMERS = {"C1": ["u1"], "C2": ["u2"], "C4": ["u4"]}
IDMAP_ANONYMOUS = {"C3": ["a3"]}


def comparable(df, map_column):
    """Maps cannot be sorted or hashed; compare them as sorted (key, value) arrays."""
    return df.withColumn(map_column, F.array_sort(F.map_entries(map_column)))


def test_group_attributes_most_recent_value_wins_per_attribute(spark):
    got = groups.build_groups(bronze_events(spark, CALLS).transform(profile_calls))
    expected = spark.createDataFrame(
        [("G1", "bills@smith.org", "+15550100001", "Anne", "Smith", "Smith household",
          {"plan": "family", "income": "82000"}, utc("2026-01-05 10:00")),
         ("G2", None, None, None, None, None, {}, None)],
        SPECS[tables.GROUPS].schema,
    )
    assert_df_equality(comparable(got, "custom_traits"), comparable(expected, "custom_traits"),
                       ignore_row_order=True, ignore_nullable=True)


def test_members_from_group_calls_and_identify_with_group_id(spark):
    idmap = identity_map(spark, IDMAP_CUSTOMERS, anonymous=IDMAP_ANONYMOUS)
    got = groups.build_group_members(bronze_events(spark, CALLS).transform(profile_calls), idmap)
    # a track with a groupId makes a group event, not a member (u5/G3 absent)
    expected = spark.createDataFrame(
        [("G1", "C1", dt.date(2026, 1, 2), "group"),
         ("G1", "C2", dt.date(2026, 1, 5), "group"),
         ("G1", "C3", dt.date(2026, 1, 1), "group"),
         ("G2", "C4", dt.date(2026, 1, 3), "identify")],
        SPECS[tables.GROUP_MEMBERS].schema,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_groups_command_writes_both_tables(spark, make_ctx):
    ctx = make_ctx("2026-01-31")
    ctx.warehouse.overwrite(bronze_events(spark, CALLS).transform(profile_calls), tables.PROFILE_CALLS)
    ctx.warehouse.overwrite(identity_map(spark, IDMAP_CUSTOMERS, anonymous=IDMAP_ANONYMOUS), tables.IDENTITY_MAP)
    result = groups.run(ctx, RunParams())
    assert result.metrics == {"groups": 2, "group_members": 4}
    assert ctx.warehouse.read(spark, tables.GROUP_MEMBERS).schema == SPECS[tables.GROUP_MEMBERS].schema

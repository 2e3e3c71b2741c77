"""silver/activity_stream: naming, feature mapping, attribution, groups, occurrences, incremental merges."""
from __future__ import annotations

import datetime as dt


import pytest

from jobs.core.context import RunParams
import yaml
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.activities import stage as activities

from jobs.core import tables
from jobs.activities.settings import ActivitySettings, TransactionKey
from jobs.core.config import load_config
from jobs.core.errors import ConfigError
from jobs.core.steps import STEP_NOTE
from jobs.groups.settings import GroupSettings
from jobs.identity.profile_calls import profile_calls
from tests.jobs.event_builders import (
    bronze_events,
    event,
    group_members,
    identity_lineage,
    identity_map,
    track,
    utc,
)

SETTINGS = ActivitySettings()
# stage tests hold a few rows, so any new activity is a large share: force the merge path
ALWAYS_MERGE = ActivitySettings(rebuild_above_new_share=1.0)
NO_MEMBERS_DDL = "group_id string, customer_id string, joined_on date, source string"

ORDER_LINE = {
    "order_id": "O7-1", "product_id": "P1", "brand_name": "Acme", "supplier_name": "Sup",
    "product_category": "Wine", "product_classification": "Red", "cases": 2, "bottles": 24,
    "order_value": 120.5, "request_delivery_date": "2026-01-20",
}
REJECTION = {**ORDER_LINE, "order_reject_code": "R9", "order_status_code": "S2", "order_delivery_status": "late"}


def no_members(spark):
    return spark.createDataFrame([], NO_MEMBERS_DDL)


def stream_of(spark, events, idmap, members=None):
    return activities.build_stream(bronze_events(spark, events), idmap, members or no_members(spark), SETTINGS)


# ----------------------------------------------------------------------------------------------
# events -> activities
# ----------------------------------------------------------------------------------------------


def test_activity_names_and_which_calls_are_activities(spark):
    events = [
        track("m1", "Order Placed", "2026-01-02 10:00", user="u1"),
        track("m2", "checkoutStarted", "2026-01-02 10:01", user="u1"),
        track("m3", "  Email -- Opened!", "2026-01-02 10:02", user="u1"),
        event("m4", "page", "2026-01-02 10:03", user="u1", properties={"url": "https://x/a", "path": "/a"}),
        event("m5", "screen", "2026-01-02 10:04", anon="a1"),
        event("m6", "identify", "2026-01-02 10:05", user="u1", traits={"email": "j@x.com"}),
        event("m7", "group", "2026-01-02 10:06", user="u1", group="g1", traits={"name": "Smiths"}),
        event("m8", "alias", "2026-01-02 10:07", user="u1", anon="a1"),
    ]
    got = activities.to_activity_events(bronze_events(spark, events), SETTINGS).select(
        "message_id", "activity", "feature1", "feature2"
    )
    expected = spark.createDataFrame(
        [("m1", "order_placed", None, None), ("m2", "checkout_started", None, None),
         ("m3", "email_opened", None, None), ("m4", "viewed_page", "https://x/a", "/a"),
         ("m5", "viewed_screen", None, None)],
        "message_id string, activity string, feature1 string, feature2 string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_feature_mapping_of_the_three_order_activities(spark):
    events = [
        track("p", "Order Placed", "2026-01-02 10:00", user="u1", properties=ORDER_LINE),
        track("r", "Order Rejected", "2026-01-03 10:00", user="u1", properties=REJECTION),
        track("i", "Order Invoiced", "2026-01-04 10:00", user="u1", properties=ORDER_LINE),
    ]
    got = activities.to_activity_events(bronze_events(spark, events), SETTINGS).select(
        "message_id", "activity", *[f"feature{i}" for i in range(1, 11)], "revenue_impact"
    )
    line = ["O7-1", "P1", "Acme", "Sup", "Wine", "Red", "2", "24", "120.5", "2026-01-20"]
    rejected = ["O7-1", "P1", "R9", "S2", "late", None, "2", "24", "120.5", "2026-01-20"]
    expected = spark.createDataFrame(
        [("p", "order_placed", *line, 120.5), ("r", "order_rejected", *rejected, None),
         ("i", "order_invoiced", *line, None)],
        "message_id string, activity string, " + ", ".join(f"feature{i} string" for i in range(1, 11))
        + ", revenue_impact double",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # every property is kept in feature_json, mapped or not
    got_json = activities.to_activity_events(bronze_events(spark, events[1:2]), SETTINGS).first()["feature_json"]
    assert yaml.safe_load(got_json) == REJECTION


SEGMENT_ECOMMERCE = """
activities:
  event_activities: {Order Completed: order_placed}
  mappings:
    order_placed: {features: {feature1: order_id, feature9: total}, revenue_property: revenue}
"""


def test_segment_ecommerce_order_completed_is_the_order_event(spark, tmp_path):
    """Data following Segment's e-commerce spec: `Order Completed` with order_id, total and revenue
    (and a products list) becomes order_placed by configuration, and gold/rfm's metrics read it."""
    from jobs.activities.daily import build_daily
    from jobs.rfm.stage import rfm_metrics

    conf = tmp_path / "c.yml"
    conf.write_text(SEGMENT_ECOMMERCE)
    settings = load_config(conf).activities
    products = [{"product_id": "507f1f77", "sku": "45790-32", "price": 19.0, "quantity": 1}]
    events = [
        track("a", "Order Completed", "2026-01-02 10:00", user="u1",
              properties={"order_id": "50314b8e", "total": 27.5, "revenue": 25.0, "products": products}),
        track("b", "orderCompleted", "2026-01-05 10:00", user="u1", properties={"order_id": "60314b8e", "total": "30"}),
        track("c", "Order Refunded", "2026-01-06 10:00", user="u1", properties={"order_id": "50314b8e"}),
    ]
    got = activities.to_activity_events(bronze_events(spark, events), settings)
    expected = spark.createDataFrame(
        [("a", "order_placed", "50314b8e", "27.5", 25.0), ("b", "order_placed", "60314b8e", "30", None),
         ("c", "order_refunded", None, None, None)],
        "message_id string, activity string, feature1 string, feature9 string, revenue_impact double")
    assert_df_equality(got.select("message_id", "activity", "feature1", "feature9", "revenue_impact"), expected,
                       ignore_row_order=True, ignore_nullable=True)
    # as of 2026-01-10: last order 5 days before, 2 orders, 27.5 + 30 spent
    attributed = got.withColumn("entity_id", F.col("user_id"))
    assert [tuple(r) for r in rfm_metrics(build_daily(attributed), dt.date(2026, 1, 10)).collect()] == [
        ("u1", 5, 2, 57.5)]
    # and the default order traits read them too: last order, 2 orders, 5 days since; lifetime value
    # sums revenue_impact, here the configured `revenue` property (25; b has none), where RFM's
    # monetary above sums the order value (feature9: total)
    from jobs.traits.settings import TraitSettings
    from jobs.traits.stage import compute_traits

    customers = spark.createDataFrame([("u1",)], "customer_id string")
    traits = compute_traits(attributed, customers, TraitSettings(), dt.date(2026, 1, 10), build_daily(attributed))
    assert [tuple(r) for r in traits.select("last_order_date", "total_orders", "lifetime_value",
                                            "days_since_last_order").collect()] == [
        (dt.datetime(2026, 1, 5, 10, 0), 2, 25.0, 5)]


def test_identifier_the_activity_belongs_to(spark):
    events = [
        track("e1", "Email Opened", "2026-01-02 09:00", user="u1", properties={"email_address": " Joe@Work.COM "}),
        track("e2", "Email Opened", "2026-01-02 09:00", user="u1", properties={}),
        track("o1", "Order Placed", "2026-01-02 09:00", user="u1", anon="a1", properties=ORDER_LINE),
        track("o2", "Order Placed", "2026-01-02 09:00", anon="a1", properties=ORDER_LINE),
    ]
    got = activities.to_activity_events(bronze_events(spark, events), SETTINGS).select(
        "message_id", "identifier_type", "identifier_value", "anonymous_entity_id"
    )
    expected = spark.createDataFrame(
        [("e1", "email", "joe@work.com", None), ("e2", "user_id", "u1", None),
         ("o1", "user_id", "u1", "a1"), ("o2", "anonymous_id", "a1", "a1")],
        "message_id string, identifier_type string, identifier_value string, anonymous_entity_id string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


# ----------------------------------------------------------------------------------------------
# attribution and occurrences
# ----------------------------------------------------------------------------------------------


def test_pre_login_anonymous_order_is_attributed_to_the_stitched_customer(spark):
    events = [
        track("o1", "Order Placed", "2026-01-02 10:00", anon="a1", properties=ORDER_LINE),
        event("id1", "identify", "2026-01-02 10:05", user="u1", anon="a1"),
        track("o2", "Order Placed", "2026-01-03 10:00", user="u1", anon="a1", properties=ORDER_LINE),
        track("o3", "Order Placed", "2026-01-03 11:00", anon="a9", properties=ORDER_LINE),
    ]
    idmap = identity_map(spark, {"C1": ["u1"]}, anonymous={"C1": ["a1"]})
    got = stream_of(spark, events, idmap).select("message_id", "entity_id", "anonymous_entity_id", "activity_occurence")
    # a9 is not in the identity map (not stitched yet): kept, unresolved, without an occurrence
    expected = spark.createDataFrame(
        [("o1", "C1", "a1", 1), ("o2", "C1", "a1", 2), ("o3", None, "a9", None)],
        "message_id string, entity_id string, anonymous_entity_id string, activity_occurence int",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_occurrence_and_repeated_at_per_entity_and_activity(spark):
    events = [
        track("a", "Order Placed", "2026-01-05 10:00", user="u1", properties=ORDER_LINE),
        track("b", "Order Placed", "2026-01-01 10:00", user="u1", properties=ORDER_LINE),
        track("c", "Order Placed", "2026-01-03 10:00", user="u1", properties=ORDER_LINE),
        track("d", "Order Rejected", "2026-01-04 10:00", user="u1", properties=REJECTION),
        track("e", "Order Placed", "2026-01-02 10:00", user="u2", properties=ORDER_LINE),
    ]
    idmap = identity_map(spark, {"C1": ["u1"], "C2": ["u2"]})
    got = stream_of(spark, events, idmap).select(
        "message_id", "entity_id", "activity", "activity_occurence", "activity_repeated_at"
    )
    expected = spark.createDataFrame(
        [("b", "C1", "order_placed", 1, utc("2026-01-03 10:00")),
         ("c", "C1", "order_placed", 2, utc("2026-01-05 10:00")),
         ("a", "C1", "order_placed", 3, None),
         ("d", "C1", "order_rejected", 1, None),
         ("e", "C2", "order_placed", 1, None)],
        "message_id string, entity_id string, activity string, activity_occurence int, activity_repeated_at timestamp",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_activity_uuid_is_deterministic_and_unique_per_event_and_entity(spark):
    events = [track("g1", "Lead Initial", "2026-01-02 10:00", user="u1", group="G1")]
    idmap = identity_map(spark, {"C1": ["u1"], "C2": ["u2"]})
    members = group_members(spark, {"G1": ["C1", "C2"]})
    first = stream_of(spark, events, idmap, members)
    assert_df_equality(first, stream_of(spark, events, idmap, members), ignore_row_order=True)
    got = first.select("entity_id", "activity_uuid")
    expected = spark.createDataFrame([("C1",), ("C2",)], "entity_id string").withColumn(
        "activity_uuid", F.sha2(F.concat_ws("|", F.lit("g1"), F.col("entity_id")), 256)
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


# ----------------------------------------------------------------------------------------------
# group vs customer events (Blueshift Fig 3 and Fig 4)
# ----------------------------------------------------------------------------------------------


def test_group_event_reaches_every_member_and_customer_event_only_its_customer(spark):
    events = [
        # Fig 3: a group event (groupId G1) sent by member C1
        track("grp", "Lead Initial", "2026-01-02 10:00", user="u1", group="G1", properties={"lead_id": "L1"}),
        # Fig 4: a customer event of C1
        track("cust", "Order Placed", "2026-01-02 11:00", user="u1", properties=ORDER_LINE),
        # a group event sent by a non-member stays with its sender as well
        track("ext", "Lead Scored", "2026-01-02 12:00", user="u3", group="G1"),
        # a group event without a sender (a group transaction): its members only, or one
        # unresolved row while the group has none
        track("acct", "Order Placed", "2026-01-02 13:00", group="G1", properties=ORDER_LINE),
        track("lone", "Order Placed", "2026-01-02 14:00", group="G9", properties=ORDER_LINE),
    ]
    idmap = identity_map(spark, {"C1": ["u1"], "C2": ["u2"], "C3": ["u3"]})
    members = group_members(spark, {"G1": ["C1", "C2"]})
    stream = stream_of(spark, events, idmap, members)
    expected = spark.createDataFrame(
        [("grp", "C1", "G1"), ("grp", "C2", "G1"), ("cust", "C1", None),
         ("ext", "C3", "G1"), ("ext", "C1", "G1"), ("ext", "C2", "G1"),
         ("acct", "C1", "G1"), ("acct", "C2", "G1"), ("lone", None, "G9")],
        "message_id string, entity_id string, group_id string",
    )
    assert_df_equality(stream.select("message_id", "entity_id", "group_id"), expected,
                       ignore_row_order=True, ignore_nullable=True)


# ----------------------------------------------------------------------------------------------
# the stage: full build, then merges that touch only what changed
# ----------------------------------------------------------------------------------------------

D1, D2, D3 = "2026-01-10", "2026-01-11", "2026-01-12"


def write_inputs(ctx, events, idmap, lineage=None):
    wh = ctx.warehouse
    wh.overwrite(bronze_events(ctx.spark, events), tables.BRONZE_EVENTS)
    # what stitch writes beside the identity map from the same bronze rows
    wh.overwrite(bronze_events(ctx.spark, events).transform(profile_calls), tables.PROFILE_CALLS)
    wh.overwrite(idmap, tables.IDENTITY_MAP)
    if lineage is not None:
        wh.overwrite(lineage, tables.IDENTITY_LINEAGE)


def with_files(df):
    return df.select("*", F.col("_metadata.file_path").alias("file_path"))


def test_merge_rewrites_only_the_rows_of_merged_customers(spark, make_ctx):
    day1 = [
        track("anon-order", "Order Placed", "2026-01-09 08:00", anon="a1", properties=ORDER_LINE, run_date=D1),
        track("u1-order", "Order Placed", "2026-01-09 12:00", user="u1", properties=ORDER_LINE, run_date=D1),
        track("u2-order-1", "Order Placed", "2026-01-09 09:00", user="u2", properties=ORDER_LINE, run_date=D1),
        track("u2-order-2", "Order Placed", "2026-01-09 10:00", user="u2", properties=ORDER_LINE, run_date=D1),
        track("u3-order", "Order Placed", "2026-01-09 11:00", user="u3", properties=ORDER_LINE, run_date=D1),
    ]
    login = [event("login", "identify", "2026-01-10 09:00", user="u1", anon="a1", run_date=D2)]
    before_login = identity_map(spark, {"C1": ["u1"], "C2": ["u2"], "C3": ["u3"]}, anonymous={"CA": ["a1"]})
    after_login = identity_map(spark, {"C1": ["u1"], "C2": ["u2"], "C3": ["u3"]}, anonymous={"C1": ["a1"]})

    # day 1 as the stage would write it, but one file per customer group so files can be tracked
    ctx1 = make_ctx(D1)
    write_inputs(ctx1, day1, before_login)
    day1_stream = stream_of(spark, day1, before_login)
    ctx1.warehouse.overwrite(day1_stream.filter("entity_id IN ('CA', 'C1', 'C3')").coalesce(1), tables.ACTIVITY_STREAM)
    ctx1.warehouse.append(day1_stream.filter("entity_id = 'C2'").coalesce(1), tables.ACTIVITY_STREAM)
    # pinned to this version: reads of the table after the merge must not see it change
    path = ctx1.warehouse.path(tables.ACTIVITY_STREAM)
    before = with_files(spark.read.format("delta").option("versionAsOf", 1).load(path))

    # day 2: the anonymous visitor logs in as u1; stitching merges CA into C1
    ctx2 = make_ctx(D2)
    write_inputs(ctx2, day1 + login, after_login, identity_lineage(spark, [(D2, "CA", "C1", "merge")]))
    result = activities.run(ctx2, RunParams())
    after = with_files(ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM))

    # the table is what a full rebuild with today's identity map gives
    assert_df_equality(after.drop("file_path"), stream_of(spark, day1 + login, after_login),
                       ignore_row_order=True, ignore_nullable=True)
    anon_order = after.filter("message_id = 'anon-order'").select("entity_id", "activity_occurence").first()
    assert (anon_order["entity_id"], anon_order["activity_occurence"]) == ("C1", 1)

    # C2's rows are untouched: same values, same file, and that file is still in the table
    assert_df_equality(after.filter("entity_id = 'C2'"), before.filter("entity_id = 'C2'"), ignore_row_order=True)
    live_files = set(ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM).inputFiles())
    c2_files = {r.file_path for r in before.filter("entity_id = 'C2'").select("file_path").distinct().collect()}
    assert c2_files and c2_files <= live_files

    # the MERGE's own counts match a row-by-row comparison of before and after
    compared = before.drop("file_path").alias("o").join(
        after.drop("file_path").alias("n"), F.col("o.activity_uuid") == F.col("n.activity_uuid"), "full_outer"
    )
    differs = " OR ".join(f"NOT (o.`{c}` <=> n.`{c}`)" for c in activities.STREAM_COLUMNS)
    counts = compared.select(
        F.count_if(F.col("o.activity_uuid").isNull()).alias("inserted"),
        F.count_if(F.col("n.activity_uuid").isNull()).alias("deleted"),
        F.count_if(F.col("o.activity_uuid").isNotNull() & F.col("n.activity_uuid").isNotNull() & F.expr(differs))
        .alias("updated"),
    ).first()
    inserted, deleted, updated = counts["inserted"], counts["deleted"], counts["updated"]
    m = result.metrics
    assert (m["mode"], m["rows_inserted"], m["rows_deleted"], m["rows_updated"]) == ("merge", inserted, deleted, updated)
    assert (inserted, deleted, updated) == (1, 1, 1)  # anon-order moves CA -> C1; u1-order becomes 2nd
    # deletion vectors: the file of CA, C1 and C3 keeps C3's row and marks the two replaced rows
    # deleted; nothing is copied, no file is rewritten
    assert (m["rows_copied"], m["files_rewritten"], m["deletion_vectors_added"]) == (0, 0, 1)
    shared_file = before.filter("entity_id = 'C3'").select("file_path").first()[0]
    assert shared_file in live_files

    # a reader that is not Spark sees the same rows: delta-rs applies the deletion vector
    import pyarrow as pa
    from deltalake import DeltaTable

    read_by_delta_rs = spark.createDataFrame(pa.table(DeltaTable(path).scan()).select(["activity_uuid"]).to_pylist())
    assert_df_equality(read_by_delta_rs, after.select("activity_uuid"), ignore_row_order=True, ignore_nullable=True)


def test_new_member_sees_earlier_group_events_unread_days_are_read_and_rerun_changes_nothing(spark, make_ctx):
    day1 = [
        event("join-1", "group", "2026-01-09 08:00", user="u1", group="G1", traits={"name": "Smiths"}, run_date=D1),
        track("g-evt", "Bill Paid", "2026-01-09 09:00", user="u1", group="G1", run_date=D1),
        track("c-evt", "Order Placed", "2026-01-09 10:00", user="u2", properties=ORDER_LINE, run_date=D1),
    ]
    day2 = [
        event("join-2", "identify", "2026-01-10 08:00", user="u2", group="G1", run_date=D2),
        track("g-evt-2", "Bill Paid", "2026-01-10 09:00", user="u2", group="G1", run_date=D2),
    ]
    idmap = identity_map(spark, {"C1": ["u1"], "C2": ["u2"]})
    ctx1 = make_ctx(D1)
    write_inputs(ctx1, day1, idmap)
    assert activities.run(ctx1, RunParams()).metrics["mode"] == "full"

    # ingest ran on D2 but activities did not: the run of D3 reads D2's rows too
    ctx2 = make_ctx(D3, activities=ALWAYS_MERGE)
    write_inputs(ctx2, day1 + day2, idmap)
    activities.run(ctx2, RunParams())
    stream = ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM)
    expected = spark.createDataFrame(
        [("g-evt", "C1", 1), ("g-evt", "C2", 1), ("c-evt", "C2", 1), ("g-evt-2", "C2", 2), ("g-evt-2", "C1", 2)],
        "message_id string, entity_id string, activity_occurence int",
    )
    assert_df_equality(stream.select("message_id", "entity_id", "activity_occurence"), expected,
                       ignore_row_order=True, ignore_nullable=True)

    snapshot = stream.cache()
    snapshot.count()
    again = activities.run(ctx2, RunParams()).metrics
    assert (again["rows_inserted"], again["rows_updated"], again["rows_deleted"]) == (0, 0, 0)
    assert_df_equality(ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM), snapshot, ignore_row_order=True)


def test_a_member_who_leaves_no_longer_gets_the_groups_events(spark, make_ctx):
    """groups.leave_trait: a leave call on D2 ends C2's membership, so the merge takes the group's
    events (those C2 did not send) from C2, earlier ones included, as a full rebuild does; C2's own
    group event stays C2's."""
    leaving = GroupSettings(leave_trait="removed")
    day1 = [
        event("join-1", "group", "2026-01-09 08:00", user="u1", group="G1", run_date=D1),
        event("join-2", "group", "2026-01-09 08:30", user="u2", group="G1", run_date=D1),
        track("g-evt", "Bill Paid", "2026-01-09 09:00", user="u1", group="G1", run_date=D1),
        track("g-own", "Bill Paid", "2026-01-09 09:30", user="u2", group="G1", run_date=D1),
    ]
    day2 = [
        event("leave-2", "group", "2026-01-11 08:00", user="u2", group="G1", traits={"removed": True}, run_date=D2),
        track("g-evt-2", "Bill Paid", "2026-01-11 09:00", user="u1", group="G1", run_date=D2),
    ]
    idmap = identity_map(spark, {"C1": ["u1"], "C2": ["u2"]})
    ctx1 = make_ctx(D1, groups=leaving)
    write_inputs(ctx1, day1, idmap)
    activities.run(ctx1, RunParams())
    ctx2 = make_ctx(D2, activities=ALWAYS_MERGE, groups=leaving)
    write_inputs(ctx2, day1 + day2, idmap)
    assert activities.run(ctx2, RunParams()).metrics["mode"] == "merge"
    expected = spark.createDataFrame(
        [("g-evt", "C1"), ("g-own", "C1"), ("g-own", "C2"), ("g-evt-2", "C1")], "message_id string, entity_id string")
    merged = ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM).select("message_id", "entity_id")
    assert_df_equality(merged, expected, ignore_row_order=True, ignore_nullable=True)
    history = ctx2.warehouse.read(spark, tables.GROUP_MEMBERSHIP_HISTORY).select("customer_id", "left_on", "left_by")
    assert sorted(history.collect()) == [("C1", None, None), ("C2", dt.date(2026, 1, 11), "leave_call")]
    # incremental = full: the same inputs rebuilt
    activities.run(ctx2, RunParams(rebuild=True))
    assert_df_equality(ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM).select("message_id", "entity_id"), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_a_resent_group_transaction_updates_the_earlier_one_in_place(spark, make_ctx):
    """activities.transactions (Blueshift's transaction_id_attributes): lead_initial events of a group
    with the same lead_id are one transaction, and its latest version (by time) is the stream's only
    one, in a merge as in a rebuild. A late earlier version changes nothing; an event without a
    groupId is no group transaction."""
    leads = ActivitySettings(rebuild_above_new_share=1.0,
                             transactions={"lead_initial": TransactionKey(id_attributes=["lead_id"])})
    day1 = [
        event("join-1", "group", "2026-01-09 08:00", user="u1", group="G1", run_date=D1),
        event("join-2", "group", "2026-01-09 08:30", user="u2", group="G1", run_date=D1),
        track("l1-v1", "Lead Initial", "2026-01-09 10:00", user="u1", group="G1",
              properties={"lead_id": "L1", "score": 5}, run_date=D1),
        track("l2-v1", "Lead Initial", "2026-01-09 11:00", user="u1", group="G1",
              properties={"lead_id": "L2", "score": 7}, run_date=D1),
        track("own-l1", "Lead Initial", "2026-01-09 12:00", user="u2", properties={"lead_id": "L1"}, run_date=D1),
    ]
    day2 = [
        # the account re-sends L1 (no sender: its members' rows); an older L2 version arrives late
        track("l1-v2", "Lead Initial", "2026-01-10 09:00", group="G1", properties={"lead_id": "L1", "score": 10},
              run_date=D2),
        track("l2-v0", "Lead Initial", "2026-01-08 09:00", user="u2", group="G1",
              properties={"lead_id": "L2", "score": 1}, run_date=D2),
    ]
    idmap = identity_map(spark, {"C1": ["u1"], "C2": ["u2"]})
    ctx1 = make_ctx(D1, activities=leads)
    write_inputs(ctx1, day1, idmap)
    activities.run(ctx1, RunParams())
    ctx2 = make_ctx(D2, activities=leads)
    write_inputs(ctx2, day1 + day2, idmap)
    assert activities.run(ctx2, RunParams()).metrics["mode"] == "merge"
    expected = spark.createDataFrame(
        [("l1-v2", "C1", "10"), ("l1-v2", "C2", "10"), ("l2-v1", "C1", "7"), ("l2-v1", "C2", "7"),
         ("own-l1", "C2", None)],
        "message_id string, entity_id string, score string")

    def leads_in_stream():
        return ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM).select(
            "message_id", "entity_id", F.get_json_object("feature_json", "$.score").alias("score"))

    assert_df_equality(leads_in_stream(), expected, ignore_row_order=True, ignore_nullable=True)
    activities.run(ctx2, RunParams(rebuild=True))
    assert_df_equality(leads_in_stream(), expected, ignore_row_order=True, ignore_nullable=True)


def test_transaction_ids_compare_value_by_value(spark):
    """Ids of two properties never collide as joined text would ("1-2" + "3" vs "1" + "2-3"); a later
    version replaces its own transaction only; an event missing an id property is no transaction."""
    key = {"lead_initial": TransactionKey(id_attributes=["a", "b"])}
    events = [
        track("t1", "Lead Initial", "2026-01-09 10:00", user="u1", group="G1", properties={"a": "1-2", "b": "3"}),
        track("t2", "Lead Initial", "2026-01-09 11:00", user="u1", group="G1", properties={"a": "1", "b": "2-3"}),
        track("t3", "Lead Initial", "2026-01-09 12:00", user="u1", group="G1", properties={"a": "1", "b": "2-3"}),
        track("t4", "Lead Initial", "2026-01-09 13:00", user="u1", group="G1", properties={"a": "1"}),
        track("t5", "Lead Initial", "2026-01-09 14:00", user="u1", group="G1", properties={"a": "1"}),
    ]
    kept = activities.latest_transaction_versions(activities.to_activity_events(bronze_events(spark, events), SETTINGS), key)
    assert sorted(r.message_id for r in kept.collect()) == ["t1", "t3", "t4", "t5"]


def test_split_moves_rows_to_the_new_customer(spark, make_ctx):
    events = [
        track("x1", "Order Placed", "2026-01-09 08:00", user="u1", properties=ORDER_LINE, run_date=D1),
        track("x2", "Order Placed", "2026-01-09 09:00", user="u5", properties=ORDER_LINE, run_date=D1),
    ]
    merged = identity_map(spark, {"C1": ["u1", "u5"]})
    split = identity_map(spark, {"C1": ["u1"], "C5": ["u5"]})
    ctx1 = make_ctx(D1)
    write_inputs(ctx1, events, merged)
    activities.run(ctx1, RunParams())
    ctx2 = make_ctx(D2)
    write_inputs(ctx2, events, split, identity_lineage(spark, [(D2, "C1", "C5", "split")]))
    result = activities.run(ctx2, RunParams())
    assert result.metrics["mode"] == "merge"
    assert step_names(result.notes[-1]) == ["memberships", "new_events", "changes", "day_rows", "stream_write",
                                             "daily_write", "groups_write", "unresolved"]
    assert_df_equality(ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM), stream_of(spark, events, split),
                       ignore_row_order=True, ignore_nullable=True)


def step_names(note: str) -> list[str]:
    """The steps of a jobs.core.steps note ('seconds: changes 1.2, day_rows 0.3'), in order."""
    assert note.startswith(STEP_NOTE), note
    return [part.rsplit(" ", 1)[0] for part in note.removeprefix(STEP_NOTE).split(", ")]


def test_many_new_activities_rebuild_instead_of_merging(spark, make_ctx):
    day1 = [track("y1", "Order Placed", "2026-01-09 08:00", user="u1", properties=ORDER_LINE, run_date=D1)]
    day2 = [track("y2", "Order Placed", "2026-01-10 08:00", user="u1", properties=ORDER_LINE, run_date=D2)]
    idmap = identity_map(spark, {"C1": ["u1"]})
    ctx1 = make_ctx(D1)
    write_inputs(ctx1, day1, idmap)
    activities.run(ctx1, RunParams())
    ctx2 = make_ctx(D2)  # default: rebuild above 20 % new; here 1 new against 1 row
    write_inputs(ctx2, day1 + day2, idmap)
    result = activities.run(ctx2, RunParams())
    assert result.metrics["mode"] == "full"
    assert result.notes[:-1] == ["rebuilt: 1 new activities against 1 rows in the stream"]
    # the summary's last note says where the stage's time went, step by step
    assert step_names(result.notes[-1]) == ["memberships", "new_events", "stream_write", "daily_write",
                                             "groups_write", "unresolved"]
    assert_df_equality(ctx2.warehouse.read(spark, tables.ACTIVITY_STREAM), stream_of(spark, day1 + day2, idmap),
                       ignore_row_order=True, ignore_nullable=True)


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"mappings": {"order_placed": {"features": {"feature11": "order_id"}}}},
         "'activities.mappings.order_placed.features.feature11'"),
        ({"mappings": {"email_opened": {"identifier_type": "fax", "identifier_property": "n"}}},
         "'activities.mappings.email_opened.identifier_type'"),
        ({"mappings": {"order_placed": {"revenue_propety": "order_value"}}},
         "'activities.mappings.order_placed.revenue_propety' (did you mean 'activities.mappings.order_placed.revenue_property'?)"),
        ({"mappings": {"Order Placed": {}}}, "'activities.mappings.Order Placed'"),
        ({"page_activity": "Viewed Page"}, "'activities.page_activity'"),
        ({"event_activities": {"Order Completed": "Order Placed"}}, "'activities.event_activities.Order Completed'"),
        ({"event_activities": {"--": "order_placed"}}, "'activities.event_activities.--' is not an event name"),
        ({"rebuild_above_new_share": 1.5}, "'activities.rebuild_above_new_share' must be between 0 and 1"),
        ({"transactions": {"Lead Initial": {"id_attributes": ["lead_id"]}}}, "'activities.transactions.Lead Initial'"),
        ({"transactions": {"lead_initial": {}}}, "'activities.transactions.lead_initial.id_attributes' must list"),
        ({"transactions": {"lead_initial": {"id_attributes": ["a", "a"]}}},
         "'activities.transactions.lead_initial.id_attributes' names a property twice"),
        ({"transactions": {"lead_initial": {"id_attributes": "lead_id"}}},
         "'activities.transactions.lead_initial.id_attributes' must be a list"),
    ],
)
def test_config_errors_name_the_key(tmp_path, section, named):
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"activities": section}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and named in str(err.value)

"""gold/traits: config validation, windows, every trait kind, the default traits through the stage."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jobs.core.context import RunParams
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.core import tables

from jobs.activities.daily import build_daily, rebuild_daily
from jobs.traits import stage as traits
from jobs.core.config import load_config
from jobs.core.errors import ConfigError, InputError
from jobs.core.catalog import SPECS
from jobs.traits.settings import GROUP_COLUMNS, TraitDefinition, TraitSettings, TraitWindow, Within
from tests.jobs.event_builders import utc
from tests.jobs.stream_builders import activity, stream
from tests.reference import c360_reference as R

RUN_DATE = dt.date(2026, 3, 15)
# As of 2026-03-15: "last 30 days" = 2026-02-14 .. 2026-03-15, "last month" = February 2026,
# the 12 months before March 2026 = 2025-03-01 .. 2026-02-28.
ROWS = [
    # c1: orders O1 (2025-02-10, 40), O2 (2025-06-01, lines 100 + 50), O3 (2026-02-20, 30),
    # O4 (on the run date, 20); O5 comes after the run date, with its rejection and invoice.
    activity("u1", "c1", "order_placed", "2025-02-10 10:00", order="O1-1", product="P1", value="40"),
    activity("u2", "c1", "order_placed", "2025-06-01 10:00", order="O2-1", product="P2", value="100"),
    activity("u3", "c1", "order_placed", "2025-06-01 10:00", order="O2-2", product="P3", value="50"),
    activity("u4", "c1", "order_placed", "2026-02-20 09:00", order="O3-1", product="P3", value="30"),
    activity("u5", "c1", "order_placed", "2026-03-15 23:00", order="O4-1", product="P4", value="20"),
    activity("u6", "c1", "order_placed", "2026-03-16 00:30", order="O5-1", product="P5", value="999"),
    # rejections: O1 just before the 12-month window and again on its first instant, O2 inside it,
    # O3 last month
    activity("u7", "c1", "order_rejected", "2025-02-28 23:59", order="O1-1"),
    activity("u8", "c1", "order_rejected", "2025-03-01 00:00", order="O1-1"),
    activity("u9", "c1", "order_rejected", "2025-06-02 10:00", order="O2-2"),
    activity("u10", "c1", "order_rejected", "2026-02-21 10:00", order="O3-1"),
    activity("u11", "c1", "order_rejected", "2026-03-16 08:00", order="O5-1"),
    activity("u12", "c1", "order_invoiced", "2025-06-05 10:00", order="O2-1"),
    activity("u13", "c1", "order_invoiced", "2026-03-15 23:30", order="O4-1"),
    activity("u14", "c1", "order_invoiced", "2026-03-17 10:00", order="O5-1"),
    # c2 and c3: one household order (a row per member); c2 also viewed products, the first view
    # one minute before the 7-day window (2026-03-09 .. 2026-03-15)
    activity("u20", "c2", "order_placed", "2026-03-10 12:00", order="G1-1", product="P7", value="60", group="g1"),
    activity("u30", "c3", "order_placed", "2026-03-10 12:00", order="G1-1", product="P7", value="60", group="g1"),
    activity("u21", "c2", "product_viewed", "2026-03-08 23:59", product="P8"),
    activity("u22", "c2", "product_viewed", "2026-03-09 00:00", product="P7"),
    activity("u23", "c2", "product_viewed", "2026-03-14 08:00", product="P7"),
    # c4 has no activity; c9 is not a customer; the last row is not attributed to anyone
    activity("u90", "c9", "order_placed", "2026-03-01 10:00", order="O9-1", value="10"),
    activity("u99", None, "order_placed", "2026-03-01 10:00", order="O8-1", value="10"),
]
CUSTOMER_IDS = ("c1", "c2", "c3", "c4")


@pytest.fixture(scope="module")
def activity_stream(spark):
    return stream(spark, ROWS)


@pytest.fixture(scope="module")
def customers(spark):
    return spark.createDataFrame([(c, f"name of {c}") for c in CUSTOMER_IDS], "customer_id string, customer_name string")


# ----------------------------------------------------------------------------------------------
# windows and config
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window, run_date, first, last",
    [
        (TraitWindow(days=30), "2026-03-15", "2026-02-14", "2026-03-15"),
        (TraitWindow(days=1), "2026-03-15", "2026-03-15", "2026-03-15"),
        (TraitWindow(calendar_months=1), "2026-03-15", "2026-02-01", "2026-02-28"),
        (TraitWindow(calendar_months=1), "2026-01-01", "2025-12-01", "2025-12-31"),
        (TraitWindow(calendar_months=1), "2024-03-31", "2024-02-01", "2024-02-29"),
        (TraitWindow(calendar_months=12), "2026-03-15", "2025-03-01", "2026-02-28"),
        # the canonical spelling {unit, start, end}; 2026-03-15 is a Sunday (its week: 03-09 .. 03-15)
        (TraitWindow(unit="day", start=-29, end=0), "2026-03-15", "2026-02-14", "2026-03-15"),
        (TraitWindow(unit="month", start=-12, end=-1), "2026-03-15", "2025-03-01", "2026-02-28"),
        (TraitWindow(unit="month", start=0, end=0), "2026-03-15", "2026-03-01", "2026-03-15"),
        (TraitWindow(unit="week", start=-1, end=-1), "2026-03-15", "2026-03-02", "2026-03-08"),
        (TraitWindow(unit="quarter", start=-4, end=-1), "2026-03-15", "2025-01-01", "2025-12-31"),
    ],
)
def test_window_bounds(window, run_date, first, last):
    bounds = traits.window_bounds(window, dt.date.fromisoformat(run_date))
    assert bounds == (dt.date.fromisoformat(first), dt.date.fromisoformat(last))


def _config(tmp_path: Path, computed: str):
    path = tmp_path / "traits.yml"
    path.write_text("traits:\n  computed:\n" + "".join(f"    - {line}\n" for line in computed.splitlines()))
    return load_config(path)


def test_a_trait_list_in_yaml_becomes_typed_definitions(tmp_path):
    cfg = _config(tmp_path, "{name: spend_90d, kind: sum, activity: order_placed, of: feature9, window: {days: 90}}")
    assert cfg.traits.computed == [
        TraitDefinition("spend_90d", "sum", activity="order_placed", of="feature9", window=TraitWindow(days=90))
    ]


@pytest.mark.parametrize(
    "computed, message",
    [
        ("{name: x, kind: lst}", r"'traits\.computed\[0\]\.kind' must be one of 'last', 'first', .*got 'lst'"),
        ("{name: x}", r"'traits\.computed\[0\]\.kind' is required \(trait 'x'\)"),
        ("{kind: count}", r"'traits\.computed\[0\]\.name' is required"),
        ("{name: Total Orders, kind: count}", r"'traits\.computed\[0\]\.name' must be a snake_case column name"),
        ("{name: customer_id, kind: count}", r"'traits\.computed\[0\]\.name' must be .* other than customer_id"),
        ("{name: x, kind: count, activty: order_placed}",
         r"unknown key 'traits\.computed\[0\]\.activty' \(did you mean 'traits\.computed\[0\]\.activity'\?\)"),
        ("{name: x, kind: count, activity: Order Placed}", r"'traits\.computed\[0\]\.activity' must be a snake_case"),
        ("{name: x, kind: sum}", r"'traits\.computed\[0\]\.of' is required for kind sum \(trait 'x'\)"),
        ("{name: x, kind: count_distinct}", r"'traits\.computed\[0\]\.of' is required for kind count_distinct"),
        ("{name: x, kind: count, of: order_no}", r"'traits\.computed\[0\]\.of' does not apply to kind count"),
        ("{name: x, kind: sum, of: order_no}",
         r"'traits\.computed\[0\]\.of' for kind sum must be one of revenue_impact, feature1, .* got 'order_no'"),
        ("{name: x, kind: last, of: price}", r"'traits\.computed\[0\]\.of' for kind last must be one of order_no"),
        ("{name: x, kind: count, window: {days: 3, calendar_months: 1}}",
         r"'traits\.computed\[0\]\.window' needs exactly one of \{unit: day\|week\|month\|quarter\|year, start: S, "
         r"end: E\}, \{days: N\}, \{calendar_months: N\}"),
        ("{name: x, kind: count, window: {}}", r"'traits\.computed\[0\]\.window' needs exactly one of"),
        ("{name: x, kind: count, window: {days: 0}}", r"'traits\.computed\[0\]\.window\.days' must be at least 1, got 0"),
        ("{name: x, kind: count, window: {first_day: 2026-01-01}}",
         r"'traits\.computed\[0\]\.window\.last_day' is required with first_day"),
        ("{name: x, kind: count, window: {first_day: 2026-04-01, last_day: 2026-03-31}}",
         r"'traits\.computed\[0\]\.window': a fixed period's first_day \(2026-04-01\) must not be after"),
        ("{name: x, kind: count, window: {first_day: 2026-01-15, last_day: 2026-03-31}, monthly_average: true}",
         r"'traits\.computed\[0\]\.monthly_average' needs window\.calendar_months .* or a fixed period from a month's first day"),
        ("{name: x, kind: count, window: {days: 30}, monthly_average: true}",
         r"'traits\.computed\[0\]\.monthly_average' needs window\.calendar_months \(trait 'x'\)"),
        ("{name: x, kind: max, of: feature9, window: {calendar_months: 3}, monthly_average: true}",
         r"'traits\.computed\[0\]\.monthly_average' applies to kinds count, count_distinct, sum"),
        ("{name: x, kind: count, numerator: a}", r"'traits\.computed\[0\]\.numerator' only applies to kind percentage"),
        ("{name: p, kind: percentage, numerator: a}", r"'traits\.computed\[0\]\.denominator' is required for kind percentage"),
        ("{name: a, kind: count}\n{name: p, kind: percentage, numerator: a, denominator: a, window: {days: 2}}",
         r"'traits\.computed\[1\]\.window' does not apply to kind percentage"),
        ("{name: a, kind: count}\n{name: p, kind: percentage, numerator: a, denominator: b}",
         r"'traits\.computed\[1\]\.denominator' \(trait 'p'\) names no trait: 'b'"),
        ("{name: a, kind: count}\n{name: p, kind: percentage, numerator: a, denominator: a}\n"
         "{name: q, kind: percentage, numerator: p, denominator: a}",
         r"'traits\.computed\[2\]\.numerator' \(trait 'q'\) must name a trait that is not a percentage"),
        ("{name: a, kind: count}\n{name: a, kind: first}",
         r"'traits\.computed\[1\]\.name': trait 'a' is already defined at traits\.computed\[0\]"),
        ("{name: x, kind: count, monthly_average: yes please}", r"'traits\.computed\[0\]\.monthly_average' must be true or false"),
        # sequences (kind not_followed_by)
        ("{name: x, kind: not_followed_by, followed_by: b, within: {hours: 1}}",
         r"'traits\.computed\[0\]\.activity' is required for kind not_followed_by \(trait 'x'\)"),
        ("{name: x, kind: not_followed_by, activity: a, within: {hours: 1}}",
         r"'traits\.computed\[0\]\.followed_by' is required for kind not_followed_by"),
        ("{name: x, kind: not_followed_by, activity: a, followed_by: b}",
         r"'traits\.computed\[0\]\.within' is required for kind not_followed_by"),
        ("{name: x, kind: not_followed_by, activity: a, followed_by: a, within: {hours: 1}}",
         r"'traits\.computed\[0\]\.followed_by' must be another activity than"),
        ("{name: x, kind: not_followed_by, activity: a, followed_by: Order Completed, within: {hours: 1}}",
         r"'traits\.computed\[0\]\.followed_by' must be a snake_case activity name"),
        ("{name: x, kind: not_followed_by, activity: a, followed_by: b, within: {hours: 1, minutes: 30}}",
         r"'traits\.computed\[0\]\.within' needs exactly one of minutes, hours, days"),
        ("{name: x, kind: not_followed_by, activity: a, followed_by: b, within: {hours: 0}}",
         r"'traits\.computed\[0\]\.within\.hours' must be at least 1, got 0"),
        ("{name: x, kind: not_followed_by, activity: a, followed_by: b, within: {weeks: 1}}",
         r"unknown key 'traits\.computed\[0\]\.within\.weeks'"),
        ("{name: x, kind: not_followed_by, activity: a, followed_by: b, within: {hours: 1}, of: order_no}",
         r"'traits\.computed\[0\]\.of' does not apply to kind not_followed_by"),
        ("{name: x, kind: count, followed_by: b}", r"'traits\.computed\[0\]\.followed_by' only applies to kind not_followed_by"),
        ("{name: x, kind: count, within: {hours: 1}}", r"'traits\.computed\[0\]\.within' only applies to kind not_followed_by"),
    ],
)
def test_bad_trait_config_names_file_and_key(tmp_path, computed, message):
    with pytest.raises(ConfigError, match=r"traits\.yml: .*" + message):
        _config(tmp_path, computed)


# ----------------------------------------------------------------------------------------------
# every kind
# ----------------------------------------------------------------------------------------------

EVERY_KIND = TraitSettings(computed=[
    TraitDefinition("first_order", "first", activity="order_placed"),
    TraitDefinition("last_product", "last", activity="order_placed", of="feature2"),
    TraitDefinition("first_rejected_order", "first", activity="order_rejected", of="order_no"),
    TraitDefinition("events", "count"),
    TraitDefinition("views_last_7_days", "count", activity="product_viewed", window=TraitWindow(days=7)),
    TraitDefinition("products", "count_distinct", of="feature2"),
    TraitDefinition("orders_jan_feb", "count_distinct", activity="order_placed", of="order_no",
                    window=TraitWindow(calendar_months=2)),
    TraitDefinition("spend_last_month", "sum", activity="order_placed", of="revenue_impact",
                    window=TraitWindow(calendar_months=1)),
    TraitDefinition("monthly_spend", "sum", activity="order_placed", of="feature9",
                    window=TraitWindow(calendar_months=12), monthly_average=True),
    TraitDefinition("orders_jan_feb_canonical", "count_distinct", activity="order_placed", of="order_no",
                    window=TraitWindow(unit="month", start=-2, end=-1)),
    TraitDefinition("monthly_spend_2025", "sum", activity="order_placed", of="feature9",
                    window=TraitWindow(unit="quarter", start=-4, end=-1), monthly_average=True),
    TraitDefinition("avg_line_value", "avg", activity="order_placed", of="feature9"),
    TraitDefinition("min_line_value", "min", activity="order_placed", of="revenue_impact"),
    TraitDefinition("max_line_value", "max", activity="order_placed", of="feature9"),
    TraitDefinition("days_since_last_view", "days_since_last", activity="product_viewed"),
    TraitDefinition("view_share", "percentage", numerator="views_last_7_days", denominator="events"),
])
EVERY_KIND_DDL = (
    "customer_id string, first_order timestamp, last_product string, first_rejected_order string, events long, "
    "views_last_7_days long, products long, orders_jan_feb long, spend_last_month double, monthly_spend double, "
    "orders_jan_feb_canonical long, monthly_spend_2025 double, "
    "avg_line_value double, min_line_value double, max_line_value double, days_since_last_view int, view_share double"
)


@pytest.mark.parametrize("read_from", ["stream", "day rows where they can answer"])
def test_every_kind_window_and_filter(spark, activity_stream, customers, read_from):
    # c1: 11 activities by the run date (5 placed, 4 rejected, 2 invoiced); products P1..P4; January-
    #     February: O3; February spend 30; the 12 months: 100 + 50 + 30 = 180 -> 15 a month;
    #     placed lines 40, 100, 50, 30, 20 -> avg 48, min 20, max 100. The four quarters of 2025
    #     (12 months): 40 + 100 + 50 = 190 -> 190 / 12 a month.
    # c2: 4 activities, 2 views in the 7 days -> 50 %; products P7, P8; last view yesterday.
    # c3: the household order only. c4: nothing -> 0 for counts and sums, null otherwise.
    expected = spark.createDataFrame(
        [("c1", utc("2025-02-10 10:00"), "P4", "c1-O1", 11, 0, 4, 1, 30.0, 15.0, 1, 190 / 12, 48.0, 20.0, 100.0,
          None, 0.0),
         ("c2", utc("2026-03-10 12:00"), "P7", None, 4, 2, 2, 0, 0.0, 0.0, 0, 0.0, 60.0, 60.0, 60.0, 1, 50.0),
         ("c3", utc("2026-03-10 12:00"), "P7", None, 1, 0, 1, 0, 0.0, 0.0, 0, 0.0, 60.0, 60.0, 60.0, None, 0.0),
         ("c4", None, None, None, 0, 0, 0, 0, 0.0, 0.0, 0, 0.0, None, None, None, None, None)],
        EVERY_KIND_DDL,
    )
    daily = build_daily(activity_stream) if read_from != "stream" else None
    got = traits.compute_traits(activity_stream, customers, EVERY_KIND, RUN_DATE, daily)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


FIXED_PERIODS = TraitSettings([
    TraitDefinition("orders_2025_q2", "count_distinct", activity="order_placed", of="order_no",
                    window=TraitWindow(first_day=dt.date(2025, 4, 1), last_day=dt.date(2025, 6, 30))),
    TraitDefinition("orders_march_2026", "count_distinct", activity="order_placed", of="order_no",
                    window=TraitWindow(first_day=dt.date(2026, 3, 1), last_day=dt.date(2026, 3, 31))),
    TraitDefinition("spend_march_2026", "sum", activity="order_placed", of="revenue_impact",
                    window=TraitWindow(first_day=dt.date(2026, 3, 1), last_day=dt.date(2026, 3, 31))),
    TraitDefinition("monthly_rejections_2025_q2", "count_distinct", activity="order_rejected", of="order_no",
                    window=TraitWindow(first_day=dt.date(2025, 4, 1), last_day=dt.date(2025, 6, 30)),
                    monthly_average=True),
])


@pytest.mark.parametrize("read_from", ["stream", "day rows where they can answer"])
@pytest.mark.parametrize(
    "run_date, rows",
    [
        # before March 2026: only 2025 Q2 has happened (c1's O2, and its rejected line O2-2: 1 / 3 a month)
        ("2026-02-28", [("c1", 1, 0, 0.0, 1 / 3), ("c2", 0, 0, 0.0, 0.0), ("c3", 0, 0, 0.0, 0.0),
                        ("c4", 0, 0, 0.0, 0.0)]),
        # inside March: cut at D (c1's O4 on D; the household order G1 on the 10th)
        ("2026-03-15", [("c1", 1, 1, 20.0, 1 / 3), ("c2", 0, 1, 60.0, 0.0), ("c3", 0, 1, 60.0, 0.0),
                        ("c4", 0, 0, 0.0, 0.0)]),
        # after March: its every order (c1's O5 of the 16th too); 2025 Q2 has not moved
        ("2026-04-30", [("c1", 1, 2, 1019.0, 1 / 3), ("c2", 0, 1, 60.0, 0.0), ("c3", 0, 1, 60.0, 0.0),
                        ("c4", 0, 0, 0.0, 0.0)]),
    ],
)
def test_fixed_period_traits_count_the_same_days_on_every_run_date(spark, activity_stream, customers, run_date,
                                                                   rows, read_from):
    expected = spark.createDataFrame(rows, "customer_id string, orders_2025_q2 long, orders_march_2026 long, "
                                           "spend_march_2026 double, monthly_rejections_2025_q2 double")
    daily = build_daily(activity_stream) if read_from != "stream" else None
    got = traits.compute_traits(activity_stream, customers, FIXED_PERIODS, dt.date.fromisoformat(run_date), daily)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_fixed_period_in_yaml(tmp_path):
    cfg = _config(tmp_path, "{name: orders_2026_q1, kind: count_distinct, activity: order_placed, of: order_no, "
                            "window: {first_day: 2026-01-01, last_day: 2026-03-31}}")
    assert cfg.traits.computed == [
        TraitDefinition("orders_2026_q1", "count_distinct", activity="order_placed", of="order_no",
                        window=TraitWindow(first_day=dt.date(2026, 1, 1), last_day=dt.date(2026, 3, 31)))
    ]


HOUSEHOLD_ROWS = [
    # m1, m2: g1's household order G1, two lines, a row for each member (c2, c3)
    ("m1", activity("u20", "c2", "order_placed", "2026-03-10 12:00", order="G1-1", value="60", group="g1")),
    ("m1", activity("u30", "c3", "order_placed", "2026-03-10 12:00", order="G1-1", value="60", group="g1")),
    ("m2", activity("u21", "c2", "order_placed", "2026-03-10 12:00", order="G1-2", value="40", group="g1")),
    ("m2", activity("u31", "c3", "order_placed", "2026-03-10 12:00", order="G1-2", value="40", group="g1")),
    # m3: c2's own order; m4: c3 viewed a product; m5: c1's order last June (g2's member)
    ("m3", activity("u22", "c2", "order_placed", "2026-03-01 09:00", order="O7-1", value="25")),
    ("m4", activity("u32", "c3", "product_viewed", "2026-03-14 08:00", product="P7")),
    ("m5", activity("u10", "c1", "order_placed", "2025-06-01 10:00", order="O1-1", value="100")),
    # m6: an order of g1 sent by c9, who is not a member (the sender's row only); m7: after the run date
    ("m6", activity("u90", "c9", "order_placed", "2026-02-01 10:00", order="X-1", value="5", group="g1")),
    ("m7", activity("u23", "c2", "order_placed", "2026-03-20 10:00", order="O8-1", value="999")),
    # m8, m9: g3's account order A1, two lines sent by nobody to a group without members (one
    # unresolved row each); m10: a g1 order from an anonymous sender not stitched yet (its
    # unresolved row and a row for each member)
    ("m8", activity("u80", None, "order_placed", "2026-03-05 10:00", order="A1-1", value="30", group="g3")),
    ("m9", activity("u81", None, "order_placed", "2026-03-05 10:00", order="A1-2", value="20", group="g3")),
    ("m10", activity("u82", None, "order_placed", "2026-03-02 10:00", order="G2-1", value="10", group="g1")),
    ("m10", activity("u24", "c2", "order_placed", "2026-03-02 10:00", order="G2-1", value="10", group="g1")),
    ("m10", activity("u33", "c3", "order_placed", "2026-03-02 10:00", order="G2-1", value="10", group="g1")),
]


def test_group_traits_count_each_event_once_per_group(spark):
    rows = [row for _, row in HOUSEHOLD_ROWS]
    message_of = F.create_map(*[F.lit(v) for m, row in HOUSEHOLD_ROWS for v in (row[0], m)])
    activities = stream(spark, rows).withColumn("message_id", message_of[F.col("activity_uuid")])
    groups = spark.createDataFrame([("g1",), ("g2",), ("g3",), ("g4",)], "group_id string")
    members = spark.createDataFrame([("g1", "c2"), ("g1", "c3"), ("g2", "c1"), ("g4", "c2")],
                                    "group_id string, customer_id string")
    # g1: last order the household order; orders c2-G1 (both lines, named by the first member), c2-O7,
    #     the sender's c9-X and c2-G2 (the unresolved sender's row adds nothing); spend 60 + 40 + 25 +
    #     5 + 10 (each household order once, not per member); in the 30 days c2 and c3 ordered (c9 is
    #     no member). g2: c1's June order. g3: its own order A1, one order of 30 + 20, no member.
    # g4 (c2 is in g1 too): c2's own order only; g1's household order is g1's
    expected = spark.createDataFrame(
        [("g1", utc("2026-03-10 12:00"), 4, 140.0, 2), ("g2", utc("2025-06-01 10:00"), 1, 100.0, 0),
         ("g3", utc("2026-03-05 10:00"), 1, 50.0, 0), ("g4", utc("2026-03-01 09:00"), 1, 25.0, 1)],
        "group_id string, household_last_order_date timestamp, household_orders long, "
        "household_lifetime_value double, members_ordered_last_30_days long")
    got = traits.compute_group_traits(activities, groups, members, TraitSettings().group, RUN_DATE)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("computed, message", [
    ("{name: x, kind: members}", r"'traits\.computed\[0\]\.kind': members counts a group's members; it is a group trait"),
])
def test_members_is_a_group_trait(tmp_path, computed, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, computed)


def test_group_trait_config(tmp_path):
    path = tmp_path / "traits.yml"
    path.write_text("traits:\n  group:\n    - {name: active_members, kind: members, window: {days: 7}}\n")
    assert load_config(path).traits.group == [TraitDefinition("active_members", "members", window=TraitWindow(days=7))]
    path.write_text("traits:\n  group:\n    - {name: name, kind: count}\n")
    with pytest.raises(ConfigError, match=r"'traits\.group\[0\]\.name': 'name' is a column of gold/groups"):
        load_config(path)
    path.write_text("traits:\n  group:\n    - {name: m, kind: members, of: order_no}\n")
    with pytest.raises(ConfigError, match=r"'traits\.group\[0\]\.of' does not apply to kind members"):
        load_config(path)


def test_the_group_columns_a_group_trait_may_not_take_are_gold_groups(spark):
    assert GROUP_COLUMNS == SPECS[tables.GROUPS].columns


# ----------------------------------------------------------------------------------------------
# sequences: "added to cart and no purchase within 4 hours" (kind not_followed_by)
# ----------------------------------------------------------------------------------------------

ADDED, PLACED = "product_added", "order_placed"
SEQUENCES = TraitSettings([
    TraitDefinition("carts_abandoned_last_7_days", "not_followed_by", activity=ADDED, followed_by=PLACED,
                    within=Within(hours=4), window=TraitWindow(days=7)),
    TraitDefinition("carts_abandoned_30_minutes", "not_followed_by", activity=ADDED, followed_by=PLACED,
                    within=Within(minutes=30)),
])
# (message, row): the run date is 2026-03-15; the 7 days are 03-09 .. 03-15
SEQUENCE_ROWS = [
    # c1: a cart ordered 3 h later; one ordered 4 h and 1 s later; one ordered exactly 4 h later
    ("m1", activity("s1", "c1", ADDED, "2026-03-10 10:00")),
    ("o1", activity("s2", "c1", PLACED, "2026-03-10 13:00", order="A-1", value="10")),
    ("m2", activity("s3", "c1", ADDED, "2026-03-12 09:00")),
    ("o2", activity("s4", "c1", PLACED, "2026-03-12 13:00:01", order="A-2", value="10")),
    ("m3", activity("s5", "c1", ADDED, "2026-03-13 10:00")),
    ("o3", activity("s6", "c1", PLACED, "2026-03-13 14:00", order="A-3", value="10")),
    # c2: carts on the run date at 19:59 (4 h end before midnight) and 20:00 (4 h end at midnight: the
    # order could still come), one before the 7 days, and one after the run date
    ("m4", activity("s7", "c2", ADDED, "2026-03-15 19:59")),
    ("m5", activity("s8", "c2", ADDED, "2026-03-15 20:00")),
    ("m6", activity("s9", "c2", ADDED, "2026-03-01 10:00")),
    ("m60", activity("s10", "c2", ADDED, "2026-03-16 10:00")),
    # c3: an order before the cart does not follow it; a cart event with two rows counts once
    ("o4", activity("s11", "c3", PLACED, "2026-03-11 09:00", order="B-1", value="10")),
    ("m7", activity("s12", "c3", ADDED, "2026-03-11 10:00")),
    ("m8", activity("s13", "c3", ADDED, "2026-03-14 11:00", product="P1")),
    ("m8", activity("s14", "c3", ADDED, "2026-03-14 11:00", product="P2")),
    # c4: an order at the cart's very instant follows it; c5's cart is followed by c1's order only
    ("m9", activity("s15", "c4", ADDED, "2026-03-14 08:00")),
    ("o5", activity("s16", "c4", PLACED, "2026-03-14 08:00", order="C-1", value="10")),
    ("m10", activity("s17", "c5", ADDED, "2026-03-12 12:00")),
    # nobody's cart
    ("m11", activity("s18", None, ADDED, "2026-03-12 12:00")),
]


def _with_messages(spark, rows):
    message_of = F.create_map(*[F.lit(v) for m, row in rows for v in (row[0], m)])
    return stream(spark, [row for _, row in rows]).withColumn("message_id", message_of[F.col("activity_uuid")])


def test_a_cart_not_followed_by_an_order_within_the_time(spark):
    people = spark.createDataFrame([(c,) for c in ("c1", "c2", "c3", "c4", "c5", "c6")], "customer_id string")
    # 4 h in the 7 days: c1 m2; c2 m4 (m5's 4 h not over, m6 before the window); c3 m7, m8; c5 m10.
    # 30 min, all time: c1 m1, m2, m3; c2 m4, m5, m6; c3 m7, m8; c4 none; c5 m10; c6 no activity.
    expected = spark.createDataFrame(
        [("c1", 1, 3), ("c2", 1, 3), ("c3", 2, 2), ("c4", 0, 0), ("c5", 1, 1), ("c6", 0, 0)],
        "customer_id string, carts_abandoned_last_7_days long, carts_abandoned_30_minutes long")
    got = traits.compute_traits(_with_messages(spark, SEQUENCE_ROWS), people, SEQUENCES, RUN_DATE,
                                build_daily(stream(spark, [row for _, row in SEQUENCE_ROWS])))
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_sequences_agree_with_the_reference_on_random_timelines(spark):
    import random

    rng = random.Random(15)
    start = dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc)
    rows, reference_rows = [], []
    for n in range(400):
        customer = f"c{rng.randrange(40)}"
        kind = rng.choice([ADDED, ADDED, PLACED, "product_viewed"])
        at = start + dt.timedelta(minutes=rng.randrange(7 * 24 * 60) // 15 * 15)
        text = at.strftime("%Y-%m-%d %H:%M")
        rows.append((f"m{n}", activity(f"u{n}", customer, kind, text)))
        reference_rows.append(R.Activity(f"m{n}", customer, kind, at, {}, None))
    settings = TraitSettings([TraitDefinition("abandoned", "not_followed_by", activity=ADDED, followed_by=PLACED,
                                              within=Within(hours=2), window=TraitWindow(days=3))])
    got = {r.customer_id: r.abandoned for r in traits.compute_traits(
        _with_messages(spark, rows), spark.createDataFrame([(f"c{i}",) for i in range(40)], "customer_id string"),
        settings, RUN_DATE).collect()}
    expected = R.not_followed_by(reference_rows, ADDED, PLACED, dt.timedelta(hours=2), RUN_DATE,
                                 first_day=RUN_DATE - dt.timedelta(days=2))
    assert got == {f"c{i}": expected.get(f"c{i}", 0) for i in range(40)}
    assert sum(got.values()) > 10, got  # the draw exercises the trait


def test_a_sequence_trait_in_yaml(tmp_path):
    cfg = _config(tmp_path, "{name: carts_abandoned, kind: not_followed_by, activity: product_added, "
                            "followed_by: order_completed, within: {hours: 4}, window: {days: 7}}")
    assert cfg.traits.computed == [
        TraitDefinition("carts_abandoned", "not_followed_by", activity="product_added", followed_by="order_completed",
                        within=Within(hours=4), window=TraitWindow(days=7))
    ]


def test_a_sequence_is_a_customer_trait(tmp_path):
    path = tmp_path / "traits.yml"
    path.write_text("traits:\n  group:\n    - {name: x, kind: not_followed_by, activity: a, followed_by: b, "
                    "within: {hours: 1}}\n")
    with pytest.raises(ConfigError, match=r"'traits\.group\[0\]\.kind': not_followed_by follows one customer's"):
        load_config(path)


# ----------------------------------------------------------------------------------------------
# the stage, with the default traits
# ----------------------------------------------------------------------------------------------

DEFAULT_DDL = (
    "customer_id string, last_order_date timestamp, total_orders long, lifetime_value double, "
    "orders_last_30_days long, days_since_last_order int, rejected_orders long, invoiced_orders long, "
    "rejected_orders_last_month long, rejected_orders_monthly_average double, "
    "percentage_orders_rejected double, percentage_orders_invoiced double"
)


def test_stage_writes_the_default_traits_for_every_customer(spark, make_ctx, activity_stream, customers):
    # c1: 4 orders worth 240 (the order after the run date left out), O3 and O4 in the last 30 days,
    #     last order on the run date; rejected O1, O2, O3 (3 of 4 = 75 %), in February O3, in the 12
    #     months O1 (on its first instant), O2, O3 -> 3 / 12; invoiced O2, O4 (50 %).
    # c2, c3: the household order 5 days ago. c4: no activity.
    ctx = make_ctx(RUN_DATE)
    # every row its own event (the stream's message_id, which the group traits read; no groups here)
    ctx.warehouse.overwrite(activity_stream.withColumn("message_id", F.col("activity_uuid")), tables.ACTIVITY_STREAM)
    rebuild_daily(spark, ctx.warehouse)
    ctx.warehouse.overwrite(customers, tables.SILVER_CUSTOMERS)
    result = traits.run(ctx, RunParams())
    household = (utc("2026-03-10 12:00"), 1, 60.0, 1, 5, 0, 0, 0, 0.0, 0.0, 0.0)
    expected = spark.createDataFrame(
        [("c1", utc("2026-03-15 23:00"), 4, 240.0, 2, 0, 3, 2, 1, 0.25, 75.0, 50.0),
         ("c2", *household), ("c3", *household),
         ("c4", None, 0, 0.0, 0, None, 0, 0, 0, 0.0, None, None)],
        DEFAULT_DDL,
    )
    assert_df_equality(ctx.warehouse.read(spark, tables.TRAITS), expected, ignore_row_order=True, ignore_nullable=True)
    assert result.metrics == {"customers": 4, "traits": 11, "groups": 0, "group_traits": 4}
    assert ctx.warehouse.read(spark, tables.GROUP_TRAITS).columns == [
        "group_id", "household_last_order_date", "household_orders", "household_lifetime_value",
        "members_ordered_last_30_days"]
    # with no group traits the table is rewritten with group_id alone: segments read no stale columns
    traits.run(make_ctx(RUN_DATE, traits=TraitSettings(group=[])), RunParams())
    assert ctx.warehouse.read(spark, tables.GROUP_TRAITS).columns == ["group_id"]


def test_missing_activity_stream_names_the_table_and_the_command(make_ctx):
    ctx = make_ctx(RUN_DATE)
    with pytest.raises(InputError, match=r"silver/activity_stream does not exist: run `c360 activities` first"):
        traits.run(ctx, RunParams())

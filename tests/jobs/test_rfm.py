"""gold/rfm: metrics as of the run date, tie-sharing quintile scores, the segment grid, the stage."""
from __future__ import annotations

import datetime as dt

import pytest

from jobs.core.context import RunParams
from chispa import assert_df_equality

from jobs.activities.daily import build_daily, rebuild_daily
from jobs.rfm import retention
from jobs.rfm import stage as rfm

from jobs.core import tables
from jobs.core.errors import InputError
from tests.jobs.stream_builders import activity, stream

RUN_DATE = dt.date(2026, 1, 31)
METRICS_DDL = "customer_id string, recency_days int, frequency long, monetary double"
SCORED_DDL = METRICS_DDL + ", r_score int, f_score int, m_score int"
RFM_DDL = SCORED_DDL + ", rfm_segment string, run_date date"

# As of 2026-01-31 (values worked out by hand next to each customer):
# c1: orders O1 (2 lines, 10 + 5.5) yesterday and O2 (20) on the 10th -> recency 1, 2 orders, 35.5;
#     its order of 2026-02-01 is after the run date and its rejection is not an order placed.
# c2: order O1 (same number as c1's, another customer) today, one line without a number value
#     -> recency 0, 1 order, 100.0.
# c5, c6: one group order (a row per member) on the 20th -> recency 11, 1 order, 50.0 each.
# c3 only viewed a product, c4 only ordered after the run date, the last row is unattributed.
ROWS = [
    activity("u1", "c1", "order_placed", "2026-01-30 10:00", order="O1-1", value="10"),
    activity("u2", "c1", "order_placed", "2026-01-30 10:00", order="O1-2", value="5.5"),
    activity("u3", "c1", "order_placed", "2026-01-10 08:00", order="O2-1", value="20"),
    activity("u4", "c1", "order_placed", "2026-02-01 00:00", order="O3-1", value="500"),
    activity("u5", "c1", "order_rejected", "2026-01-31 09:00", order="O1-1", value="10"),
    activity("u6", "c2", "order_placed", "2026-01-31 23:59", order="O1-1", value="100"),
    activity("u7", "c2", "order_placed", "2026-01-31 23:59", order=" O1-2 ", value="n/a"),
    activity("u8", "c5", "order_placed", "2026-01-20 12:00", order="O7-1", value="50", group="g1"),
    activity("u9", "c6", "order_placed", "2026-01-20 12:00", order="O7-1", value="50", group="g1"),
    activity("u10", "c3", "product_viewed", "2026-01-29 12:00", product="P1"),
    activity("u11", "c4", "order_placed", "2026-02-03 12:00", order="O5-1", value="70"),
    activity("u12", None, "order_placed", "2026-01-15 12:00", order="O6-1", value="80"),
]


@pytest.fixture(scope="module")
def activity_stream(spark):
    return stream(spark, ROWS)


def test_metrics_as_of_the_run_date(spark, activity_stream):
    expected = spark.createDataFrame(
        [("c1", 1, 2, 35.5), ("c2", 0, 1, 100.0), ("c5", 11, 1, 50.0), ("c6", 11, 1, 50.0)], METRICS_DDL
    )
    assert_df_equality(rfm.rfm_metrics(build_daily(activity_stream), RUN_DATE), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_the_placed_day_rows_the_stage_reads_once_answer_as_the_whole_day_rows_do(spark, activity_stream):
    # the stage scores and builds the cohorts from placed_days (the rejection, the product view
    # and the orders after the run date left out): the same answers as from every day row
    day_rows = build_daily(activity_stream)
    placed = rfm.placed_days(day_rows, RUN_DATE)
    assert sorted(r["entity_id"] for r in placed.collect()) == ["c1", "c1", "c2", "c5", "c6"]
    assert_df_equality(rfm.build_rfm(placed, RUN_DATE), rfm.build_rfm(day_rows, RUN_DATE), ignore_row_order=True)
    assert_df_equality(retention.cohort_retention(placed, RUN_DATE), retention.cohort_retention(day_rows, RUN_DATE),
                       ignore_row_order=True)


def test_scores_share_ties_and_span_one_to_five(spark):
    # 8 customers: score = min(5, 1 + (5 * customers strictly worse) div 7).
    # recency (smaller is better): 0,0 -> 6 worse -> 5; 3,3,3 -> 3 worse -> 3; 9 -> 2 -> 2; 20, 60 -> 1.
    # frequency: 1 (x4) -> 0 worse -> 1; 2,2 -> 4 worse -> 3; 4 -> 6 -> 5; 9 -> 7 -> 6, capped to 5.
    # monetary, all distinct: 0..7 worse -> 1,1,2,3,3,4,5,5.
    metrics = spark.createDataFrame(
        [("a", 0, 1, 10.0), ("b", 0, 1, 20.0), ("c", 3, 1, 30.0), ("d", 3, 1, 40.0),
         ("e", 3, 2, 50.0), ("f", 9, 2, 60.0), ("g", 20, 4, 70.0), ("h", 60, 9, 80.0)],
        METRICS_DDL,
    )
    expected = spark.createDataFrame(
        [("a", 0, 1, 10.0, 5, 1, 1), ("b", 0, 1, 20.0, 5, 1, 1), ("c", 3, 1, 30.0, 3, 1, 2),
         ("d", 3, 1, 40.0, 3, 1, 3), ("e", 3, 2, 50.0, 3, 3, 3), ("f", 9, 2, 60.0, 2, 3, 4),
         ("g", 20, 4, 70.0, 1, 5, 5), ("h", 60, 9, 80.0, 1, 5, 5)],
        SCORED_DDL,
    )
    assert_df_equality(rfm.quintile_scores(metrics), expected, ignore_row_order=True, ignore_nullable=True)


def test_a_lone_customer_scores_one(spark):
    metrics = spark.createDataFrame([("solo", 2, 3, 9.5)], METRICS_DDL)
    assert rfm.quintile_scores(metrics).collect()[0][4:] == (1, 1, 1)


SEGMENT_NAMES = {
    "Champions", "Loyal Customers", "Potential Loyalists", "New Customers", "Promising", "Need Attention",
    "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost",
}


def test_segment_grid_has_one_known_segment_per_cell_and_every_segment():
    assert sorted(rfm.SEGMENT_GRID) == [1, 2, 3, 4, 5]
    assert all(len(row) == 5 and set(row) <= SEGMENT_NAMES for row in rfm.SEGMENT_GRID.values())
    assert {name for row in rfm.SEGMENT_GRID.values() for name in row} == SEGMENT_NAMES


def test_every_segment_is_reachable(spark):
    # (r, f, m) -> segment by the grid in docs/rfm.md, FM = (f + m) div 2
    cases = [
        (5, 5, 5, "Champions"), (5, 4, 5, "Champions"), (4, 4, 5, "Loyal Customers"),
        (3, 5, 4, "Loyal Customers"), (4, 3, 4, "Potential Loyalists"),
        (5, 2, 3, "Potential Loyalists"), (5, 1, 2, "New Customers"), (4, 1, 2, "Promising"),
        (3, 3, 3, "Need Attention"), (3, 2, 1, "About to Sleep"), (3, 2, 3, "About to Sleep"),
        (2, 3, 4, "At Risk"), (1, 4, 5, "At Risk"), (2, 5, 5, "Can't Lose Them"), (1, 5, 5, "Can't Lose Them"),
        (2, 1, 2, "Hibernating"), (1, 2, 2, "Lost"), (1, 1, 1, "Lost"),
    ]
    got = rfm.with_segment(spark.createDataFrame(
        [(f"{r}{f}{m}", r, f, m) for r, f, m, _ in cases], "customer_id string, r_score int, f_score int, m_score int"
    ))
    assert {row["customer_id"]: row["rfm_segment"] for row in got.collect()} == {
        f"{r}{f}{m}": name for r, f, m, name in cases
    }


def test_stage_writes_gold_rfm(spark, make_ctx, activity_stream):
    # 4 customers: score = min(5, 1 + (5 * worse) div 3).
    # c1: recency worse 2 -> 4, frequency worse 3 -> 5, monetary worse 0 -> 1; FM 3 -> Potential Loyalists
    # c2: recency worse 3 -> 5, frequency tied lowest -> 1, monetary worse 3 -> 5; FM 3 -> Potential Loyalists
    # c5, c6: recency worse 0 -> 1, frequency 1, monetary worse 1 -> 2; FM 1 -> Lost
    ctx = make_ctx(RUN_DATE)
    ctx.warehouse.overwrite(activity_stream, tables.ACTIVITY_STREAM)
    rebuild_daily(spark, ctx.warehouse)
    result = rfm.run(ctx, RunParams())
    expected = spark.createDataFrame(
        [("c1", 1, 2, 35.5, 4, 5, 1, "Potential Loyalists", RUN_DATE),
         ("c2", 0, 1, 100.0, 5, 1, 5, "Potential Loyalists", RUN_DATE),
         ("c5", 11, 1, 50.0, 1, 1, 2, "Lost", RUN_DATE),
         ("c6", 11, 1, 50.0, 1, 1, 2, "Lost", RUN_DATE)],
        RFM_DDL,
    )
    first = ctx.warehouse.read(spark, tables.RFM)
    assert_df_equality(first, expected, ignore_row_order=True, ignore_nullable=True)
    assert result.metrics == {"customers": 4, "repeat_customers": 1}
    assert result.notes == ["segments: Lost 2, Potential Loyalists 2",
                            "repurchase rate 25.0 % (1 of 4 customers ordered more than once)",
                            "migration: no earlier run in gold/rfm_history"]


def test_missing_day_rows_name_the_table_and_the_command(make_ctx):
    with pytest.raises(InputError, match=r"silver/activity_daily does not exist: run `c360 activities` first"):
        rfm.run(make_ctx(RUN_DATE), RunParams())

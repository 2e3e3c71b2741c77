"""Retention outputs of the rfm stage: gold/rfm_history, gold/rfm_migration, gold/cohort_retention and
the repurchase rate, on hand-built rows with the expected rows written out."""
from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality

from jobs.activities.daily import build_daily, rebuild_daily
from jobs.core import tables
from jobs.core.config import ConfigError, load_config
from jobs.core.context import RunParams
from jobs.rfm import retention
from jobs.rfm import stage as rfm
from jobs.rfm.settings import RfmSettings
from tests.jobs.stream_builders import activity, stream
from tests.jobs.test_rfm import ROWS

D1, D2, D3 = dt.date(2026, 1, 25), dt.date(2026, 1, 31), dt.date(2026, 2, 15)
MIGRATION_DDL = "run_date date, from_run_date date, from_segment string, to_segment string, customers long"
COHORT_DDL = ("cohort_month date, months_since int, cohort_customers long, active_customers long, "
              "retention_rate double, run_date date")
SEGMENTS_DDL = "customer_id string, rfm_segment string"
NEW = retention.NOT_SCORED


def test_migration_counts_moves_and_customers_on_one_side(spark):
    # a stays a Champion, b climbs from Lost, c is gone (merged into another id), d slips to Loyal,
    # e placed a first order
    previous = spark.createDataFrame(
        [("a", "Champions"), ("b", "Lost"), ("c", "At Risk"), ("d", "Champions")], SEGMENTS_DDL)
    current = spark.createDataFrame(
        [("a", "Champions"), ("b", "Champions"), ("d", "Loyal Customers"), ("e", "New Customers")], SEGMENTS_DDL)
    expected = spark.createDataFrame([
        (D2, D1, "Champions", "Champions", 1), (D2, D1, "Lost", "Champions", 1), (D2, D1, "At Risk", NEW, 1),
        (D2, D1, "Champions", "Loyal Customers", 1), (D2, D1, NEW, "New Customers", 1),
    ], MIGRATION_DDL)
    assert_df_equality(retention.rfm_migration(previous, current, D1, D2), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_cohorts_by_first_order_month_with_empty_months(spark):
    # As of 2026-03-10:
    # c1 orders in January (twice) and March -> January cohort, active in months 0 and 2;
    # c2 orders on 31 January late evening and 1 February -> January cohort, active in months 0 and 1;
    # c3 orders in February and on the run date -> February cohort, active in months 0 and 1;
    # c4's only order is after the run date, c5 only viewed and had an order rejected: no cohort;
    # c6 orders in December and March only -> December cohort, its January and February rows with
    # 0 active customers (the triangle is whole).
    rows = [
        activity("u1", "c1", "order_placed", "2026-01-05 09:00", order="A-1", value="10"),
        activity("u2", "c1", "order_placed", "2026-01-20 09:00", order="B-1", value="10"),
        activity("u3", "c1", "order_placed", "2026-03-02 09:00", order="C-1", value="10"),
        activity("u4", "c2", "order_placed", "2026-01-31 23:00", order="D-1", value="10"),
        activity("u5", "c2", "order_placed", "2026-02-01 00:30", order="E-1", value="10"),
        activity("u6", "c3", "order_placed", "2026-02-14 12:00", order="F-1", value="10"),
        activity("u7", "c3", "order_placed", "2026-03-10 23:59", order="G-1", value="10"),
        activity("u8", "c4", "order_placed", "2026-03-11 00:00", order="H-1", value="10"),
        activity("u9", "c5", "product_viewed", "2026-01-03 10:00", product="P1"),
        activity("u10", "c5", "order_rejected", "2026-02-03 10:00", order="I-1"),
        activity("u11", "c6", "order_placed", "2025-12-24 18:00", order="J-1", value="10"),
        activity("u12", "c6", "order_placed", "2026-03-01 08:00", order="K-1", value="10"),
    ]
    run_date = dt.date(2026, 3, 10)
    dec, jan, feb = dt.date(2025, 12, 1), dt.date(2026, 1, 1), dt.date(2026, 2, 1)
    expected = spark.createDataFrame([
        (dec, 0, 1, 1, 1.0, run_date), (dec, 1, 1, 0, 0.0, run_date), (dec, 2, 1, 0, 0.0, run_date),
        (dec, 3, 1, 1, 1.0, run_date),
        (jan, 0, 2, 2, 1.0, run_date), (jan, 1, 2, 1, 0.5, run_date), (jan, 2, 2, 1, 0.5, run_date),
        (feb, 0, 1, 1, 1.0, run_date), (feb, 1, 1, 1, 1.0, run_date),
    ], COHORT_DDL)
    got = retention.cohort_retention(build_daily(stream(spark, rows)), run_date)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_repeat_customers(spark):
    scored = spark.createDataFrame([("a", 1), ("b", 2), ("c", 7)], "customer_id string, frequency long")
    assert retention.repeat_customers(scored).first().asDict() == {"customers": 3, "repeat_customers": 2}


def _segments(spark, wh, table, run_date):
    return {r["customer_id"]: r["rfm_segment"] for r in
            wh.read(spark, table).filter(f"run_date = '{run_date}'").collect()}


def test_stage_keeps_history_and_migration_per_run(spark, make_ctx):
    # ROWS (tests/jobs/test_rfm.py) as of D1 = 2026-01-25: c1 (one order, 20, 15 days ago) and c5, c6
    # (one group order, 50, 5 days ago); 3 customers, score = min(5, 1 + (5 * worse) div 2):
    #   c1: r 1, f 1, m 1 -> Lost; c5, c6: r 3, f 1, m 3, FM 2 -> About to Sleep.
    # As of D2 = 2026-01-31 (tests/jobs/test_rfm.py): c1, c2 Potential Loyalists, c5, c6 Lost.
    ctx = make_ctx(D1)
    wh = ctx.warehouse
    wh.overwrite(stream(spark, ROWS), tables.ACTIVITY_STREAM)
    rebuild_daily(spark, wh)
    first = rfm.run(ctx, RunParams())
    assert first.notes[-1] == "migration: no earlier run in gold/rfm_history"
    second = rfm.run(make_ctx(D2), RunParams())
    rfm.run(make_ctx(D2), RunParams())  # a re-run of the date changes nothing
    assert second.metrics == {"customers": 4, "repeat_customers": 1}
    assert second.notes == ["segments: Lost 2, Potential Loyalists 2",
                            "repurchase rate 25.0 % (1 of 4 customers ordered more than once)",
                            "migration from 2026-01-25"]
    assert _segments(spark, wh, tables.RFM_HISTORY, D1) == {"c1": "Lost", "c5": "About to Sleep", "c6": "About to Sleep"}
    assert _segments(spark, wh, tables.RFM_HISTORY, D2) == {
        "c1": "Potential Loyalists", "c2": "Potential Loyalists", "c5": "Lost", "c6": "Lost"}
    history_d2 = wh.read(spark, tables.RFM_HISTORY).filter(f"run_date = '{D2}'")
    assert_df_equality(history_d2.select(*rfm.RFM_COLUMNS), wh.read(spark, tables.RFM), ignore_row_order=True)
    expected = spark.createDataFrame([
        (D1, None, NEW, "Lost", 1), (D1, None, NEW, "About to Sleep", 2),
        (D2, D1, "Lost", "Potential Loyalists", 1), (D2, D1, NEW, "Potential Loyalists", 1),
        (D2, D1, "About to Sleep", "Lost", 2),
    ], MIGRATION_DDL)
    assert_df_equality(wh.read(spark, tables.RFM_MIGRATION), expected, ignore_row_order=True, ignore_nullable=True)
    # every order of ROWS up to D2 is in January: one cohort of 4, all active in its month
    assert [tuple(r) for r in wh.read(spark, tables.COHORT_RETENTION).collect()] == [
        (dt.date(2026, 1, 1), 0, 4, 4, 1.0, D2)]

    # D3 with rfm.history_days 10: the runs before 2026-02-05 leave the history (its migration is from D2)
    rfm.run(make_ctx(D3, rfm=RfmSettings(history_days=10)), RunParams())
    assert [r[0] for r in wh.read(spark, tables.RFM_HISTORY).select("run_date").distinct().collect()] == [D3]
    assert {(r["run_date"], r["from_run_date"]) for r in wh.read(spark, tables.RFM_MIGRATION).collect()} == {(D3, D2)}


def test_full_rewinds_the_runs_after_the_run_date(spark, make_ctx):
    wh = make_ctx(D1).warehouse
    wh.overwrite(stream(spark, ROWS), tables.ACTIVITY_STREAM)
    rebuild_daily(spark, wh)
    for day in (D1, D2, D3):
        rfm.run(make_ctx(day), RunParams())
    before = wh.read(spark, tables.RFM_MIGRATION).filter(f"run_date <= '{D2}'").collect()
    rfm.run(make_ctx(D2), RunParams(rewind=True))
    for table in (tables.RFM_HISTORY, tables.RFM_MIGRATION):
        assert sorted(r[0] for r in wh.read(spark, table).select("run_date").distinct().collect()) == [D1, D2]
    assert sorted(wh.read(spark, tables.RFM_MIGRATION).collect()) == sorted(before)


def test_history_days_must_be_positive(tmp_path):
    conf = tmp_path / "c.yml"
    conf.write_text("rfm:\n  history_days: 0\n")
    with pytest.raises(ConfigError, match=r"'rfm.history_days' must be at least 1"):
        load_config(conf)


def test_lens_model_reads_the_retention_tables(spark, make_ctx):
    """lens/customer_360.yml's rfm, rfm_history, rfm_migration and cohort_retention entities over the
    stage's tables, as of a run date (later runs in the history are not seen)."""
    from jobs.lens_stage.settings import default_catalog
    from lens.execute import query, warehouse_catalog
    from jobs.core.config import REPO_ROOT

    ctx = make_ctx(D1)
    wh = ctx.warehouse
    wh.overwrite(stream(spark, ROWS), tables.ACTIVITY_STREAM)
    rebuild_daily(spark, wh)
    for day in (D1, D2, D3):
        rfm.run(make_ctx(day), RunParams())
    catalog = warehouse_catalog(default_catalog(), wh.root)
    model = REPO_ROOT / "lens" / "customer_360.yml"

    def ask(run_date, measures, dimensions=(), order=None):
        q = {"measures": list(measures), "dimensions": list(dimensions)}
        if order:
            q["order"] = order
        return [tuple(r) for r in query(spark, model, q, run_date, catalog).collect()]

    # as of D3 gold/rfm is D3's: c4's order of 2026-02-03 counts now; c1 has 2 orders -> 1 repeat of 5
    assert ask(D3, ["rfm.customers", "rfm.repeat_customers", "rfm.repurchase_rate"]) == [(5, 1, 0.2)]
    # as of D2 the history has D1 (3 customers, none repeat) and D2 (4, one repeat), not D3
    assert ask(D2, ["rfm_history.customers", "rfm_history.repurchase_rate"], ["rfm_history.run_date"],
               {"rfm_history.run_date": "asc"}) == [(D1, 3, 0.0), (D2, 4, 0.25)]
    # the migration matrix into D2 (expected rows of test_stage_keeps_history_and_migration_per_run)
    assert sorted(ask(D2, ["rfm_migration.customers"], ["rfm_migration.from_segment", "rfm_migration.to_segment"],
                      )) == sorted([(NEW, "Lost", 1), (NEW, "About to Sleep", 2), ("Lost", "Potential Loyalists", 1),
                                    (NEW, "Potential Loyalists", 1), ("About to Sleep", "Lost", 2)])
    # cohorts as of D3: January (c1, c2, c5, c6; c1 ordered again on 1 February) and February (c4)
    assert ask(D3, ["cohort_retention.cohort_customers", "cohort_retention.active_customers",
                    "cohort_retention.retention_rate"], ["cohort_retention.months_since"],
               {"cohort_retention.months_since": "asc"}) == [(0, 5, 5, 1.0), (1, 4, 1, 0.25)]

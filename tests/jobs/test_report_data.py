"""jobs.report.data: the table aggregates the run report plots, and the earlier runs it reads."""
from __future__ import annotations

import datetime as dt
import json

from chispa import assert_df_equality

from jobs.core import storage, tables
from jobs.report import REPORT_JSON, data, runs_path
from jobs.report.data import cluster_size_buckets, segment_change_counts


def test_cluster_sizes_are_counted_per_bucket(spark):
    # customer -> identifiers: c1 1, c2 2, c3 2, c4 7, c5 51
    sizes = {"c1": 1, "c2": 2, "c3": 2, "c4": 7, "c5": 51}
    rows = [("user_id", f"{c}-{i}", c) for c, n in sizes.items() for i in range(n)]
    identity_map = spark.createDataFrame(rows, "identifier_type string, identifier_value string, customer_id string")
    expected = spark.createDataFrame([("1", 1), ("2", 2), ("6-10", 1), ("51+", 1)], "size string, customers long")
    assert_df_equality(cluster_size_buckets(identity_map), expected, ignore_row_order=True, ignore_nullable=True)


def test_segment_changes_summed_over_segments_on_the_run_dates(spark):
    d1, d2, d3 = dt.date(2026, 2, 1), dt.date(2026, 2, 2), dt.date(2026, 2, 3)
    changes = spark.createDataFrame([
        (d1, "a", "customer", "m1", "add"), (d1, "b", "customer", "m1", "add"),
        (d2, "a", "customer", "m1", "remove"), (d2, "a", "customer", "m2", "add"),
        (d3, "a", "customer", "m3", "add"),  # not one of the run dates asked for
    ], "run_date date, segment string, level string, member_id string, change string")
    expected = spark.createDataFrame([("2026-02-01", "add", 2), ("2026-02-02", "remove", 1), ("2026-02-02", "add", 1)],
                                     "run_date string, change string, members long")
    assert_df_equality(segment_change_counts(changes, ["2026-02-01", "2026-02-02"]), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_chart_data_and_earlier_reports(spark, make_ctx):
    ctx = make_ctx("2026-02-03")
    wh = ctx.warehouse
    assert data.chart_data(spark, wh, ["2026-02-03"]) == {}, "no table, no data"
    wh.overwrite(spark.createDataFrame(
        [("user_id", "u1", "c1", "k1"), ("anonymous_id", "a1", "c1", "k1"), ("user_id", "u2", "c2", "k2")],
        "identifier_type string, identifier_value string, customer_id string, component string"), tables.IDENTITY_MAP)
    wh.overwrite(spark.createDataFrame(
        [("c1", "Champions"), ("c2", "Lost"), ("c3", "Lost")], "customer_id string, rfm_segment string"), tables.RFM)
    assert data.chart_data(spark, wh, ["2026-02-03"]) == {
        "cluster_sizes": {"1": 1, "2": 1}, "rfm_segments": {"Lost": 2, "Champions": 1}}
    d2, d3 = dt.date(2026, 2, 2), dt.date(2026, 2, 3)
    wh.overwrite(spark.createDataFrame([
        (d2, None, "(not scored)", "Lost", 3),
        (d3, d2, "Lost", "Lost", 2), (d3, d2, "Lost", "Champions", 1), (d3, d2, "(not scored)", "Lost", 1),
    ], "run_date date, from_run_date date, from_segment string, to_segment string, customers long"),
        tables.RFM_MIGRATION)
    # cohorts of the last 12 months up to February 2026: from March 2025 (February 2025 is left out)
    wh.overwrite(spark.createDataFrame([
        (dt.date(2025, 2, 1), 0, 9, 9), (dt.date(2025, 3, 1), 1, 2, 1), (dt.date(2025, 3, 1), 0, 2, 2),
        (dt.date(2026, 2, 1), 0, 1, 1),
    ], "cohort_month date, months_since int, cohort_customers long, active_customers long"), tables.COHORT_RETENTION)
    charts = data.chart_data(spark, wh, ["2026-02-02", "2026-02-03"])
    assert charts["rfm_migration"] == {"from_run_date": "2026-02-02",
                                       "moves": {"(not scored)": {"Lost": 1}, "Lost": {"Champions": 1, "Lost": 2}}}
    assert charts["cohort_retention"] == {"2025-03": {"customers": 2, "active": [2, 1]},
                                          "2026-02": {"customers": 1, "active": [1]}}
    # earlier runs: the last HISTORY_RUNS - 1 before the run date, oldest first; later ones and
    # folders that are not run dates are left out
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(33)]  # up to 2026-02-02
    for day in [*days, dt.date(2026, 2, 3), dt.date(2026, 2, 4), dt.date(2026, 2, 20)]:
        storage.write_text(spark, runs_path(wh, str(day), REPORT_JSON), json.dumps({"run_date": str(day)}))
    storage.write_text(spark, wh.path("_runs/latest/report.json"), "{}")
    found = [r["run_date"] for r in data.earlier_reports(spark, wh, dt.date(2026, 2, 3))]
    assert found == [str(d) for d in days[-(data.HISTORY_RUNS - 1):]]

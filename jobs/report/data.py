"""What the run report page needs beyond the stages' own metrics: a few small aggregates of the
tables (each at most a few dozen rows reach the driver) and the reports of earlier runs.

Runs are `_runs/<run date>/report.json` under the warehouse, read through jobs.core.storage (so a
warehouse on object storage works too); the page shows the last HISTORY_RUNS of them.
"""
from __future__ import annotations

import datetime as dt
import json

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import storage, tables
from jobs.report import REPORT_JSON, RUNS_FOLDER, runs_path
from jobs.rfm.stage import segment_sizes

HISTORY_RUNS = 14
# The cohort table shows the cohorts of the last this-many months (so at most 12 x 12 cells).
COHORT_MONTHS = 12
# Identifiers per customer, as (label, lowest, highest or None for no bound).
CLUSTER_BUCKETS = (("1", 1, 1), ("2", 2, 2), ("3", 3, 3), ("4", 4, 4), ("5", 5, 5), ("6-10", 6, 10),
                   ("11-20", 11, 20), ("21-50", 21, 50), ("51+", 51, None))


def cluster_size_buckets(identity_map: DataFrame) -> DataFrame:
    """[size, customers]: customers by how many identifiers stitch into them (CLUSTER_BUCKETS labels)."""
    sizes = identity_map.groupBy("customer_id").agg(F.count(F.lit(1)).alias("_n"))
    label = None
    for name, low, high in CLUSTER_BUCKETS:
        test = (F.col("_n") >= low) if high is None else F.col("_n").between(low, high)
        label = F.when(test, F.lit(name)) if label is None else label.when(test, F.lit(name))
    return sizes.groupBy(label.alias("size")).agg(F.count(F.lit(1)).alias("customers"))


def segment_change_counts(changes: DataFrame, run_dates: list[str]) -> DataFrame:
    """[run_date, change, members] of gold/segment_changes on these run dates, summed over segments."""
    return (changes.filter(F.col("run_date").cast("string").isin(*run_dates))
            .groupBy(F.col("run_date").cast("string").alias("run_date"), "change")
            .agg(F.count(F.lit(1)).alias("members")))


def chart_data(spark: SparkSession, wh: tables.Warehouse, run_dates: list[str]) -> dict:
    """The tables' aggregates the page plots: cluster sizes, RFM segment sizes, segment adds and
    removes on `run_dates`, and for the last of them (this run) the RFM migration matrix and the
    cohort retention table. A table that does not exist, or has no rows, gives no data."""
    data: dict = {}
    if wh.exists(spark, tables.IDENTITY_MAP):
        found = {r["size"]: r["customers"] for r in cluster_size_buckets(wh.read(spark, tables.IDENTITY_MAP)).collect()}
        data["cluster_sizes"] = {name: found[name] for name, _, _ in CLUSTER_BUCKETS if name in found}
    if wh.exists(spark, tables.RFM):
        data["rfm_segments"] = segment_sizes(wh.read(spark, tables.RFM))
    if wh.exists(spark, tables.SEGMENT_CHANGES):
        rows = segment_change_counts(wh.read(spark, tables.SEGMENT_CHANGES), run_dates).collect()
        by_date: dict[str, dict[str, int]] = {}
        for r in sorted(rows, key=lambda r: (r["run_date"], r["change"])):
            by_date.setdefault(r["run_date"], {})[r["change"]] = r["members"]
        data["segment_changes"] = by_date
    run_date = dt.date.fromisoformat(run_dates[-1]) if run_dates else None
    if run_date and wh.exists(spark, tables.RFM_MIGRATION):
        if matrix := migration_matrix(wh.read(spark, tables.RFM_MIGRATION), run_date):
            data["rfm_migration"] = matrix
    if run_date and wh.exists(spark, tables.COHORT_RETENTION):
        if cohorts := cohort_table(wh.read(spark, tables.COHORT_RETENTION), run_date):
            data["cohort_retention"] = cohorts
    return data


def migration_matrix(migration: DataFrame, run_date: dt.date) -> dict:
    """{from_run_date, moves: {from_segment: {to_segment: customers}}} of gold/rfm_migration's run
    (at most 12 x 12 rows reach the driver); {} when the run has none."""
    rows = migration.filter(F.col("run_date") == F.lit(run_date)).collect()
    moves: dict[str, dict[str, int]] = {}
    for r in sorted(rows, key=lambda r: (r["from_segment"], r["to_segment"])):
        moves.setdefault(r["from_segment"], {})[r["to_segment"]] = r["customers"]
    return {"from_run_date": str(rows[0]["from_run_date"]) if rows[0]["from_run_date"] else None,
            "moves": moves} if rows else {}


def cohort_table(cohorts: DataFrame, run_date: dt.date) -> dict:
    """{cohort month: {customers, active: [active customers per month since, from 0]}} for the
    cohorts of the last COHORT_MONTHS months up to the run date's."""
    first = F.add_months(F.trunc(F.lit(run_date), "month"), 1 - COHORT_MONTHS)
    table: dict[str, dict] = {}
    for r in sorted(cohorts.filter(F.col("cohort_month") >= first).collect(),
                    key=lambda r: (r["cohort_month"], r["months_since"])):
        cohort = table.setdefault(str(r["cohort_month"])[:7], {"customers": r["cohort_customers"], "active": []})
        cohort["active"].append(r["active_customers"])
    return table


def earlier_reports(spark: SparkSession, wh: tables.Warehouse, run_date: dt.date) -> list[dict]:
    """Reports of the runs before `run_date` (at most HISTORY_RUNS - 1, oldest first)."""
    dates = [d for d in storage.folder_names(spark, wh.path(RUNS_FOLDER)) if _is_date(d) and d < str(run_date)]
    found = []
    for d in dates[-(HISTORY_RUNS - 1):]:
        text = storage.read_text(spark, runs_path(wh, d, REPORT_JSON))
        if text:
            found.append(json.loads(text))
    return found


def _is_date(name: str) -> bool:
    try:
        dt.date.fromisoformat(name)
    except ValueError:
        return False
    return True

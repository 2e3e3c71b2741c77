"""Retention outputs the rfm stage keeps beside gold/rfm (docs/rfm.md, "Retention"):

- gold/rfm_history: gold/rfm of every run date, one partition per run (the last
  `rfm.history_days` days of runs are kept), so a customer's segment can be followed over runs;
- gold/rfm_migration: customers moving from each segment of the previous run in the history to each
  segment of this run (the RFM migration matrix), one partition per run date;
- gold/cohort_retention: customers by the month of their first order placed (the cohort) and months
  since, with how many of them placed an order in that month, as of the run date.

The repurchase rate (customers with more than one order / customers with an order) is a measure of
gold/rfm: `repeat_customers` here, `rfm.repurchase_rate` in the lens model.

Pure transformations; the stage (jobs.rfm.stage) reads and writes the tables.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.metrics import ORDER_PLACED

# A customer who has no row in the other run's gold/rfm: new since the previous run (first order, or
# a customer id a merge made), or gone from this one (merged into another customer).
NOT_SCORED = "(not scored)"
MIGRATION_COLUMNS = SPECS[tables.RFM_MIGRATION].columns
# A repeat customer placed more than one distinct order (gold/rfm.frequency).
REPEAT_FREQUENCY = 2


def rfm_migration(previous: DataFrame, current: DataFrame, previous_date: dt.date | None,
                  run_date: dt.date) -> DataFrame:
    """Customers per (from_segment, to_segment): `previous` is gold/rfm_history's rows of the
    previous run (empty when there is none), `current` this run's gold/rfm. A customer on one side
    only moves from or to NOT_SCORED."""
    before = previous.select("customer_id", F.col("rfm_segment").alias("from_segment"))
    after = current.select("customer_id", F.col("rfm_segment").alias("to_segment"))
    return (
        before.join(after, on="customer_id", how="full_outer")
        .groupBy(F.coalesce("from_segment", F.lit(NOT_SCORED)).alias("from_segment"),
                 F.coalesce("to_segment", F.lit(NOT_SCORED)).alias("to_segment"))
        .agg(F.count(F.lit(1)).alias("customers"))
        .select(F.lit(run_date).alias("run_date"), F.lit(previous_date).cast("date").alias("from_run_date"),
                "from_segment", "to_segment", "customers")
        .select(*MIGRATION_COLUMNS)
    )


def cohort_retention(activity_daily: DataFrame, run_date: dt.date) -> DataFrame:
    """One row per cohort month and month since it, up to the run date's month (months without an
    active customer included, with 0): the cohort's customers, those of them with an order placed in
    that month, and their share. Read from silver/activity_daily's order_placed day rows dated on or
    before the run date; the run date's own month counts its days so far."""
    months = (
        activity_daily.filter((F.col("activity") == ORDER_PLACED) & (F.col("activity_date") <= F.lit(run_date)))
        .select("entity_id", F.trunc("activity_date", "month").alias("month"))
        .distinct()
    )
    firsts = months.groupBy("entity_id").agg(F.min("month").alias("cohort_month"))
    since = F.months_between("month", "cohort_month").cast("int")
    active = (
        months.join(firsts, on="entity_id", how="inner")
        .groupBy("cohort_month", since.alias("months_since"))
        .agg(F.count(F.lit(1)).alias("active_customers"))
    )
    last = F.months_between(F.trunc(F.lit(run_date), "month"), "cohort_month").cast("int")
    grid = (
        firsts.groupBy("cohort_month").agg(F.count(F.lit(1)).alias("cohort_customers"))
        .select("cohort_month", "cohort_customers", F.explode(F.sequence(F.lit(0), last)).alias("months_since"))
    )
    return (
        grid.join(active, on=["cohort_month", "months_since"], how="left")
        .withColumn("active_customers", F.coalesce("active_customers", F.lit(0)).cast("long"))
        .withColumn("retention_rate", F.col("active_customers") / F.col("cohort_customers"))
        .withColumn("run_date", F.lit(run_date))
        .select(*[F.col(f.name).cast(f.dataType) for f in SPECS[tables.COHORT_RETENTION].schema.fields])
    )


def repeat_customers(rfm: DataFrame) -> DataFrame:
    """[customers, repeat_customers] of gold/rfm: one row."""
    return rfm.agg(F.count(F.lit(1)).alias("customers"),
                   F.count(F.when(F.col("frequency") >= REPEAT_FREQUENCY, True)).alias("repeat_customers"))

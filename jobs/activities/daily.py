"""silver/activity_daily: one row per customer, day and activity, kept in step with the stream.

rfm and the traits read these small aggregates instead of the activity stream, so a night's cost
does not grow with the years of history behind each customer: recency, "last month" and the other
windows as of the run date are re-derived from day rows (docs/activities.md).

A day row holds what the measures need and can add up again exactly: the number of rows, the first
and last activity_ts, exact decimal sums (jobs.metrics.EXACT_DECIMAL) and min/max of revenue_impact
and of the order value slot, and, for order activities, the day's distinct order numbers (so a
distinct count over any window is the size of the union of its days' lists: an order whose lines
fall on two days counts once).

Kept in step by the activities stage: a full build writes it from the whole stream; a night's MERGE
rebuilds the day rows of every customer the stream MERGE involved, from those customers' rows as
the MERGE leaves them (computed before it, so the stream is not read again). The table records the stream
version it was built from (STREAM_VERSION_PROPERTY), so a run that died between the two commits, or
a stream changed by anything else, is followed by a full rebuild of this table.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.metrics import (
    ORDER_ACTIVITIES,
    ORDER_VALUE_SLOT,
    exact_decimal_sum,
    numeric,
    order_no,
)

DAILY_COLUMNS = SPECS[tables.ACTIVITY_DAILY].columns
DAILY_KEYS = SPECS[tables.ACTIVITY_DAILY].keys
# Table property: the silver/activity_stream version this table was last brought in step with.
STREAM_VERSION_PROPERTY = "c360.activityStreamVersion"


def build_daily(stream: DataFrame) -> DataFrame:
    """Day rows of the attributed activities of `stream` (all of it, or some customers' rows)."""
    is_order = F.col("activity").isin(*ORDER_ACTIVITIES)
    revenue, order_value = numeric("revenue_impact"), numeric(ORDER_VALUE_SLOT)
    return (
        stream.filter(F.col("entity_id").isNotNull())
        .groupBy("entity_id", F.to_date("activity_ts").alias("activity_date"), "activity")
        .agg(
            F.count(F.lit(1)).alias("activities"),
            F.min("activity_ts").alias("first_ts"),
            F.max("activity_ts").alias("last_ts"),
            exact_decimal_sum(revenue).alias("revenue_sum"),
            F.min(revenue).alias("revenue_min"),
            F.max(revenue).alias("revenue_max"),
            exact_decimal_sum(order_value).alias("order_value_sum"),
            F.min(order_value).alias("order_value_min"),
            F.max(order_value).alias("order_value_max"),
            F.array_sort(F.collect_set(F.when(is_order, order_no()))).alias("_numbers"),
        )
        # null for the other activities, as the spec says (collect_set gives them an empty list)
        .withColumn("order_numbers", F.when(F.col("activity").isin(*ORDER_ACTIVITIES), F.col("_numbers")))
        # the spec's types exactly (a collected list's elements would be stored as never null)
        .select(*[F.col(f.name).cast(f.dataType) for f in SPECS[tables.ACTIVITY_DAILY].schema.fields])
    )


def stream_version_built_from(spark, wh: tables.Warehouse) -> int | None:
    """The stream version silver/activity_daily was last brought in step with (None: no table)."""
    if not wh.exists(spark, tables.ACTIVITY_DAILY):
        return None
    value = (wh.delta(spark, tables.ACTIVITY_DAILY).detail().first()["properties"] or {}).get(STREAM_VERSION_PROPERTY)
    return int(value) if value is not None else None


def _stamp(spark, wh: tables.Warehouse, stream_version: int) -> None:
    # after the table's own commit: a run that dies before this leaves an old stamp, which only
    # costs the next run a rebuild
    if stream_version_built_from(spark, wh) != stream_version:
        path = wh.path(tables.ACTIVITY_DAILY)
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{STREAM_VERSION_PROPERTY}' = '{stream_version}')")


def rebuild_daily(spark, wh: tables.Warehouse) -> dict:
    """Write silver/activity_daily from the whole stream."""
    stream_version = wh.version(spark, tables.ACTIVITY_STREAM)
    written = wh.overwrite_counted(spark, build_daily(wh.read(spark, tables.ACTIVITY_STREAM)), tables.ACTIVITY_DAILY)
    wh.ensure_properties(spark, tables.ACTIVITY_DAILY)
    _stamp(spark, wh, stream_version)
    return {"daily": "rebuilt", "daily_rows": written}


def refresh_source(spark, wh: tables.Warehouse, rows: DataFrame, entity_ids: DataFrame) -> DataFrame:
    """The change set (tables.change_set) that brings the day rows of `entity_ids` to those of `rows`,
    which must hold every stream row of those customers (and may hold other customers' rows).
    `entity_ids`: one row per customer, no nulls; the caller marks it for broadcast when it is small
    (jobs.core.session.broadcast_if_small), so the day rows are probed as they are read."""
    customers = entity_ids.select("entity_id")
    wanted = build_daily(rows.join(customers, on="entity_id", how="left_semi"))
    current = wh.read(spark, tables.ACTIVITY_DAILY).join(customers, on="entity_id", how="left_semi")
    return tables.change_set(current, wanted, tables.ACTIVITY_DAILY)


def refresh_daily(spark, wh: tables.Warehouse, changes: DataFrame) -> dict:
    """Apply `changes` (refresh_source, after the stream's changes committed) to the day rows; other
    customers' rows and files are not touched."""
    version = wh.version(spark, tables.ACTIVITY_DAILY)
    stream_version = wh.version(spark, tables.ACTIVITY_STREAM)
    wh.apply_changes(spark, tables.ACTIVITY_DAILY, changes)
    _stamp(spark, wh, stream_version)
    return {"daily": "merge", "daily_rows": sum(wh.change_counts_since(spark, tables.ACTIVITY_DAILY, version).values())}

"""The segments' state tables: membership stints, daily changes, the export log, the runs.

gold/segment_membership (segment x member x stint), gold/segment_changes (run x segment x member),
gold/segment_exports (run x exported segment x id) and gold/segment_runs (run x segment; its
max(run_date) is the last applied run). Every log table is replaced from a run date on, so re-running
a date rewrites it; `rewind` undoes the membership effects of runs on or after a date (--full).
"""
from __future__ import annotations

import datetime as dt
import functools

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.segments.settings import SegmentSettings

# gold/segment_changes.change and gold/segment_exports.change
ADD = "add"
REMOVE = "remove"

# The four tables' schemas, keys and partitioning are their specs in jobs.core.catalog.
STATE_TABLES = (tables.SEGMENT_MEMBERSHIP, tables.SEGMENT_CHANGES, tables.SEGMENT_EXPORTS, tables.SEGMENT_RUNS)
EXPORT_LOG_SCHEMA = SPECS[tables.SEGMENT_EXPORTS].schema
RUNS_SCHEMA = SPECS[tables.SEGMENT_RUNS].schema


def last_applied(spark: SparkSession, wh: tables.Warehouse) -> dt.date | None:
    return wh.read(spark, tables.SEGMENT_RUNS).agg(F.max("run_date")).first()[0]


def rewind(spark: SparkSession, wh: tables.Warehouse, run_date: dt.date) -> None:
    """Undo membership effects of runs on or after `run_date` (the log tables are replaced on write)."""
    membership = wh.delta(spark, tables.SEGMENT_MEMBERSHIP)
    membership.delete(F.col("entered_on") >= F.lit(run_date))
    membership.update(F.col("exited_on") >= F.lit(run_date), {"exited_on": F.lit(None).cast(DateType())})


def replace_from(wh: tables.Warehouse, df: DataFrame, table: str, run_date: dt.date) -> None:
    """Replace every row of `table` dated `run_date` or later with `df` (all dated `run_date`)."""
    schema = SPECS[table].schema
    wh.replace_where(df.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields]), table,
                     f"run_date >= '{run_date.isoformat()}'")


def apply_changes(spark: SparkSession, wh: tables.Warehouse, changes: DataFrame, run_date: dt.date) -> None:
    """MERGE: a remove closes the member's open stint; an add opens a new stint."""
    on = (
        "t.segment = s.segment AND t.level = s.level AND t.member_id = s.member_id "
        f"AND t.exited_on IS NULL AND s.change = '{REMOVE}'"
    )
    (
        wh.delta(spark, tables.SEGMENT_MEMBERSHIP).alias("t")
        .merge(changes.alias("s"), on)
        .whenMatchedUpdate(set={"exited_on": F.lit(run_date)})
        .whenNotMatchedInsert(condition=f"s.change = '{ADD}'", values={
            "segment": "s.segment", "level": "s.level", "member_id": "s.member_id",
            "entered_on": F.lit(run_date), "exited_on": F.lit(None).cast(DateType()),
        })
        .execute()
    )


def run_counts(spark: SparkSession, wh: tables.Warehouse, names: list[str], run_date: dt.date,
               extra: DataFrame | None) -> dict[tuple[str, str], int]:
    """{(segment, metric): n} for members, adds, removes, export_adds, export_removes (+ extra rows).

    One small query: a handful of rows per segment.
    """
    today = F.col("run_date") == F.lit(run_date)
    count = F.count(F.lit(1)).alias("n")
    parts = [
        wh.read(spark, tables.SEGMENT_MEMBERSHIP).filter(F.col("exited_on").isNull() & F.col("segment").isin(*names))
        .groupBy("segment", F.lit("members").alias("metric")).agg(count),
        wh.read(spark, tables.SEGMENT_CHANGES).filter(today)
        .groupBy("segment", F.concat("change", F.lit("s")).alias("metric")).agg(count),
        wh.read(spark, tables.SEGMENT_EXPORTS).filter(today)
        .groupBy("segment", F.concat(F.lit("export_"), "change", F.lit("s")).alias("metric")).agg(count),
    ]
    if extra is not None:
        parts.append(extra.select("segment", "metric", F.col("n").cast(LongType()).alias("n")))
    rows = functools.reduce(DataFrame.unionByName, parts).collect()
    return {(r["segment"], r["metric"]): r["n"] for r in rows}


def record_run(spark: SparkSession, wh: tables.Warehouse, settings: SegmentSettings, run_date: dt.date,
               files: dict[str, str], skipped: DataFrame | None) -> list[dict]:
    """gold/segment_runs for `run_date` (written last: it marks the date as applied)."""
    counts = run_counts(spark, wh, [d.name for d in settings.definitions], run_date, skipped)
    export_metrics = RUNS_SCHEMA.fieldNames()[7:]
    rows = []
    for d in settings.definitions:
        row = {"run_date": run_date, "segment": d.name, "level": d.level, "export_file": files.get(d.name)}
        row.update({m: counts.get((d.name, m), 0) for m in ("members", "adds", "removes")})
        row.update({m: counts.get((d.name, m), 0) if d.name in files else None for m in export_metrics})
        rows.append(row)
    replace_from(wh, spark.createDataFrame(rows, RUNS_SCHEMA), tables.SEGMENT_RUNS, run_date)
    return rows

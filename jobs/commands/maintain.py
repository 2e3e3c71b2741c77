"""`c360 maintain`: compact and cluster the warehouse's Delta tables, then remove the files no
version within the retention still reads (issue 14, item 7).

- OPTIMIZE every table c360 writes (jobs.core.catalog, the lens materializations configured, and the
  nightly's records of finished stages and landed input files).
  A table with a column readers filter a customer by (MAINTAIN_ZORDER_COLUMNS, the first it has
  that is not a partition column) is Z-ordered by it, so a read of one customer's rows skips most
  files; the others (bronze, by run_date partitions) are compacted only.
- VACUUM with `maintain.vacuum_retain_hours` (at least Delta's default of 7 days, checked at load):
  a nightly reads earlier versions of the tables it rewrites (stitch's previous identity map, a
  resumed night), and a reader that started before the vacuum keeps the files of its version.

It writes, so it holds the warehouse's lease like a nightly (jobs.core.lock): run it between
nightlies (README, "Maintenance").
"""
from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.completions import COMPLETIONS_TABLE
from jobs.ingest.inputs import INPUT_FILES_TABLE
from jobs.core.context import JobContext, StageResult

# Columns readers look a customer up by, in order of preference (activity stream: entity_id).
MAINTAIN_ZORDER_COLUMNS = ("entity_id", "customer_id")
LENS_TEMPLATE = tables.lens_table("<name>")
# The nightly's own records, a small commit or more every night (the lease table is left alone: its
# row is what the running command holds).
CONTROL_TABLES = (COMPLETIONS_TABLE, INPUT_FILES_TABLE)


def maintained_tables(ctx: JobContext) -> list[str]:
    """The tables c360 writes that exist in this warehouse, catalog order, then the lens tables and
    the control tables."""
    names = [spec.name for spec in SPECS.values() if spec.name != LENS_TEMPLATE]
    names += [tables.lens_table(m.name) for m in ctx.config.lens.materialize]
    names += CONTROL_TABLES
    return [name for name in names if ctx.warehouse.exists(ctx.spark, name)]


def zorder_columns(columns: list[str], partition_columns: list[str]) -> list[str]:
    """The column to Z-order a table by ([] when it has none of MAINTAIN_ZORDER_COLUMNS outside its partitions)."""
    return [c for c in MAINTAIN_ZORDER_COLUMNS if c in columns and c not in partition_columns][:1]


def maintain(ctx: JobContext) -> StageResult:
    spark, wh = ctx.spark, ctx.warehouse
    retain_hours = ctx.config.maintain.vacuum_retain_hours
    result = StageResult(metrics={"tables": 0, "files_removed": 0, "files_added": 0})
    for name in maintained_tables(ctx):
        table = DeltaTable.forPath(spark, wh.path(name))
        partitions = table.detail().select("partitionColumns").first()[0]
        by = zorder_columns(table.toDF().columns, list(partitions))
        optimize = table.optimize()
        done = optimize.executeZOrderBy(*by) if by else optimize.executeCompaction()
        metrics = done.select(F.col("metrics.numFilesRemoved").alias("removed"),
                              F.col("metrics.numFilesAdded").alias("added")).first()
        table.vacuum(float(retain_hours))
        result.metrics["tables"] += 1
        result.metrics["files_removed"] += metrics.removed
        result.metrics["files_added"] += metrics.added
        how = f"z-ordered by {by[0]}" if by else "compacted"
        result.notes.append(f"{name}: {how}, {metrics.removed} files -> {metrics.added}; "
                            f"vacuumed (files unread for {retain_hours} h)")
    return result

"""Table names and Delta I/O. Every table lives at <warehouse>/<layer>/<name>.

The names are jobs.core.table_names (re-exported here: `tables.IDENTITY_MAP`); what each table holds
is its TableSpec in jobs.core.catalog. `Warehouse` reads and writes them: `create` makes a missing
table from its spec, `read(..., missing="error" | "empty")` says what a missing table means.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import storage
from jobs.core.catalog import SPECS, TableSpec, spec_for  # noqa: F401  (SPECS, TableSpec: re-exported)
from jobs.core.errors import InputError
from lens.spark_compat import is_delta_table
from jobs.core.table_names import (  # noqa: F401  (the public names, read as tables.<NAME>)
    ACTIVITY_DAILY,
    ACTIVITY_STREAM,
    BRONZE_CUSTOMERS,
    BRONZE_EVENTS,
    COHORT_RETENTION,
    CUSTOMER_COLUMNS,
    EXPORTS,
    GROUP_MEMBERS,
    GROUP_MEMBERSHIP_HISTORY,
    GROUP_TRAITS,
    GROUPS,
    IDENTITY_ALIAS_EDGES,
    IDENTITY_ALIASES,
    IDENTITY_AUDIT,
    IDENTITY_EDGES,
    IDENTITY_IDENTIFIERS,
    IDENTITY_LINEAGE,
    IDENTITY_MAP,
    LENS_PREFIX,
    PROFILE_CALLS,
    QUARANTINE_EVENTS,
    RFM,
    RFM_HISTORY,
    RFM_MIGRATION,
    SEGMENT_CHANGES,
    SEGMENT_EXPORTS,
    SEGMENT_MEMBERSHIP,
    SEGMENT_RUNS,
    SILVER_CUSTOMERS,
    TRAITS,
    lens_table,
)

# A change set for Warehouse.apply_changes: the table's columns plus CHANGE, what to do with the row.
CHANGE = "_change"
INSERT, UPDATE, DELETE = "insert", "update", "delete"
# The most rows (whole rows of the activity stream or its day rows, up to ~1 KB each) of a MERGE
# source broadcast to the scan of the target: about 0.5 GB on the default 4 GB driver.
MERGE_SOURCE_BROADCAST_MAX = 500_000
# How many of a table's newest commits _commit_metrics reads first: more than one run ever commits to
# one table (a MERGE and an append, a property), so the whole history is read only for a table changed since.
RECENT_COMMITS = 16
MERGE_COUNTS = {INSERT: "numTargetRowsInserted", UPDATE: "numTargetRowsUpdated", DELETE: "numTargetRowsDeleted"}
# What `Warehouse.read` does with a table that does not exist: raise the InputError that names the
# command writing it, or read it as empty with its spec's schema.
Missing = Literal["error", "empty"]


def _as_spec(spec: TableSpec | str) -> TableSpec:
    if isinstance(spec, TableSpec):
        return spec
    found = spec_for(spec)
    if found is None:
        raise ValueError(f"{spec} is not a registered table (jobs.core.catalog.SPECS)")
    return found


def change_set(current: DataFrame, wanted: DataFrame, spec: TableSpec | str) -> DataFrame:
    """What brings `current` (all rows of some keys' owners, e.g. some customers, as the table holds
    them) to `wanted` (the rows they should have): the spec's columns + CHANGE, for
    Warehouse.apply_changes. INSERT: a key only in `wanted`; UPDATE: a key in both whose row
    differs; DELETE: a key only in `current` (its other columns null). Rows that are the same in
    both are left out, so their files are not touched."""
    spec = _as_spec(spec)
    w = wanted.select(*spec.columns, F.lit(True).alias("_wanted")).alias("w")
    c = current.select(*spec.columns, F.lit(True).alias("_current")).alias("c")
    joined = w.join(c, [F.col(f"w.`{k}`").eqNullSafe(F.col(f"c.`{k}`")) for k in spec.keys], "full_outer")
    differs = F.lit(False)
    for column in spec.columns:
        if column not in spec.keys:
            differs = differs | ~F.col(f"w.`{column}`").eqNullSafe(F.col(f"c.`{column}`"))
    change = (
        F.when(F.col("_current").isNull(), F.lit(INSERT))
        .when(F.col("_wanted").isNull(), F.lit(DELETE))
        .when(differs, F.lit(UPDATE))
    )
    return joined.select(
        *[F.when(F.col("_wanted"), F.col(f"w.`{c}`")).otherwise(F.col(f"c.`{c}`")).alias(c) if c in spec.keys
          else F.col(f"w.`{c}`") for c in spec.columns],
        change.alias(CHANGE),
    ).where(F.col(CHANGE).isNotNull())


class Warehouse:
    """Paths and Delta read/write for one warehouse root: a path or a URI (jobs.core.storage)."""

    def __init__(self, root: str | Path):
        self.root = storage.normalized(str(root))

    @property
    def local_dir(self) -> Path | None:
        """The warehouse as a folder on the driver's disk; None for hdfs://, s3a://, ..."""
        return storage.local_dir(self.root)

    def path(self, table: str) -> str:
        return storage.join(self.root, table)

    def exists(self, spark: SparkSession, table: str) -> bool:
        return is_delta_table(spark, self.path(table))

    def read(self, spark: SparkSession, table: str, *, missing: Missing = "error") -> DataFrame:
        """The table; when it does not exist, per `missing`: "error" raises an InputError naming the
        command that writes it (its spec's made_by), "empty" returns no rows with the spec's schema."""
        if missing not in ("error", "empty"):
            raise ValueError(f"missing must be 'error' or 'empty', got {missing!r}")
        try:
            return spark.read.format("delta").load(self.path(table))
        except AnalysisException:
            if self.exists(spark, table):
                raise
        spec = spec_for(table)
        if missing == "empty":
            if spec is None or spec.schema is None:
                raise ValueError(f"{table} has no registered schema (jobs.core.catalog): it cannot be read as empty")
            return spark.createDataFrame([], spec.schema)
        run_first = f": run `c360 {spec.made_by}` first" if spec is not None and spec.made_by else ""
        raise InputError(f"table {self.path(table)} does not exist{run_first}")

    def read_version(self, spark: SparkSession, table: str, version: int) -> DataFrame:
        """The table as of a Delta version (time travel): what it was before a later commit."""
        return spark.read.format("delta").option("versionAsOf", version).load(self.path(table))

    def create(self, spark: SparkSession, spec: TableSpec | str) -> bool:
        """Create the table from its spec (a TableSpec or a registered name) unless it exists: its
        schema, partition columns and table properties are set in the creating commit. Returns
        whether it created the table."""
        spec = _as_spec(spec)
        if spec.schema is None:
            raise ValueError(f"{spec.name}: its columns are decided at run time, so its first write creates it")
        if self.exists(spark, spec.name):
            return False
        builder = DeltaTable.createIfNotExists(spark).location(self.path(spec.name)).addColumns(spec.schema)
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        for key, value in spec.properties.items():
            builder = builder.property(key, value)
        builder.execute()
        return True

    def ensure_properties(self, spark: SparkSession, spec: TableSpec | str) -> list[str]:
        """Give an existing table the properties its spec lists and it lacks (a table written before
        they were in the spec, or first written by an overwrite, which sets none); returns the keys
        set. One ALTER TABLE commit when any is missing, none otherwise."""
        spec = _as_spec(spec)
        if not spec.properties or not self.exists(spark, spec.name):
            return []
        current = self.delta(spark, spec.name).detail().first()["properties"] or {}
        missing = {key: value for key, value in spec.properties.items() if current.get(key) != value}
        if missing:
            assignments = ", ".join(f"'{key}' = '{value}'" for key, value in sorted(missing.items()))
            spark.sql(f"ALTER TABLE delta.`{self.path(spec.name)}` SET TBLPROPERTIES ({assignments})")
        return sorted(missing)

    def add_missing_columns(self, spark: SparkSession, spec: TableSpec | str) -> list[str]:
        """Give an existing table the columns its spec has and it lacks (a table written by an
        earlier c360), at its end and null in the rows already there; returns their names. One
        ALTER TABLE commit when any is missing, none otherwise."""
        spec = _as_spec(spec)
        if spec.schema is None or not self.exists(spark, spec.name):
            return []
        present = set(spark.read.format("delta").load(self.path(spec.name)).columns)
        missing = [f for f in spec.schema.fields if f.name not in present]
        if missing:
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
            spark.sql(f"ALTER TABLE delta.`{self.path(spec.name)}` ADD COLUMNS ({columns})")
        return [f.name for f in missing]

    def delta(self, spark: SparkSession, table: str) -> DeltaTable:
        return DeltaTable.forPath(spark, self.path(table))

    def overwrite(self, df: DataFrame, table: str, *, partition_by: list[str] | None = None) -> None:
        writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(self.path(table))

    def overwrite_counted(self, spark: SparkSession, df: DataFrame, table: str) -> int:
        """overwrite(df, table); returns the rows written, as the commit recorded them (the table is
        not read again to count them)."""
        version = self.version(spark, table)
        self.overwrite(df, table)
        return self.operation_metrics_since(spark, table, version).get("numOutputRows", 0)

    def append(self, df: DataFrame, table: str, *, partition_by: list[str] | None = None,
               options: dict[str, str] | None = None) -> None:
        """Append rows. Table properties belong to the table's spec (`create`), not to a write;
        `options` are the write's own (e.g. mergeSchema)."""
        writer = df.write.format("delta").mode("append").options(**(options or {}))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(self.path(table))

    def apply_changes(self, spark: SparkSession, table: TableSpec | str, changes: DataFrame) -> None:
        """Bring the rows of `changes` (the table's columns + CHANGE, computed already: counted here)
        into the table by key: INSERT rows (keys not in the table) are appended, UPDATE and DELETE
        rows are applied by a MERGE with matched clauses only. Rows and files of other keys are
        not touched.

        Why two commits and not one upserting MERGE: with inserts in it Delta joins source and
        target with a left outer join, which cannot broadcast the source, so each of its passes
        shuffles every row of every touched file, and on a table a night touches all over (new
        events land on customers everywhere) that is the whole table (bench scale L: 1.1 GB a
        pass). A matched-only MERGE joins inner, and a source of at most MERGE_SOURCE_BROADCAST_MAX
        rows is broadcast to the target's scan. A run that dies between the two commits is
        completed by the next one: the change set is recomputed against the table."""
        spec = _as_spec(table)
        inserts = changes.where(F.col(CHANGE) == INSERT).select(*spec.columns)
        others = changes.where(F.col(CHANGE) != INSERT)
        count = others.count()
        if count:
            on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in spec.keys)
            assignments = {c: f"s.`{c}`" for c in spec.columns}
            (
                self.delta(spark, spec.name).alias("t")
                .merge((F.broadcast(others) if count <= MERGE_SOURCE_BROADCAST_MAX else others).alias("s"), on)
                .whenMatchedDelete(condition=f"s.{CHANGE} = '{DELETE}'")
                .whenMatchedUpdate(condition=f"s.{CHANGE} = '{UPDATE}'", set=assignments)
                .execute()
            )
        if not inserts.isEmpty():
            self.append(inserts, spec.name)

    def change_counts_since(self, spark: SparkSession, table: str, version: int) -> dict[str, int]:
        """Rows inserted, updated and deleted (INSERT, UPDATE, DELETE) by the MERGEs and appends
        committed after `version` (apply_changes), as Delta recorded them."""
        counts = dict.fromkeys((INSERT, UPDATE, DELETE), 0)
        for operation, metrics in self._commit_metrics(spark, table, version):
            if operation == "MERGE":
                for change in counts:
                    counts[change] += metrics.get(MERGE_COUNTS[change], 0)
            elif operation == "WRITE":
                counts[INSERT] += metrics.get("numOutputRows", 0)
        return counts

    def replace_where(self, df: DataFrame, table: str, predicate: str) -> None:
        """Atomically replace the rows matching `predicate` with `df` (whose rows must all match it)."""
        df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).save(self.path(table))

    def version(self, spark: SparkSession, table: str) -> int:
        """Current Delta version, -1 for a table that does not exist yet."""
        if not self.exists(spark, table):
            return -1
        return self.delta(spark, table).history(1).first()["version"]

    def _commit_metrics(self, spark: SparkSession, table: str, version: int) -> list[tuple[str, dict[str, int]]]:
        """(operation, row counts) of each commit after `version`, as Delta recorded them.

        Delta's history reads one commit file per entry, so only the newest RECENT_COMMITS are read
        (a table written every night for years has a file per night); all of them only when the
        commits after `version` are more than that."""
        delta = self.delta(spark, table)
        history = delta.history(RECENT_COMMITS).select("version", "operation", "operationMetrics").collect()
        if len(history) == RECENT_COMMITS and min(row["version"] for row in history) > version + 1:
            history = delta.history().select("version", "operation", "operationMetrics").collect()
        return [  # one row per commit of this run: a handful
            (row["operation"], {k: int(v) for k, v in (row["operationMetrics"] or {}).items() if str(v).isdigit()})
            for row in history if row["version"] > version
        ]

    def operation_metrics_since(self, spark: SparkSession, table: str, version: int) -> dict[str, int]:
        """Row counts Delta recorded for commits after `version` (no extra pass over the data).

        A write of zero rows may not commit at all, so a caller that compares versions gets {} then.
        """
        totals: dict[str, int] = {}
        for _, metrics in self._commit_metrics(spark, table, version):
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0) + value
        return totals

    def row_count(self, spark: SparkSession, table: str) -> int:
        return self.read(spark, table).count() if self.exists(spark, table) else 0

"""Table catalogue and Delta I/O. Every table lives at <warehouse>/<layer>/<name>."""
from __future__ import annotations

from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from jobs.errors import InputError

# The public table names (interface §4). Downstream users depend on exactly these paths.
BRONZE_EVENTS = "bronze/events"
BRONZE_CUSTOMERS = "bronze/customers"
QUARANTINE_EVENTS = "quarantine/events"
IDENTITY_MAP = "gold/identity_map"
IDENTITY_AUDIT = "gold/identity_audit"
IDENTITY_LINEAGE = "gold/identity_lineage"
# Identity graph state (jobs.stitch): evidence per identifier and per identifier pair.
IDENTITY_IDENTIFIERS = "silver/identity_identifiers"
IDENTITY_EDGES = "silver/identity_edges"
# Alias calls (jobs.identity_evidence): the claims as evidence, and the edges they resolve to now.
IDENTITY_ALIASES = "silver/identity_aliases"
IDENTITY_ALIAS_EDGES = "silver/identity_alias_edges"
SILVER_CUSTOMERS = "silver/customers"
ACTIVITY_STREAM = "silver/activity_stream"
GROUPS = "gold/groups"
GROUP_MEMBERS = "gold/group_members"
RFM = "gold/rfm"
TRAITS = "gold/traits"
SEGMENT_MEMBERSHIP = "gold/segment_membership"
SEGMENT_CHANGES = "gold/segment_changes"
# Segments stage state (jobs.segments): one row per run × segment (marks a run date applied), and
# the log of what each export added and removed; export files go to <warehouse>/exports/<segment>/.
SEGMENT_RUNS = "gold/segment_runs"
SEGMENT_EXPORTS = "gold/segment_exports"
EXPORTS = "exports"
# Materialized lens queries (jobs.lens_materialize): gold/lens_<name>.
LENS_PREFIX = "gold/lens_"


def lens_table(name: str) -> str:
    return f"{LENS_PREFIX}{name}"


class Warehouse:
    """Paths and Delta read/write for one warehouse root."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, table: str) -> str:
        return str(self.root / table)

    def exists(self, spark: SparkSession, table: str) -> bool:
        return DeltaTable.isDeltaTable(spark, self.path(table))

    def read(self, spark: SparkSession, table: str) -> DataFrame:
        return spark.read.format("delta").load(self.path(table))

    def read_required(self, spark: SparkSession, table: str, *, made_by: str) -> DataFrame:
        """Read a stage's input; a missing table is an InputError naming the command that writes it."""
        if not self.exists(spark, table):
            raise InputError(f"table {self.path(table)} does not exist: run `c360 {made_by}` first")
        return self.read(spark, table)

    def delta(self, spark: SparkSession, table: str) -> DeltaTable:
        return DeltaTable.forPath(spark, self.path(table))

    def overwrite(self, df: DataFrame, table: str, *, partition_by: list[str] | None = None) -> None:
        writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(self.path(table))

    def append(self, df: DataFrame, table: str, *, partition_by: list[str] | None = None,
               properties: dict[str, str] | None = None) -> None:
        """Append rows; `properties` (delta.* table properties) take effect when the table is created."""
        writer = df.write.format("delta").mode("append").options(**(properties or {}))
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(self.path(table))

    def replace_where(self, df: DataFrame, table: str, predicate: str) -> None:
        """Atomically replace the rows matching `predicate` with `df` (whose rows must all match it)."""
        df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).save(self.path(table))

    def ensure(self, spark: SparkSession, table: str, schema, *, partition_by: list[str] | None = None) -> None:
        """Create an empty table with `schema` if it does not exist yet."""
        if not self.exists(spark, table):
            self.overwrite(spark.createDataFrame([], schema), table, partition_by=partition_by)

    def version(self, spark: SparkSession, table: str) -> int:
        """Current Delta version, -1 for a table that does not exist yet."""
        if not self.exists(spark, table):
            return -1
        return self.delta(spark, table).history(1).first()["version"]

    def operation_metrics_since(self, spark: SparkSession, table: str, version: int) -> dict[str, int]:
        """Row counts Delta recorded for commits after `version` (no extra pass over the data).

        A write of zero rows may not commit at all, so a caller that compares versions gets {} then.
        """
        history = self.delta(spark, table).history().filter(f"version > {version}").select("operationMetrics")
        totals: dict[str, int] = {}
        for row in history.collect():  # one row per commit of this run: a handful
            for key, value in (row["operationMetrics"] or {}).items():
                if str(value).isdigit():
                    totals[key] = totals.get(key, 0) + int(value)
        return totals

    def row_count(self, spark: SparkSession, table: str) -> int:
        return self.read(spark, table).count() if self.exists(spark, table) else 0

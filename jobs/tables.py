"""Table catalogue and Delta I/O. Every table lives at <warehouse>/<layer>/<name>."""
from __future__ import annotations

from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

# The public table names (interface §4). Downstream users depend on exactly these paths.
BRONZE_EVENTS = "bronze/events"
BRONZE_CUSTOMERS = "bronze/customers"
QUARANTINE_EVENTS = "quarantine/events"
IDENTITY_MAP = "gold/identity_map"
IDENTITY_AUDIT = "gold/identity_audit"
IDENTITY_LINEAGE = "gold/identity_lineage"
SILVER_CUSTOMERS = "silver/customers"
ACTIVITY_STREAM = "silver/activity_stream"
GROUPS = "gold/groups"
GROUP_MEMBERS = "gold/group_members"
RFM = "gold/rfm"
TRAITS = "gold/traits"
SEGMENT_MEMBERSHIP = "gold/segment_membership"
SEGMENT_CHANGES = "gold/segment_changes"


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

    def delta(self, spark: SparkSession, table: str) -> DeltaTable:
        return DeltaTable.forPath(spark, self.path(table))

    def overwrite(self, df: DataFrame, table: str, *, partition_by: list[str] | None = None) -> None:
        writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(self.path(table))

    def append(self, df: DataFrame, table: str, *, partition_by: list[str] | None = None) -> None:
        writer = df.write.format("delta").mode("append")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(self.path(table))

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

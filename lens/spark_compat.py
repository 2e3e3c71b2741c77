"""Spark Connect and classic sessions behind one call, where their APIs differ.

A Spark Connect session (`spark.remote`, `c360 serve`) has no JVM in this process: no
`sparkContext`, and Delta's Python `DeltaTable` needs the Delta Connect plugin on the server, which
c360's server does not load. What c360's read commands need beyond the DataFrame API is here.
"""
from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession


def is_remote(spark: SparkSession) -> bool:
    """Is `spark` a Spark Connect client session (pyspark.sql.connect)?"""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def is_delta_table(spark: SparkSession, location: str) -> bool:
    """Is there a Delta table at `location`? Classic: Delta's own check. Connect: analyse a Delta
    read of it (one round trip, no data read)."""
    if not is_remote(spark):
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(spark, location)
    try:
        spark.read.format("delta").load(location).schema
    except AnalysisException:
        return False
    return True

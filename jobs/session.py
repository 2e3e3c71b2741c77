"""The one SparkSession factory. Jars come from the folder resolved at set-up, so no network."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.config import REPO_ROOT, SparkSettings
from jobs.errors import ConfigError

LOG4J_CONFIG = REPO_ROOT / "conf" / "log4j2.properties"

# Settings every c360 session needs; config can override any of them via spark.conf.
BASE_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # All timestamps are stored and compared in UTC; "as of" logic uses the run date.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # Delta reconstructs table state with this many partitions; its default of 50 dominates
    # small tables on a laptop. Cluster configs raise it.
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
}


def jar_paths(settings: SparkSettings) -> list[str]:
    if not settings.jars_dir:
        return []
    folder = Path(settings.jars_dir)
    folder = folder if folder.is_absolute() else REPO_ROOT / folder
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not jars and not settings.packages:
        raise ConfigError(
            f"no jars in {folder} (spark.jars_dir): run `make setup` to resolve jvm/jars.lock, "
            "or set spark.packages to let Spark fetch them"
        )
    return jars


def build_spark(settings: SparkSettings, *, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Build (or return the running) SparkSession for these settings."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(settings.app_name)
    if settings.master:
        builder = builder.master(settings.master)
    conf = dict(BASE_CONF)
    conf["spark.sql.shuffle.partitions"] = str(settings.shuffle_partitions)
    if LOG4J_CONFIG.is_file():
        java_opts = f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}"
        conf["spark.driver.extraJavaOptions"] = java_opts
        conf["spark.executor.extraJavaOptions"] = java_opts
    jars = jar_paths(settings)
    if jars:
        conf["spark.jars"] = ",".join(jars)
    if settings.packages:
        conf["spark.jars.packages"] = ",".join(settings.packages)
    if settings.driver_memory:
        conf["spark.driver.memory"] = settings.driver_memory
    conf.update(settings.conf)
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark

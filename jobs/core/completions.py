"""Which stages of a run date's nightly have finished: the Delta table `<warehouse>/_control/stage_runs`.

The nightly records each stage once it has finished, after the stage's last commit. Run again for the
same date on the same night (input files and config unchanged), it skips the recorded stages from
the first on and runs the rest: a night killed in the middle of stitch resumes at stitch. Once one
stage runs, every later one runs too (its input has just been written again).

A stage killed between two of its commits, or after its last commit and before its record, is
simply run again: every stage is idempotent for its run date (running it twice leaves the tables as
running it once), which is what makes resuming safe; tests/test_kill_and_resume.py kills the driver
in each stage in turn and compares every table with an uninterrupted night's.

A different night, any input file added, removed, resized or touched, or any setting outside
`spark:` changed, starts over at ingest (which then reads only what it has not landed); `--full`
always runs every stage.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, StringType, StructField, StructType, TimestampType

from jobs.core.config import Config
from jobs.core.session import literal_row
from jobs.core.tables import Warehouse

if TYPE_CHECKING:  # the listing's type only: the core does not import the stages
    from jobs.ingest.inputs import InputFiles

COMPLETIONS_TABLE = "_control/stage_runs"
COMPLETIONS_SCHEMA = StructType([
    StructField("run_date", DateType()), StructField("stage", StringType()), StructField("night", StringType()),
    StructField("finished_at", TimestampType()), StructField("result", StringType()),
])


def night_of(config: Config, inputs: InputFiles | None) -> str:
    """What identifies a night's work besides its date: the settings that shape tables (not `spark:`,
    which only says where and how fast they are computed) and the input files (name below the input
    folder, size, modification time). A short hash."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("spark", "source", "warehouse", "maintain")}
    files = [[inputs.relative(f), f.size, f.modified_ms] for f in inputs.files] if inputs is not None else []
    text = json.dumps({"settings": settings, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def finished(spark: SparkSession, wh: Warehouse, run_date: dt.date, night: str) -> dict[str, dict]:
    """{stage: its recorded result (StageResult.to_json plus finished_at)} for this date and night."""
    path = wh.path(COMPLETIONS_TABLE)
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    rows = (spark.read.format("delta").load(path)
            .where((F.col("run_date") == F.lit(run_date)) & (F.col("night") == F.lit(night)))
            .orderBy("finished_at").collect())  # a row per stage and attempt of one date: a handful
    return {r["stage"]: {**json.loads(r["result"]), "finished_at": f"{r['finished_at']:%Y-%m-%d %H:%M:%S}"}
            for r in rows}


def record(spark: SparkSession, wh: Warehouse, run_date: dt.date, night: str, stage: str, result: dict) -> None:
    """Append that `stage` finished for the date and night (its own commit, after the stage's)."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    row = literal_row(spark, COMPLETIONS_SCHEMA, (run_date, stage, night, now, json.dumps(result, default=str)))
    row.write.format("delta").mode("append").save(wh.path(COMPLETIONS_TABLE))

"""What every stage receives: validated config, run date, warehouse, a lazily built SparkSession, and
its parameters (RunParams); what it returns (StageResult)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from jobs.core.config import Config
from jobs.core.tables import Warehouse


@dataclass(frozen=True)
class RunParams:
    """What a stage is asked to do beyond the run date (which every stage reads from the context).

    The command line builds it from its options; `nightly` passes one to every stage."""

    input_dir: str | Path | None = None  # raw input folder with events/ and customers/ (ingest): path or URI
    rebuild: bool = False           # recompute derived tables from all history instead of incrementally
    rewind: bool = False            # accept a run date before the last applied one (segments)
    resend: tuple[str, ...] = ()    # exported segments whose file this run is the complete list (segments)
    # The listing of input_dir (jobs.ingest.inputs.InputFiles) when the caller made it already: the
    # nightly lists the folder once, to know which night it is, and ingest reads those very files.
    inputs: Any = None


@dataclass
class StageResult:
    """A stage's outcome: counts for the summary (ordered), plus free-form notes."""

    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class JobContext:
    config: Config
    run_date: dt.date
    _spark: SparkSession | None = None
    # A read-only command may use a Spark Connect server (config spark.remote) instead of starting
    # Spark itself; commands that write always run their own session.
    remote_ok: bool = False

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.config.warehouse_location())

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from jobs.core.session import build_spark, connect_spark

            remote = self.config.spark.remote if self.remote_ok else None
            self._spark = connect_spark(remote) if remote else build_spark(self.config.spark)
        return self._spark

    @property
    def has_spark(self) -> bool:
        return self._spark is not None

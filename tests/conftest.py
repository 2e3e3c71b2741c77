"""One SparkSession for the whole suite (local[2], 2 shuffle partitions, interpreted expressions), a
temp warehouse, and one pair of nightlies several slow tests compare with or read (two_nights)."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.core.config import Config, SparkSettings
from jobs.core.context import JobContext

# Spark's interpreted expression evaluation instead of Java compiled for every query (Spark's own
# test mode). On the suite's tables of a few hundred rows compiling costs far more than it saves: a
# cold incremental `c360 nightly` of 45 customers took 95 s instead of 178 s. The session below and
# every `c360` or spark-submit process the tests start (Spark's spark-defaults.conf, through
# SPARK_CONF_DIR) run so, README's spark-submit command in tests/test_spark_submit.py included;
# users' runs keep code generation, and so do the tests of README's `c360` commands and the docs'
# examples, which pass on a user's environment (no SPARK_* variables).
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}

TEST_SPARK = SparkSettings(
    master="local[2]",
    app_name="c360-tests",
    shuffle_partitions=2,
    # 4g: after the suite's ~870 tests the last one's broadcast found no room in 2g (CI)
    driver_memory="4g",
    conf={
        # the suite runs thousands of queries in one session; the status store keeps no more than
        # this of them (its defaults keep 1000 executions with their plans)
        "spark.sql.ui.retainedExecutions": "50",
        "spark.ui.retainedJobs": "200",
        "spark.ui.retainedStages": "200",
        "spark.ui.retainedTasks": "5000",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.default.parallelism": "2",
        "spark.rdd.compress": "false",
        "spark.databricks.delta.snapshotPartitions": "1",
        "spark.databricks.delta.properties.defaults.checkpointInterval": "100",
        "spark.ui.enabled": "false",
        **INTERPRETED,
    },
)


@pytest.fixture(autouse=True, scope="session")
def _child_processes_interpreted(tmp_path_factory):
    """INTERPRETED for the Spark of every process the tests start, as a spark-defaults.conf (added to
    the files of a SPARK_CONF_DIR already set)."""
    folder = tmp_path_factory.mktemp("spark-conf")
    before = os.environ.get("SPARK_CONF_DIR")
    if before and Path(before).is_dir():
        shutil.copytree(before, folder, dirs_exist_ok=True)
    defaults = folder / "spark-defaults.conf"
    kept = defaults.read_text().rstrip("\n") + "\n" if defaults.exists() else ""
    defaults.write_text(kept + "".join(f"{k} {v}\n" for k, v in INTERPRETED.items()))
    os.environ["SPARK_CONF_DIR"] = str(folder)
    yield
    if before is None:
        os.environ.pop("SPARK_CONF_DIR")
    else:
        os.environ["SPARK_CONF_DIR"] = before


@pytest.fixture(scope="session")
def spark():
    from jobs.core.session import build_spark

    session = build_spark(TEST_SPARK)
    yield session
    session.stop()


def _active_session():
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


@contextlib.contextmanager
def _storage_released():
    """What Spark persists in the block (local checkpoints of stages called directly, cached frames)
    is released after it: in one session for the whole suite it piled up in the driver's heap (the
    suite's last test then ran out of room for a broadcast)."""
    from jobs.core.session import persistent_rdd_ids, release_persisted_since

    before = persistent_rdd_ids(_active_session()) if _active_session() else set()
    yield
    if _active_session():
        release_persisted_since(_active_session(), before)


@pytest.fixture(autouse=True, scope="module")
def _module_storage_released():
    """For the module's fixtures (a module's warehouse built once)."""
    with _storage_released():
        yield


@pytest.fixture(autouse=True)
def _test_storage_released():
    with _storage_released():
        yield


@pytest.fixture
def warehouse_dir(tmp_path):
    return tmp_path / "warehouse"


@pytest.fixture
def make_ctx(spark, warehouse_dir):
    """A JobContext bound to the shared session and a fresh warehouse: make_ctx('2026-01-31')."""

    def factory(run_date: str | dt.date = "2026-01-31", **config_fields) -> JobContext:
        date = dt.date.fromisoformat(run_date) if isinstance(run_date, str) else run_date
        config = Config(warehouse=str(warehouse_dir), spark=TEST_SPARK, **config_fields)
        return JobContext(config=config, run_date=date, _spark=spark)

    return factory


# The run dates of two_nights (below).
FIRST_NIGHT, SECOND_NIGHT = "2026-03-01", "2026-03-02"


@dataclass(frozen=True)
class TwoNights:
    """Two generated nights run in the test session with conf/local.yml: `after_first` is the
    warehouse after the first night (copy it to run the second another way), `after_both` after both
    (the second incremental). Its rows name both folders (gold/segment_runs.export_file): compare with
    `roots` as the base's."""

    first_date: str
    first_input: Path
    second_date: str
    second_input: Path
    after_first: Path
    after_both: Path

    @property
    def roots(self) -> tuple[str, str]:
        return str(self.after_both), str(self.after_first)


@pytest.fixture(scope="session")
def two_nights(spark, tmp_path_factory) -> TwoNights:
    """A first night of 40 generated profiles over 10 days plus lines whose bytes are not UTF-8
    (tests/test_delta_readers.py), then a day of new events for 5 customers: the nights the
    kill-and-resume and the cluster tests run their own way and compare with these; the warehouse the
    table-spec, Delta-reader and fresh-process lens tests read (nothing writes to it but _logs/)."""
    from jobs import pipeline
    from jobs.cli import main as cli_main
    from jobs.core.config import load_config
    from jobs.core.context import RunParams

    work = tmp_path_factory.mktemp("two-nights")
    nights = ((FIRST_NIGHT, ("--profiles", "40", "--days", "10")),
              (SECOND_NIGHT, ("--profiles", "5", "--days", "1", "--seed", "2")))
    inputs = []
    for run_date, args in nights:
        raw = work / f"raw-{run_date}"
        assert cli_main(["generate", "--out", str(raw), *args, "--run-date", run_date]) == 0
        inputs.append(raw)
    from tests.test_delta_readers import BAD_BYTES_FILE, QUARANTINED_BAD_BYTES

    (inputs[0] / "events" / BAD_BYTES_FILE).write_bytes(b"\n".join(QUARANTINED_BAD_BYTES) + b"\n")

    def night(warehouse: Path, run_date: str, raw: Path) -> None:
        ctx = JobContext(config=load_config(overrides={"warehouse": str(warehouse)}),
                         run_date=dt.date.fromisoformat(run_date), _spark=spark)
        pipeline.run_nightly(ctx, RunParams(input_dir=raw))

    after_first, after_both = work / "after-first", work / "after-both"
    night(after_first, FIRST_NIGHT, inputs[0])
    shutil.copytree(after_first, after_both)
    night(after_both, SECOND_NIGHT, inputs[1])
    return TwoNights(FIRST_NIGHT, inputs[0], SECOND_NIGHT, inputs[1], after_first, after_both)

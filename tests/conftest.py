"""One SparkSession for the whole suite (local[2], 2 shuffle partitions), and a temp warehouse."""
from __future__ import annotations

import contextlib
import datetime as dt

import pytest

from jobs.core.config import Config, SparkSettings
from jobs.core.context import JobContext

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
    },
)


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

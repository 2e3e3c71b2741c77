import functools
import logging

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs import pipeline
from jobs.core.context import RunParams, StageResult
from jobs.core.session import (computed, concurrently, job_group, persistent_rdd_ids,
                               release_persisted_since)


def test_session_writes_and_reads_delta(spark, tmp_path):
    df = spark.createDataFrame([(1, "a"), (2, "b")], "k long, v string")
    df.write.format("delta").save(str(tmp_path / "t"))
    back = spark.read.format("delta").load(str(tmp_path / "t"))
    assert_df_equality(back, df, ignore_row_order=True)
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def run(ctx, params):
    """A stage module's entry point (this module is the probe stage below): one Spark job."""
    return StageResult(metrics={"rows": ctx.spark.range(5).count()})


def test_a_stage_runs_its_spark_jobs_in_its_job_group_and_logs_its_summary(spark, make_ctx, caplog):
    sc = spark.sparkContext
    with caplog.at_level(logging.INFO, logger=pipeline.LOG.name):
        result = pipeline.Stage("probe", __name__, "one Spark job").run(make_ctx("2026-02-01"), RunParams())
    assert result.metrics == {"rows": 5}
    in_group = sc.statusTracker().getJobIdsForGroup("c360-probe-2026-02-01")
    assert in_group and all(sc.statusTracker().getJobInfo(job).status == "SUCCEEDED" for job in in_group), in_group
    assert [sc.getLocalProperty(k) for k in ("spark.jobGroup.id", "spark.job.description")] == [None, None]
    assert caplog.messages == ["2026-02-01 probe: rows=5"]
    spark.range(3).count()  # a job after the stage is in no group of it
    assert sorted(sc.statusTracker().getJobIdsForGroup("c360-probe-2026-02-01")) == sorted(in_group)


def test_a_computed_frame_holds_its_rows_under_a_short_plan_with_its_real_size(spark):
    before = persistent_rdd_ids(spark)
    # 200 of 200,000 rows survive the filter, which the planner's estimate does not know
    wide = spark.range(200_000).withColumn("pad", F.repeat(F.lit("x"), 50))
    kept = wide.filter(F.col("id") % 1_000 == 7)
    held = computed(kept)
    size = lambda df: df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()  # noqa: E731
    plan = held._jdf.queryExecution().optimizedPlan().toString()

    expected = spark.createDataFrame([(i, "x" * 50) for i in range(7, 200_000, 1_000)], "id long, pad string")
    assert_df_equality(held, expected, ignore_row_order=True, ignore_nullable=True)
    assert "LogicalRDD" in plan and "Range" not in plan and "InMemoryRelation" not in plan, plan
    assert size(held) < size(kept) / 100, (size(held), size(kept))
    # only the checkpoint is held (the cache it was copied from is released), until the stage ends
    assert len(persistent_rdd_ids(spark) - before) == 1
    release_persisted_since(spark, before)
    assert persistent_rdd_ids(spark) == before


def test_concurrent_calls_keep_their_order_and_the_job_group_and_raise_the_first_failure(spark):
    sc = spark.sparkContext
    ran: list[int] = []

    def work(n: int, fail: bool = False) -> tuple:
        ran.append(n)
        if fail:
            raise ValueError(f"item {n}")
        return spark.range(n).count(), sc.getLocalProperty("spark.jobGroup.id")

    calls = [functools.partial(work, n) for n in (30, 10, 20, 40)]
    with job_group(spark, "c360-probe-concurrent", "probe"):
        assert concurrently(spark, calls, 3) == [(n, "c360-probe-concurrent") for n in (30, 10, 20, 40)]
    ran.clear()
    failing = [functools.partial(work, 1), functools.partial(work, 2, True), functools.partial(work, 3, True),
               functools.partial(work, 4)]
    with pytest.raises(ValueError, match="^item 2$"):
        concurrently(spark, failing, 2)
    assert sorted(ran) == [1, 2, 3, 4]  # every call ran before the failure was raised
    # one thread: the same answers, in this thread (outside any job group); the first failure stops the rest
    assert concurrently(spark, calls[:2], 1) == [(30, None), (10, None)]
    ran.clear()
    with pytest.raises(ValueError, match="^item 2$"):
        concurrently(spark, failing, 1)
    assert ran == [1, 2]

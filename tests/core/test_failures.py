"""jobs.core.failures: the paragraph a Spark/JVM failure becomes (plain text in, plain text out)."""
from __future__ import annotations

from pathlib import Path

import pytest

from jobs.core.failures import Failure, MemorySettings, diagnose, read_tail

LOCAL = MemorySettings(config_file="conf/local.yml", local=True, driver_memory="4g", executor_memory=None)
CLUSTER = MemorySettings(config_file="conf/cluster.yml", local=False, driver_memory="8g", executor_memory="6g")

# What PySpark and the JVM print in these cases (abridged from real runs).
PY4J_HEAP = ("Py4JJavaError: An error occurred while calling o123.save.\n"
             ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 7.0 failed 1 "
             "times, most recent failure: Lost task 3.0 in stage 7.0 (TID 41) (localhost executor driver): "
             "java.lang.OutOfMemoryError: Java heap space\n\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)")
JVM_GONE = "Py4JError: An error occurred while calling o88.count. Answer from Java side is empty"
LOG_WITH_HEAP = ("26/12/02 10:00:01 ERROR Executor: Exception in task 0.0 in stage 3.0 (TID 5)\n"
                 "java.lang.OutOfMemoryError: GC overhead limit exceeded\n\tat scala.collection...\n")
EXECUTOR_LOST = ("Py4JJavaError: An error occurred while calling o51.save.\n: org.apache.spark.SparkException: "
                 "Job aborted due to stage failure: Task 2 in stage 4.0 failed 4 times, most recent failure: "
                 "Lost task 2.3 in stage 4.0 (TID 19) (10.0.0.7 executor 1): ExecutorLostFailure (executor 1 "
                 "exited caused by one of the running tasks) Reason: Command exited with code 137\n")


def test_a_heap_error_in_local_mode_names_the_driver_memory_setting():
    failure = diagnose(PY4J_HEAP, "", LOCAL)
    assert failure == Failure(
        "the Spark JVM ran out of memory (java.lang.OutOfMemoryError: Java heap space)",
        "Raise spark.driver_memory in conf/local.yml (now 4g; in local mode it is the memory of every task), "
        "or lower spark.conf.spark.sql.files.maxPartitionBytes so each task reads less.")


def test_a_dead_jvm_is_diagnosed_from_its_log():
    failure = diagnose(JVM_GONE, LOG_WITH_HEAP, LOCAL)
    assert failure.what == "the Spark JVM ran out of memory (java.lang.OutOfMemoryError: GC overhead limit exceeded)"


def test_a_dead_jvm_without_an_error_in_its_log_was_killed():
    log = "26/12/02 INFO DAGScheduler: Job 3 finished\n"
    failure = diagnose(JVM_GONE, log, LOCAL)
    assert failure.what.startswith("the Spark JVM stopped while the stage was running, with no error from Spark")
    assert "spark.driver_memory in conf/local.yml (now 4g)" in failure.advice
    # the status of the JVM Python started says more, whatever py4j's error says
    assert diagnose("Py4JError: io does not exist in the JVM", log, LOCAL, jvm_exit=-9).what.startswith(
        "the Spark JVM was killed by signal 9 (SIGKILL) while the stage was running")
    assert diagnose("Py4JError: x", log, LOCAL, jvm_exit=3).what.startswith("the Spark JVM exited with status 3 ")
    assert diagnose("Py4JError: io does not exist in the JVM", log, LOCAL) is None   # a jar missing, say


def test_a_jvm_that_exited_with_sparks_out_of_memory_status_ran_out_of_memory():
    # Spark's uncaught-exception handler exits with 52 on an OutOfMemoryError, even when the log lost it
    failure = diagnose("Py4JJavaError (its message could not be read)", "", LOCAL, jvm_exit=52)
    assert failure.what == "the Spark JVM ran out of memory (java.lang.OutOfMemoryError: out of memory)"
    assert diagnose("Py4JJavaError: x", "", LOCAL, jvm_exit=1).what.startswith("the Spark JVM exited with status 1 ")


def test_on_a_cluster_the_executor_settings_are_named():
    assert diagnose(PY4J_HEAP, "", CLUSTER).advice.startswith(
        "Raise spark.conf.spark.executor.memory in conf/cluster.yml (now 6g)")
    lost = diagnose(EXECUTOR_LOST, "", CLUSTER)
    assert lost.what == ("Spark lost an executor (ExecutorLostFailure (executor 1 exited caused by one of the "
                         "running tasks) Reason: Command exited with code 137)")
    assert "spark.conf.spark.executor.memoryOverhead in conf/cluster.yml" in lost.advice


@pytest.mark.parametrize("error", [
    "AnalysisException: [UNRESOLVED_COLUMN] A column `x` cannot be resolved",
    "ValueError: something in our own code",
])
def test_other_failures_are_not_diagnosed(error):
    assert diagnose(error, "26/12/02 INFO nothing to see\n", LOCAL) is None


def test_the_paragraph_says_what_where_log_and_setting():
    text = Failure("the Spark JVM ran out of memory (java.lang.OutOfMemoryError: Java heap space)",
                   "Raise spark.driver_memory.").paragraph("nightly", "ingest", Path("/w/_logs/nightly-2026-12-02.log"))
    assert text == ("c360 nightly: failed during stage ingest: the Spark JVM ran out of memory "
                    "(java.lang.OutOfMemoryError: Java heap space). The full log is /w/_logs/nightly-2026-12-02.log. "
                    "Raise spark.driver_memory.")
    assert Failure("x", "y").paragraph("ingest", "ingest", None) == "c360 ingest: failed: x. y"


def test_only_this_runs_part_of_the_log_is_read(tmp_path):
    log = tmp_path / "nightly.log"
    log.write_text(LOG_WITH_HEAP)
    earlier = log.stat().st_size
    with open(log, "a") as fh:
        fh.write("26/12/03 INFO a later run\n")
    assert read_tail(log, start=earlier) == "26/12/03 INFO a later run\n"
    assert read_tail(log, start=0, limit=10) == "later run\n"
    assert read_tail(tmp_path / "missing.log") == ""

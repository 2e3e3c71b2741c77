"""What to tell the user when Spark itself fails (not bad input): one paragraph, exit status 1.

A big night on a small machine can still kill the JVM: the driver's heap fills up, an executor is
lost, or the operating system kills the process. The user then needs what died, in which stage, where
the full log is, and which setting to raise, never a Python or py4j traceback. The error text Python
sees is often only "Answer from Java side is empty" (the JVM is gone), so the log the JVM wrote to
(`<warehouse>/_logs/<command>-<date>.log`) is read too.

Plain Python: `diagnose` works on text, so it is tested without a JVM.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# How much of the end of the log is searched (the JVM's last words are at the end).
LOG_TAIL_BYTES = 2_000_000
FIRST_LINE_CHARS = 300
SIGKILL = 9
# Spark's exit status for a JVM that died of an OutOfMemoryError (org.apache.spark.util.SparkExitCode.OOM).
SPARK_OOM_EXIT = 52

HEAP = re.compile(r"java\.lang\.OutOfMemoryError: ?([^\n\r]*)")
EXECUTOR_LOST = re.compile(
    r"ExecutorLostFailure[^\n]*|Executor heartbeat timed out[^\n]*|Container killed[^\n]*"
    r"|Command exited with code \d+[^\n]*|executor \S+ exited[^\n]*", re.IGNORECASE)
# The Python side of a JVM that is gone (py4j's messages and the socket errors under them).
JVM_GONE = re.compile(
    r"Answer from Java side is empty|Error while sending or receiving|Connection refused"
    r"|Py4JNetworkError|Broken pipe|Connection reset by peer|SparkContext was shut down"
    r"|Cannot call methods on a stopped SparkContext", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    what: str      # what died, in words
    advice: str    # the setting to raise, or what to look at

    def paragraph(self, command: str, stage: str | None, log_file: Path | None) -> str:
        where = f" during stage {stage}" if stage and stage != command else ""
        log = f" The full log is {log_file}." if log_file else ""
        return f"c360 {command}: failed{where}: {self.what}.{log} {self.advice}"


@dataclass(frozen=True)
class MemorySettings:
    """Where the memory settings live, for the advice: the config file and its current values."""

    config_file: str
    local: bool
    driver_memory: str
    executor_memory: str | None


def diagnose(error_text: str, log_text: str, memory: MemorySettings, jvm_exit: int | None = None) -> Failure | None:
    """The failure's diagnosis when it is the JVM running out of memory, losing an executor or dying;
    None for any other error (the caller prints the error's first line). `jvm_exit` is the driver
    JVM's exit status when Python started it and it has exited (negative: killed by that signal)."""
    text = f"{error_text}\n{log_text}"
    heap = HEAP.search(text)
    if heap is not None or jvm_exit == SPARK_OOM_EXIT:
        kind = (heap.group(1).strip() if heap is not None else "") or "out of memory"
        if memory.local:
            return Failure(
                f"the Spark JVM ran out of memory (java.lang.OutOfMemoryError: {kind})",
                f"Raise spark.driver_memory in {memory.config_file} (now {memory.driver_memory}; in local mode "
                f"it is the memory of every task), or lower spark.conf.spark.sql.files.maxPartitionBytes so "
                f"each task reads less.")
        return Failure(
            f"a Spark JVM ran out of memory (java.lang.OutOfMemoryError: {kind})",
            f"Raise spark.conf.spark.executor.memory in {memory.config_file} (now "
            f"{memory.executor_memory or 'the cluster default'}) or spark-submit --driver-memory if the "
            f"driver died (the log says which).")
    lost = EXECUTOR_LOST.search(text)
    if lost is not None:
        return Failure(
            f"Spark lost an executor ({lost.group(0).strip()[:FIRST_LINE_CHARS]})",
            f"An executor killed by its host for memory needs more: raise spark.conf.spark.executor.memory "
            f"(now {memory.executor_memory or 'the cluster default'}) or "
            f"spark.conf.spark.executor.memoryOverhead in {memory.config_file}.")
    if jvm_exit is not None or JVM_GONE.search(error_text):
        if jvm_exit is not None and jvm_exit < 0:
            how = f"was killed by signal {-jvm_exit}{' (SIGKILL)' if -jvm_exit == SIGKILL else ''}"
        elif jvm_exit is not None:
            how = f"exited with status {jvm_exit}"
        else:
            how = "stopped"
        return Failure(
            f"the Spark JVM {how} while the stage was running, with no error from Spark itself (the operating "
            "system kills the largest process when the machine runs out of memory)",
            f"Check the machine's free memory (dmesg shows the kernel's out-of-memory kills); "
            f"spark.driver_memory in {memory.config_file} (now {memory.driver_memory}) must fit in it "
            f"with room for Python.")
    return None


def read_tail(path: Path | None, *, start: int = 0, limit: int = LOG_TAIL_BYTES) -> str:
    """The end of the log written since byte `start` (this run's part: the log of a command and date
    is appended to by every run of it), at most `limit` bytes."""
    if path is None or not path.is_file():
        return ""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(start, size - limit))
        return fh.read().decode("utf-8", errors="replace")

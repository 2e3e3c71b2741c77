"""The one SparkSession factory. Jars come from the folder resolved at set-up, so no network.

Spark's log lines go to one file (conf/log4j2.properties): the system property `c360.log.file`, else
the environment variable C360_LOG_FILE (the CLI sets it to <warehouse>/_logs/<command>-<run date>.log),
else the process's stderr. In local mode this process launches the driver JVM, which inherits the
variable and is started with that log4j config. Under spark-submit the driver JVM is already running
when Python starts, so before the SparkContext is created the JVM's log4j is pointed at the same
config with the log file as a system property; spark-submit's own start-up lines stay off the terminal
only with `--driver-java-options -Dlog4j2.configurationFile=conf/log4j2.properties` (README).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs.core.config import REPO_ROOT, SparkSettings, packaged_file
from jobs.core.errors import ConfigError

LOG4J_CONFIG_NAME = "conf/log4j2.properties"
LOG_FILE_ENV = "C360_LOG_FILE"
LOG_FILE_PROPERTY = "c360.log.file"
T = TypeVar("T")

# The most keys (message ids, customer ids) a stage broadcasts to a table scan instead of shuffling
# the table to meet them: about 100 MB of hashed ids, well inside the default 4 GB driver.
BROADCAST_KEYS_MAX = 1_000_000


def broadcast_if_small(keys: DataFrame) -> DataFrame:
    """`keys` (computed already: persisted or read from scratch, so counting it is cheap) marked for
    broadcast when it has at most BROADCAST_KEYS_MAX rows: a table semi-joined with it is then
    probed as it is scanned. Without the mark the planner estimates such a set from the plan it came
    from and shuffles the whole table to meet it (the activity stream at bench scale L: 3.2 GB)."""
    return F.broadcast(keys) if keys.count() <= BROADCAST_KEYS_MAX else keys


def computed(df: DataFrame) -> DataFrame:
    """`df` computed once, now, and held as a local checkpoint (executor memory, spilling to disk)
    until its stage ends (storage_released). A frame used by several later ones is kept so rather
    than persisted: a persisted frame's whole plan stays inside every plan built on it, and a chain
    of them made the driver plan (and match against the cache) for seconds per query, longer than
    the small frames took to compute (bench scale M: 3 s to count 66 thousand rows already
    cached). It is cached first and checkpointed from the cache, so the checkpoint's statistics
    are its real size, and a small one is broadcast by later joins (a checkpoint of the plan itself
    keeps the plan's estimate: a scan's size however few rows a filter keeps)."""
    with cached(df) as rows:
        return checkpointed(rows)


@contextmanager
def cached(df: DataFrame) -> Iterator[DataFrame]:
    """`df` persisted and computed (counted) for the block, unpersisted after it."""
    rows = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows.count()
        yield rows
    finally:
        rows.unpersist()


def checkpointed(rows: DataFrame) -> DataFrame:
    """A local checkpoint of a frame `cached` holds: a new Dataset over the cached one, so its plan
    reads the cache and knows its real size."""
    return rows.select("*").localCheckpoint(eager=True)


def cached_bytes(rows: DataFrame) -> int:
    """The size of a frame `cached` holds, as Spark measured it while caching (compressed columns)."""
    return int(rows.select("*")._jdf.queryExecution().optimizedPlan().stats().sizeInBytes())


def storage_memory_bytes(spark: SparkSession) -> int:
    """The memory Spark has for cached blocks, summed over the driver and the executors (local
    mode: the driver's alone; on a cluster the driver's share is small, and telling it apart needs
    executor ids, which Spark's status tracker does not give)."""
    return sum(i.totalOnHeapStorageMemory() for i in spark.sparkContext._jsc.sc().statusTracker().getExecutorInfos())


def literal_row(spark: SparkSession, schema: StructType, values: tuple) -> DataFrame:
    """One row of `schema` holding `values`, built from literals. Not from Python rows: a DataFrame
    of Python rows is a Python RDD, whose accumulator connection prints an EOFError on the terminal
    if the JVM dies later in the run."""
    return literal_rows(spark, schema, [values])


def literal_rows(spark: SparkSession, schema: StructType, rows: list[tuple]) -> DataFrame:
    """Rows of `schema` built from literals (see literal_row): a few, such as a night's input files."""
    structs = [F.struct(*[F.lit(v).cast(f.dataType).alias(f.name) for v, f in zip(values, schema.fields)])
               for values in rows]
    return spark.range(1).select(F.inline(F.array(*structs))).select(*schema.fieldNames())


# The tasks a parallel file listing takes (build_spark sets it).
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
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


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str):
    """`key` set to `value` in the session for the block, then put back as it was (unset if it was)."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def persistent_rdd_ids(spark: SparkSession) -> set[int]:
    """The ids of the RDDs the SparkContext holds persisted (cached frames, local checkpoints)."""
    return {int(rdd_id) for rdd_id in spark.sparkContext._jsc.getPersistentRDDs().keySet().toArray()}


# Delta names the RDDs caching a table's state so; Delta evicts them itself, and unpersisting them
# would make every later read of the table replay its log again.
DELTA_STATE_CACHE_PREFIX = "Delta Table State"


def release_persisted_since(spark: SparkSession, before: set[int]) -> None:
    """Unpersist every RDD persisted after `before` was taken, but Delta's table-state caches. A
    local checkpoint cannot be read after this (its blocks were its only copy): call it when what it
    held is written."""
    persistent = spark.sparkContext._jsc.getPersistentRDDs()
    for rdd_id in persistent.keySet().toArray():
        rdd = persistent.get(rdd_id)
        if int(rdd_id) not in before and not (rdd.name() or "").startswith(DELTA_STATE_CACHE_PREFIX):
            rdd.unpersist(False)


@contextmanager
def storage_released(spark: SparkSession):
    """What the block persists (local checkpoints, persisted frames) is unpersisted when it ends
    normally. A stage's local checkpoints are otherwise kept until Python
    drops the frames, so one nightly process held every earlier stage's while the next ran: in local
    mode that storage shares the driver's heap, and a later broadcast found no room for itself. When
    the block fails, nothing is touched (the JVM may be gone; the process is ending)."""
    before = persistent_rdd_ids(spark)
    yield
    release_persisted_since(spark, before)


# The Spark local properties behind SparkContext.setJobGroup (the Spark UI's job group and description).
JOB_GROUP_PROPERTIES = ("spark.jobGroup.id", "spark.job.description")


@contextmanager
def job_group(spark: SparkSession, group_id: str, description: str):
    """Every Spark job the block starts (in this thread) in job group `group_id` with `description`,
    which the Spark UI and the event log show; the thread's previous group is put back after."""
    sc = spark.sparkContext
    before = [sc.getLocalProperty(key) for key in JOB_GROUP_PROPERTIES]
    sc.setJobGroup(group_id, description)
    try:
        yield
    finally:
        for key, value in zip(JOB_GROUP_PROPERTIES, before):
            sc.setLocalProperty(key, value)  # None removes it


def concurrently(spark: SparkSession, calls: Sequence[Callable[[], T]], threads: int) -> list[T]:
    """Every call's result, in the calls' order; `threads` of them run at once, in threads that
    inherit this one's job group. Independent Spark jobs that each leave the cores idle for a while
    (planning, Delta log reads and commits on the driver, a small last task) fill that time with each
    other's tasks. A failure does not cancel the calls already running (their Spark jobs would be
    left half done): every call runs to its end, then the first failure in the calls' order is
    raised. With one thread the calls run in order here and the first failure stops them."""
    if threads <= 1 or len(calls) <= 1:
        return [call() for call in calls]
    from pyspark.util import inheritable_thread_target

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="c360")
    try:
        # the job group, tags and local properties of this thread, taken now, set in the pool's threads
        futures = [pool.submit(inheritable_thread_target(spark)(call)) for call in calls]
        wait(futures)
    finally:
        # interrupted (Ctrl-C): the calls not started yet never start; the running ones end with the
        # session, which the command line stops on its way out
        pool.shutdown(wait=False, cancel_futures=True)
    return [f.result() for f in futures]


def jar_paths(settings: SparkSettings) -> list[str]:
    if not settings.jars_dir:
        return []
    folder = Path(settings.jars_dir)
    if not folder.is_absolute():
        # Under the repo; under spark-submit (REPO_ROOT is then the --py-files zip), the current folder.
        folder = (REPO_ROOT if REPO_ROOT.is_dir() else Path.cwd()) / folder
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not jars and not settings.packages:
        raise ConfigError(
            f"no jars in {folder} (spark.jars_dir): run `make setup` to resolve jvm/jars.lock, "
            "or set spark.packages to let Spark fetch them"
        )
    return jars


def under_spark_submit() -> bool:
    """True when this Python process was started by spark-submit, whose JVM is the driver."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def route_driver_logs(log_file: str | Path, config: Path | None = None) -> None:
    """Point the running driver JVM's log4j at `config` (default: conf/log4j2.properties) writing to
    `log_file`. For spark-submit, whose JVM chose its logging before Python started; called before
    the SparkContext exists, so its start-up lines land in the file too."""
    from pyspark import SparkContext

    config = config or packaged_file(LOG4J_CONFIG_NAME)
    SparkContext._ensure_initialized()  # connects to spark-submit's JVM; launches nothing
    jvm = SparkContext._jvm
    jvm.java.lang.System.setProperty(LOG_FILE_PROPERTY, str(log_file))
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    if config is not None:
        context.setConfigLocation(jvm.java.net.URI(config.resolve().as_uri()))  # loads it now
    else:
        context.reconfigure()
    # What the driver JVM prints past log4j goes there too: Scala's default reporter prints a failed
    # RPC callback's stack trace to System.err (seen while executors disconnect at a busy shutdown).
    # Only System.err: spark-submit copies this Python process's output to the JVM's System.out.
    jvm.java.lang.System.setErr(jvm.java.io.PrintStream(jvm.java.io.FileOutputStream(str(log_file), True), True))


def build_spark(settings: SparkSettings, *, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Build (or return the running) SparkSession for these settings."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(settings.app_name)
    if settings.master:
        builder = builder.master(settings.master)
    conf = dict(BASE_CONF)
    conf["spark.sql.shuffle.partitions"] = str(settings.shuffle_partitions)
    # Delta's VACUUM lists a table's files in this many tasks, whatever the table's size: Spark's
    # default of 10,000 made `c360 maintain` spend 30-40 s on each table of a one-event warehouse
    # (121 s for three; 33 s with 4). The shuffle's width suits a listing on any machine.
    conf[LISTING_PARALLELISM] = str(settings.shuffle_partitions)
    log_file = os.environ.get(LOG_FILE_ENV)
    log4j_config = packaged_file(LOG4J_CONFIG_NAME)
    if under_spark_submit():
        if log_file:
            try:
                route_driver_logs(log_file, log4j_config)
            except Exception as exc:  # the run matters more than where Spark's log lines go
                print(f"c360: note: Spark's log lines stay where spark-submit sent them ({exc})", file=sys.stderr)
    elif log4j_config is not None:
        # Read when this process launches the driver JVM (local mode), and by executors it starts.
        java_opts = f"-Dlog4j2.configurationFile={log4j_config.resolve().as_uri()}"
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
    if not log_file:
        _errors_only(spark)
    return spark


# How long a read command waits for a Spark Connect server's port to accept a connection.
CONNECT_PROBE_SECONDS = 5


def connect_spark(url: str) -> SparkSession:
    """A Spark Connect session on the server at `url` (config spark.remote), checked with one round
    trip, so that a server that is not there is said plainly, not as a gRPC trace on first use."""
    import socket

    from pyspark.errors import PySparkException

    from jobs.core.config import connect_address

    host, port = connect_address(url)
    try:  # the client retries a refused connection for minutes: ask the port first
        socket.create_connection((host, port), timeout=CONNECT_PROBE_SECONDS).close()
    except OSError as exc:
        raise _no_server(url, exc.strerror or str(exc)) from None
    try:
        spark = SparkSession.builder.remote(url).getOrCreate()
        spark.range(1).collect()
    except (PySparkException, ImportError) as exc:
        raise _no_server(url, str(exc).splitlines()[0][:200]) from None
    return spark


def _no_server(url: str, why: str) -> ConfigError:
    return ConfigError(f"no Spark Connect server answers at {url} (--remote, or spark.remote in the config): start "
                       f"one with `c360 serve`, or leave both out to let the command start Spark itself ({why})")


def _errors_only(spark: SparkSession) -> None:
    """Log lines going to the console (no log file, e.g. the tests): errors only from now on."""
    spark.sparkContext.setLogLevel("ERROR")
    jvm = spark.sparkContext._jvm
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
        "org.apache.spark.SparkContext", jvm.org.apache.logging.log4j.Level.ERROR)

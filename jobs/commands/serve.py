"""`c360 serve`: a Spark Connect server running c360's own session, so read commands answer in
seconds instead of each paying Spark's start (issue 14, item 9).

The server is the session every c360 command builds (jobs.core.session: Delta's extensions, the
jars resolved at set-up, the config's Spark settings and log routing) with Spark's Connect service
started inside it, listening where the config's `spark.remote` says (default sc://localhost:15002;
`--port` overrides the port). With `spark.remote` set, `lens query`, `segments preview` and `identity
explain` connect to it instead of starting Spark (jobs.core.context.JobContext.remote_ok). Commands
that write (the stages, nightly, maintain) always start their own session and take the lease.

Before it says it is ready, the server reads every table c360 wrote to the warehouse once, so Delta's table
state and Spark's code paths are warm when the first question comes. Delta re-reads a table's log
on every query, so answers follow the nightlies that run meanwhile. It listens on the URL's host
only (localhost by default). SIGTERM or Ctrl-C stops it.
"""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from jobs.commands.maintain import maintained_tables
from jobs.core.config import CONNECT_DEFAULT_PORT, connect_address
from jobs.core.context import JobContext, StageResult
from jobs.core.session import build_spark

DEFAULT_HOST = "localhost"


def server_address(remote: str | None, port: int | None) -> tuple[str, int]:
    """Where to listen: the host and port of `spark.remote` (localhost:15002 without one), the
    port replaced by `--port`."""
    host, configured = connect_address(remote) if remote else (DEFAULT_HOST, CONNECT_DEFAULT_PORT)
    return host, port or configured


def connect_conf(host: str, port: int) -> dict[str, str]:
    return {"spark.connect.grpc.binding.address": host, "spark.connect.grpc.binding.port": str(port)}


def warm_up(ctx: JobContext) -> int:
    """Read one row of every table c360 wrote to the warehouse (the tables `c360 maintain` keeps):
    Delta loads each table's state, the JVM compiles the read path. The number of tables read."""
    found = maintained_tables(ctx)
    for name in found:
        ctx.warehouse.read(ctx.spark, name).limit(1).collect()
    return len(found)


def serve(ctx: JobContext, port: int | None, say: Callable[[str], None],
          stop: threading.Event | None = None) -> StageResult:
    """Run the server until `stop` is set (SIGTERM and SIGINT set it)."""
    host, port = server_address(ctx.config.spark.remote, port)
    started = time.monotonic()
    spark = build_spark(ctx.config.spark, extra_conf=connect_conf(host, port))
    ctx._spark = spark  # the command line stops it when serving ends
    service = spark.sparkContext._jvm.org.apache.spark.sql.connect.service.SparkConnectService
    service.start(spark.sparkContext._jsc.sc())
    tables = warm_up(ctx)
    stop = stop or threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    say(f"c360 serve: Spark Connect at sc://{host}:{port} for {ctx.warehouse.root} ({tables} tables read, "
        f"ready in {time.monotonic() - started:.1f}s); read commands ask it with --remote sc://{host}:{port} "
        "(or spark.remote in their config). Ctrl-C or SIGTERM stops it.")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        none = spark.sparkContext._jvm.scala.Option.empty()
        service.stop(none, none)  # stop(timeout = None, unit = None): Scala's defaults, spelled out for py4j
    say("c360 serve: stopped")
    return StageResult(metrics={"tables_warmed": tables})

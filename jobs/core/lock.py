"""One writing run per warehouse at a time: a lease committed to a Delta table.

Every `c360` command that writes the warehouse (the stages, `nightly`) first takes the lease: a row
of `<warehouse>/_control/run_lock` with who holds it (command, run date, host, pid, start time, a
token). Taking it is a MERGE that inserts the row only when none is there. Two runs that try at once
both read an empty table, and Delta lets only the first commit through: the second fails its commit
with a concurrency conflict (the table is Serializable). It then reads the row the first wrote and
stops with WarehouseLocked. The holder deletes its row when it ends, failed or not.

A run killed outright (SIGKILL, a lost machine) leaves its row behind. The next run reports that
lease, says when the holder's process is gone (same host, no such pid), and names the command that
clears it, `c360 unlock --force`. It never breaks the lease itself: a second nightly writing the same
tables as a live one would corrupt both nights.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType, TimestampType

from jobs.core.errors import C360Error
from jobs.core.session import literal_row
from jobs.core.tables import Warehouse

LOCK_TABLE = "_control/run_lock"
LOCK_NAME = "warehouse"
LOCK_SCHEMA = StructType([
    StructField("lock", StringType()), StructField("token", StringType()), StructField("command", StringType()),
    StructField("run_date", DateType()), StructField("host", StringType()), StructField("pid", LongType()),
    StructField("started_at", TimestampType()),
])
# Any concurrent commit that adds a row conflicts with a MERGE that read the table (not only one
# that would have matched under WriteSerializable's blind-append exemption).
LOCK_PROPERTIES = {"delta.isolationLevel": "Serializable"}
UNLOCK_COMMAND = "c360 unlock --force"
ATTEMPTS = 6
# Pause before the next attempt, doubled each time (0.5 + 1 + 2 + 4 + 8 s in all): long enough for a
# run that is creating the lock table to commit it.
FIRST_PAUSE_S = 0.5


@dataclass(frozen=True)
class Holder:
    token: str
    command: str
    run_date: dt.date
    host: str
    pid: int
    started_at: dt.datetime

    def describe(self) -> str:
        return (f"`c360 {self.command}` for {self.run_date}, pid {self.pid} on {self.host}, "
                f"since {self.started_at:%Y-%m-%d %H:%M:%S} UTC")

    def gone(self) -> bool | None:
        """True when the holder's process is certainly gone (this host, no such pid), None when
        this host cannot tell (another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # the pid exists, run by another user
            return False
        return False


class WarehouseLocked(C360Error):
    """Another run holds the warehouse's lease (module docstring)."""

    def __init__(self, warehouse: str, holder: Holder):
        gone = holder.gone()
        if gone:
            state = ("that process is gone (killed or crashed), so its lease is stale: check no c360 run is "
                     f"writing {warehouse}, then clear it with `{UNLOCK_COMMAND}` and run again")
        elif gone is None:
            state = (f"it runs on another host; wait for it, or if it is no longer running, clear the lease "
                     f"with `{UNLOCK_COMMAND}`")
        else:
            state = "it is still running: wait for it to finish"
        super().__init__(f"the warehouse {warehouse} is in use by {holder.describe()}; {state}")
        self.holder = holder


def _table(spark: SparkSession, wh: Warehouse) -> DeltaTable:
    path = wh.path(LOCK_TABLE)
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(LOCK_SCHEMA)
    for key, value in LOCK_PROPERTIES.items():
        builder = builder.property(key, value)
    return builder.execute()


def holders(spark: SparkSession, wh: Warehouse) -> list[Holder]:
    """The lease's holder (at most one), [] when the warehouse is free."""
    if not DeltaTable.isDeltaTable(spark, wh.path(LOCK_TABLE)):
        return []
    rows = spark.read.format("delta").load(wh.path(LOCK_TABLE)).collect()  # at most one row
    return [Holder(r["token"], r["command"], r["run_date"], r["host"], r["pid"], r["started_at"]) for r in rows]


# What Delta raises when another run committed first: to the lease row (ConcurrentAppendException),
# or, on a new warehouse, to the lock table's creation (its first commit file exists already), or
# while another run is creating it (its folder or its _delta_log folder has files, its first commit
# is not there yet).
NOT_YET_A_TABLE = (
    "DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION", "DELTA_TABLE_NOT_FOUND", "DELTA_MISSING_DELTA_TABLE")
LOST_RACE = ("ConcurrentAppend", "DELTA_CONCURRENT", "ProtocolChanged", "DELTA_PROTOCOL_CHANGED", "MetadataChanged",
             "FileAlreadyExists", *NOT_YET_A_TABLE)


class LeaseUnavailable(C360Error):
    """The lease could be neither taken nor found held, attempt after attempt."""


def _conflict(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return any(marker in text for marker in LOST_RACE)


def acquire(spark: SparkSession, wh: Warehouse, command: str, run_date: dt.date) -> Holder:
    """Take the warehouse's lease for `command` or raise WarehouseLocked naming its holder.

    A lost race with no holder to name (the winner is still creating the lock table, or had already
    finished) is tried again after a pause; LeaseUnavailable when every attempt ends that way."""
    lost: Exception | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(FIRST_PAUSE_S * 2 ** (attempt - 1))
        holder, held, lost = _try_acquire(spark, wh, command, run_date)
        if holder is not None:
            return holder
        if held:
            raise WarehouseLocked(wh.root, held[0])
    path = wh.path(LOCK_TABLE)
    if lost is not None and any(marker in str(lost) for marker in NOT_YET_A_TABLE):
        raise LeaseUnavailable(
            f"cannot take the lease of the warehouse {wh.root}: {path} holds files but is not a Delta table "
            "(a run killed while creating it?); check no c360 run is writing the warehouse, remove that folder "
            "and run again")
    raise LeaseUnavailable(f"cannot take the lease of the warehouse {wh.root}: {ATTEMPTS} attempts each lost a "
                           f"race to another run that had ended before it could be named; run again")


def _try_acquire(spark: SparkSession, wh: Warehouse, command: str, run_date: dt.date
                 ) -> tuple[Holder | None, list[Holder], Exception | None]:
    """(me, []) when this run took the lease; (None, holders, the lost race's error) otherwise."""
    me = Holder(uuid.uuid4().hex, command, run_date, socket.gethostname(), os.getpid(),
                dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0))
    row = literal_row(spark, LOCK_SCHEMA, (LOCK_NAME, me.token, me.command, me.run_date, me.host, me.pid,
                                           me.started_at))
    lost: Exception | None = None
    try:
        table = _table(spark, wh)
        (table.alias("t").merge(row.alias("s"), F.col("t.lock") == F.col("s.lock"))
         .whenNotMatchedInsertAll().execute())
    except Exception as exc:  # noqa: BLE001 - only a lost race is expected; anything else is raised
        if not _conflict(exc):
            raise
        lost = exc
    held = holders(spark, wh)
    if len(held) == 1 and held[0].token == me.token:
        return me, [], None
    return None, held, lost


def release(spark: SparkSession, wh: Warehouse, holder: Holder) -> None:
    """Give the lease back (only `holder`'s own row is deleted)."""
    DeltaTable.forPath(spark, wh.path(LOCK_TABLE)).delete(F.col("token") == F.lit(holder.token))


@contextlib.contextmanager
def held(spark: SparkSession, wh: Warehouse, command: str, run_date: dt.date,
         jvm_alive: Callable[[], bool] = lambda: True) -> Iterator[Holder]:
    """The lease for the block; given back however the block ends, unless the block failed because
    the JVM died (`jvm_alive()` false: calling it would only add py4j's connection errors to the
    terminal). A failure to give it back never hides the block's own error; the lease then stays,
    and the next run reports it as stale."""
    holder = acquire(spark, wh, command, run_date)
    try:
        yield holder
    except BaseException:
        if jvm_alive():
            with contextlib.suppress(Exception):
                release(spark, wh, holder)
        raise
    release(spark, wh, holder)


def force_unlock(spark: SparkSession, wh: Warehouse) -> list[Holder]:
    """Delete whatever lease is held; returns what was there (for the message)."""
    found = holders(spark, wh)
    if found:
        DeltaTable.forPath(spark, wh.path(LOCK_TABLE)).delete(F.col("lock") == F.lit(LOCK_NAME))
    return found

"""jobs.core.lock: one writing run per warehouse, a lease committed to Delta."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from jobs.core import lock
from jobs.core.tables import Warehouse

RUN_DATE = dt.date(2026, 2, 1)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def _plant(spark, wh: Warehouse, host: str, pid: int) -> None:
    """A lease as a run on `host` with `pid` left it (written like acquire does, without its checks)."""
    lock._table(spark, wh)
    row = [(lock.LOCK_NAME, "t0", "nightly", RUN_DATE, host, pid, dt.datetime(2026, 2, 1, 2, 0, 0))]
    spark.createDataFrame(row, lock.LOCK_SCHEMA).write.format("delta").mode("append").save(wh.path(lock.LOCK_TABLE))


def test_a_held_lease_turns_the_second_run_away_until_it_is_given_back(spark, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    assert lock.holders(spark, wh) == []
    with lock.held(spark, wh, "nightly", RUN_DATE) as me:
        assert lock.holders(spark, wh) == [me]
        assert (me.command, me.run_date, me.host, me.pid) == ("nightly", RUN_DATE, socket.gethostname(), os.getpid())
        with pytest.raises(lock.WarehouseLocked) as refused:
            lock.acquire(spark, wh, "stitch", RUN_DATE)
        assert str(refused.value) == (
            f"the warehouse {wh.root} is in use by `c360 nightly` for 2026-02-01, pid {os.getpid()} on "
            f"{socket.gethostname()}, since {me.started_at:%Y-%m-%d %H:%M:%S} UTC; it is still running: "
            "wait for it to finish")
    assert lock.holders(spark, wh) == []
    with lock.held(spark, wh, "stitch", RUN_DATE) as again:
        assert lock.holders(spark, wh) == [again] and again.token != me.token


def test_a_failed_run_gives_the_lease_back_and_keeps_its_error(spark, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    with pytest.raises(ZeroDivisionError):
        with lock.held(spark, wh, "nightly", RUN_DATE):
            1 / 0
    assert lock.holders(spark, wh) == []


def test_a_lease_left_by_a_dead_process_is_reported_as_stale_and_cleared_only_by_force(spark, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    pid = _dead_pid()
    _plant(spark, wh, socket.gethostname(), pid)
    with pytest.raises(lock.WarehouseLocked) as refused:
        lock.acquire(spark, wh, "nightly", RUN_DATE)
    assert str(refused.value) == (
        f"the warehouse {wh.root} is in use by `c360 nightly` for 2026-02-01, pid {pid} on {socket.gethostname()}, "
        "since 2026-02-01 02:00:00 UTC; that process is gone (killed or crashed), so its lease is stale: check no "
        f"c360 run is writing {wh.root}, then clear it with `c360 unlock --force` and run again")
    assert [h.pid for h in lock.holders(spark, wh)] == [pid], "reported, never broken silently"
    assert [h.pid for h in lock.force_unlock(spark, wh)] == [pid]
    with lock.held(spark, wh, "nightly", RUN_DATE):
        pass


def test_a_lease_held_on_another_host_says_it_cannot_tell(spark, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    _plant(spark, wh, "elsewhere.example", 4242)
    with pytest.raises(lock.WarehouseLocked, match="pid 4242 on elsewhere.example, since 2026-02-01 02:00:00 UTC; "
                                                   "it runs on another host; wait for it, or if it is no longer "
                                                   "running, clear the lease with `c360 unlock --force`"):
        lock.acquire(spark, wh, "nightly", RUN_DATE)


@pytest.mark.parametrize("attempt", [1, 2])
def test_two_runs_that_start_together_get_one_lease(spark, tmp_path, attempt):
    wh = Warehouse(tmp_path / "wh")
    lock._table(spark, wh)  # both then race on the commit, not on creating the table
    start = threading.Barrier(2)
    won, refused, failed = [], [], []

    def run(command: str) -> None:
        start.wait()
        try:
            won.append(lock.acquire(spark, wh, command, RUN_DATE))
        except lock.WarehouseLocked as exc:
            refused.append(exc.holder)
        except Exception as exc:  # noqa: BLE001 - reported below
            failed.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("nightly", "ingest")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failed == [] and len(won) == 1 and refused == won, (won, refused, failed)
    assert lock.holders(spark, wh) == won



# The lock table's folder as another run leaves it while it creates the table, before its first
# commit: a file in the folder (Delta: "not empty and not a Delta table"), or in its _delta_log
# (Delta: "doesn't exist").
HALF_MADE = ["part-00000.snappy.parquet", "_delta_log/.00000000000000000000.json.tmp", "_delta_log/_commits/x"]


def _half_created(wh: Warehouse, stray: str) -> str:
    path = os.path.join(wh.path(lock.LOCK_TABLE), stray)
    os.makedirs(os.path.dirname(path))
    open(path, "w").close()
    return path


@pytest.mark.parametrize("stray", HALF_MADE)
def test_a_lock_table_being_created_by_another_run_is_waited_for(spark, tmp_path, stray):
    """The race CI found between two nightlies on a new warehouse: one run saw the other's half-made
    lock table. It now pauses and tries again."""
    wh = Warehouse(tmp_path / "wh")
    stray = _half_created(wh, stray)

    def other_run_commits() -> None:  # its table, made where its half-made folder was
        shutil.rmtree(wh.path(lock.LOCK_TABLE))
        lock._table(spark, wh)

    creator_done = threading.Timer(1.5, other_run_commits)
    creator_done.start()
    try:
        with lock.held(spark, wh, "nightly", RUN_DATE) as me:
            assert not os.path.exists(stray), "the lease was taken only once the table could be created"
            assert lock.holders(spark, wh) == [me]
    finally:
        creator_done.cancel()
        creator_done.join()
    assert lock.holders(spark, wh) == []


@pytest.mark.parametrize("stray", HALF_MADE)
def test_a_lock_table_left_half_made_is_named_after_every_attempt(spark, tmp_path, monkeypatch, stray):
    monkeypatch.setattr(lock, "FIRST_PAUSE_S", 0.05)
    wh = Warehouse(tmp_path / "wh")
    _half_created(wh, stray)
    with pytest.raises(lock.LeaseUnavailable) as refused:
        lock.acquire(spark, wh, "nightly", RUN_DATE)
    assert str(refused.value) == (
        f"cannot take the lease of the warehouse {wh.root}: {wh.path(lock.LOCK_TABLE)} holds files but is not a "
        "Delta table (a run killed while creating it?); check no c360 run is writing the warehouse, remove that "
        "folder and run again")

"""The command line: exit status 2 with one clear paragraph for bad input or configuration, and the
JVM's output (logs, stack traces) kept off the terminal even when Spark fails. Runs the real
console script in a subprocess, as a user would."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.core.config import REPO_ROOT

# Runs `c360` in a fresh process, as a user does: not part of `make test-fast`.
pytestmark = pytest.mark.subprocess

C360 = str(Path(sys.executable).parent / "c360")
JVM_NOISE = ("\tat ", "Exception in thread", "py4j", "Traceback", "org.apache.spark", "WARN ", "INFO ")


def c360(*args: str, offline: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [C360, *args]
    if offline:
        # A fresh network namespace: only a loopback interface, no route anywhere.
        cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$@"', "c360", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def assert_clean_terminal(proc: subprocess.CompletedProcess) -> None:
    for stream in (proc.stdout, proc.stderr):
        for noise in JVM_NOISE:
            assert noise not in stream, f"{noise!r} reached the terminal:\n{stream}"


def one_event_input(tmp_path: Path, **properties) -> Path:
    """An input folder (`tmp_path/in`) with one valid track event, with these properties if any."""
    events = tmp_path / "in" / "events"
    events.mkdir(parents=True)
    line = {"messageId": "m1", "type": "track", "event": "X", "userId": "u", "timestamp": "2026-01-01T00:00:00Z"}
    if properties:
        line["properties"] = properties
    (events / "a.jsonl").write_text(json.dumps(line) + "\n")
    return tmp_path / "in"


def test_unknown_config_key_exits_2(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("spark:\n  shuffle_partitons: 4\n")
    proc = c360("ingest", "--input", str(tmp_path), "--config", str(bad))
    assert proc.returncode == 2
    assert "bad.yml: unknown key 'spark.shuffle_partitons' (did you mean 'spark.shuffle_partitions'?)" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert_clean_terminal(proc)


@pytest.mark.parametrize("args, message", [
    (["segments", "--remote", "sc://localhost:1"],
     "c360 segments: error: --remote is for the read-only commands (lens, identity explain, segments preview); "
     "`c360 segments` writes the warehouse and starts its own Spark"),
    (["lens", "query", "--model", "m.yml", "--measure", "a.b", "--remote", "http://localhost:1"],
     "c360 lens: error: '--remote' must be a Spark Connect URL such as sc://localhost:15002, got 'http://localhost:1'"),
])
def test_a_remote_that_cannot_be_used_exits_2_before_spark(tmp_path, args, message):
    proc = c360(*args, "--warehouse", str(tmp_path / "wh"))
    assert (proc.returncode, proc.stderr.strip()) == (2, message)


def test_serve_listens_where_spark_remote_says():
    from jobs.commands.serve import connect_conf, server_address

    assert server_address(None, None) == ("localhost", 15002)
    assert server_address("sc://127.0.0.1:16000", None) == ("127.0.0.1", 16000)
    assert server_address("sc://127.0.0.1:16000", 17000) == ("127.0.0.1", 17000)
    assert connect_conf("localhost", 15002) == {"spark.connect.grpc.binding.address": "localhost",
                                                 "spark.connect.grpc.binding.port": "15002"}


def test_missing_input_folder_exits_2(tmp_path):
    proc = c360("ingest", "--input", str(tmp_path / "missing"), "--warehouse", str(tmp_path / "wh"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"c360 ingest: error: input folder {tmp_path / 'missing'} does not exist"


def test_bad_run_date_exits_2(tmp_path):
    proc = c360("ingest", "--input", str(tmp_path), "--run-date", "2026-13-01")
    assert proc.returncode == 2
    assert "--run-date must be YYYY-MM-DD, got '2026-13-01'" in proc.stderr


def test_warehouse_that_is_a_file_exits_2(tmp_path):
    (tmp_path / "wh").write_text("")
    proc = c360("ingest", "--input", str(tmp_path), "--warehouse", str(tmp_path / "wh"))
    assert proc.returncode == 2
    assert "is a file, not a folder" in proc.stderr


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare to cut the network")
def test_offline_run_and_spark_failure_stay_off_the_terminal(tmp_path):
    """With no network at all, a session starts (jars are local); when Spark then fails on a broken
    Delta table, the user sees one line naming the log, and the log holds the JVM trace."""
    raw = one_event_input(tmp_path)
    wh = tmp_path / "wh"
    ok = c360("ingest", "--input", str(raw), "--warehouse", str(wh), "--run-date", "2026-01-01", offline=True)
    if ok.returncode != 0 and "unshare failed" in ok.stderr:
        pytest.skip("network namespaces are not permitted here")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ingest: lines_read=1, accepted=1, duplicates=0, quarantined=0")
    assert_clean_terminal(ok)

    # Corrupt the bronze table's log: Spark fails deep in the JVM (landing the next day's file).
    for commit in (wh / "bronze" / "events" / "_delta_log").glob("*.json"):
        commit.write_text("{not json")
    next_day = one_event_input(tmp_path / "next", day=2)  # other bytes: not a re-delivery
    broken = c360("ingest", "--input", str(next_day), "--warehouse", str(wh), "--run-date", "2026-01-02", offline=True)
    assert broken.returncode == 1
    assert broken.stderr.startswith("c360 ingest: failed: ")
    assert broken.stderr.count("\n") == 1
    assert_clean_terminal(broken)
    log = wh / "_logs" / "ingest-2026-01-02.log"
    assert "Traceback" in log.read_text()


def _descendants(pid: int) -> list[int]:
    """Every process under `pid` (from /proc), children first."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found.extend(children)
        frontier = children
    return found


def _is_java(pid: int) -> bool:
    try:
        return b"java" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False


def test_a_jvm_that_dies_mid_night_ends_in_one_paragraph_and_exit_1(tmp_path):
    """The JVM killed during a stage (as the kernel's out-of-memory killer does): the user sees what
    died, in which stage, the log and the setting to raise, in one paragraph; exit status 1."""
    import os
    import signal
    import time

    raw = one_event_input(tmp_path)
    wh = tmp_path / "wh"
    proc = subprocess.Popen([C360, "nightly", "--input", str(raw), "--warehouse", str(wh),
                             "--run-date", "2026-01-01"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    printed = []
    for out_line in proc.stdout:
        printed.append(out_line)
        if out_line.startswith("[2/7] stitch"):
            jvms = [pid for pid in _descendants(proc.pid) if _is_java(pid)]
            assert len(jvms) == 1, jvms
            os.kill(jvms[0], signal.SIGKILL)
            break
    else:
        pytest.fail("the nightly never reached stitch:\n" + "".join(printed) + proc.stderr.read())
    started = time.monotonic()
    stdout, stderr = proc.communicate(timeout=120)
    assert time.monotonic() - started < 60
    assert proc.returncode == 1, stderr
    log = wh / "_logs" / "nightly-2026-01-01.log"
    assert stderr == (
        "c360 nightly: failed during stage stitch: the Spark JVM was killed by signal 9 (SIGKILL) while the stage "
        "was running, with no error from Spark itself (the operating system kills the largest process when the "
        "machine runs out of memory). "
        f"The full log is {log}. Check the machine's free memory (dmesg shows the kernel's out-of-memory kills); "
        f"spark.driver_memory in {REPO_ROOT / 'conf' / 'local.yml'} (now 4g) must fit in it with room for Python.\n")
    assert_clean_terminal(subprocess.CompletedProcess(proc.args, proc.returncode, "".join(printed) + stdout, stderr))
    assert "Traceback" in log.read_text()


def test_a_heap_that_runs_out_names_the_setting_to_raise(tmp_path):
    """A real java.lang.OutOfMemoryError: one 250 MB event line in a 512 MB driver."""
    raw = one_event_input(tmp_path, note="x" * (250 * 1024 * 1024))
    config = tmp_path / "small.yml"
    config.write_text("spark:\n  driver_memory: 512m\n")
    wh = tmp_path / "wh"
    proc = c360("nightly", "--input", str(raw), "--warehouse", str(wh), "--config", str(config),
                "--run-date", "2026-01-01")
    (raw / "events" / "a.jsonl").unlink()
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        "c360 nightly: failed during stage ingest: the Spark JVM ran out of memory (java.lang.OutOfMemoryError: "
        f"Java heap space). The full log is {wh / '_logs' / 'nightly-2026-01-01.log'}. Raise spark.driver_memory in "
        f"{config} (now 512m; in local mode it is the memory of every task), or lower "
        "spark.conf.spark.sql.files.maxPartitionBytes so each task reads less.\n")
    assert_clean_terminal(proc)


class _DeadJvmError(Exception):
    """Like a Py4JJavaError whose JVM has exited: reading its message asks that JVM, and fails."""

    def __str__(self) -> str:
        raise ConnectionRefusedError(111, "Connection refused")


def test_an_error_whose_message_needs_a_dead_jvm_is_still_reported():
    from jobs.cli import _failure_message
    from jobs.core.errors import StageFailed

    try:
        try:
            raise _DeadJvmError()
        except _DeadJvmError as cause:
            raise StageFailed("ingest") from cause
    except StageFailed as exc:
        message = _failure_message("nightly", exc, None, Path("/w/_logs/nightly.log"), 0)
    assert message == ("c360 nightly: failed during stage ingest: _DeadJvmError (its message could not be read: "
                       "the Spark JVM has exited) (full details in /w/_logs/nightly.log)")


def test_a_stale_lease_is_reported_until_cleared_then_of_two_nightlies_at_once_one_runs(spark, tmp_path):
    """A run killed outright leaves its lease: the next nightly says so and how to clear it (exit 2),
    `c360 unlock` shows it and clears it only with --force. Then, on a new warehouse (both race to
    create its lease table), two `c360 nightly` started together: one takes the warehouse's lease and
    finishes; the other stops at once with exit status 2, naming the run that holds the warehouse
    (jobs.core.lock)."""
    from jobs.core.tables import Warehouse
    from tests.core.test_lock import _dead_pid, _plant

    import socket

    raw = one_event_input(tmp_path)
    wh = tmp_path / "wh"
    pid = _dead_pid()
    _plant(spark, Warehouse(wh), socket.gethostname(), pid)
    held_by = f"`c360 nightly` for 2026-02-01, pid {pid} on {socket.gethostname()}, since 2026-02-01 02:00:00 UTC"
    nightly = ("nightly", "--input", str(raw), "--warehouse", str(wh), "--run-date", "2026-01-01")

    refused = c360(*nightly)
    assert (refused.returncode, refused.stderr) == (2, (
        f"c360 nightly: error: the warehouse {wh} is in use by {held_by}; that process is gone (killed or "
        f"crashed), so its lease is stale: check no c360 run is writing {wh}, then clear it with "
        "`c360 unlock --force` and run again\n")), refused.stdout
    shown = c360("unlock", "--warehouse", str(wh))
    assert (shown.returncode, shown.stderr) == (2, (
        f"c360 unlock: error: {wh} is held by {held_by}; add --force to clear the lease (only when that run is "
        "no longer writing)\n"))
    cleared = c360("unlock", "--force", "--warehouse", str(wh))
    assert (cleared.returncode, cleared.stdout) == (0, f"c360 unlock: cleared the lease of {held_by} on {wh}\n")
    free = c360("unlock", "--warehouse", str(wh))
    assert (free.returncode, free.stdout) == (0, f"c360 unlock: {wh} is not locked\n"), free.stderr

    wh = tmp_path / "new-wh"
    args = [C360, "nightly", "--input", str(raw), "--warehouse", str(wh), "--run-date", "2026-01-01"]
    procs = [subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [proc.communicate(timeout=900) for proc in procs]
    assert sorted(p.returncode for p in procs) == [0, 2], outs
    winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
    stdout, stderr = outs[loser]
    assert stderr.startswith(
        f"c360 nightly: error: the warehouse {wh} is in use by `c360 nightly` for 2026-01-01, "
        f"pid {procs[winner].pid} on {socket.gethostname()}, since "), stderr
    assert stderr.endswith(" UTC; it is still running: wait for it to finish\n"), stderr
    assert "[1/7]" not in stdout, "the second run wrote nothing"
    assert "c360 nightly 2026-01-01 finished" in outs[winner][0]
    assert_clean_terminal(subprocess.CompletedProcess(args, 2, stdout, stderr))
    free = c360("unlock", "--warehouse", str(wh), "--run-date", "2026-01-01")
    assert (free.returncode, free.stdout) == (0, f"c360 unlock: {wh} is not locked\n"), free.stderr

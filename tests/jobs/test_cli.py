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


def test_unknown_config_key_exits_2(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("spark:\n  shuffle_partitons: 4\n")
    proc = c360("ingest", "--input", str(tmp_path), "--config", str(bad))
    assert proc.returncode == 2
    assert "bad.yml: unknown key 'spark.shuffle_partitons' (did you mean 'spark.shuffle_partitions'?)" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert_clean_terminal(proc)


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
    events = tmp_path / "in" / "events"
    events.mkdir(parents=True)
    line = {"messageId": "m1", "type": "track", "event": "X", "userId": "u", "timestamp": "2026-01-01T00:00:00Z"}
    (events / "a.jsonl").write_text(json.dumps(line) + "\n")
    wh = tmp_path / "wh"
    ok = c360("ingest", "--input", str(tmp_path / "in"), "--warehouse", str(wh), "--run-date", "2026-01-01", offline=True)
    if ok.returncode != 0 and "unshare failed" in ok.stderr:
        pytest.skip("network namespaces are not permitted here")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ingest: lines_read=1, accepted=1, duplicates=0, quarantined=0")
    assert_clean_terminal(ok)

    # Corrupt the bronze table's log: Spark fails deep in the JVM.
    for commit in (wh / "bronze" / "events" / "_delta_log").glob("*.json"):
        commit.write_text("{not json")
    broken = c360("ingest", "--input", str(tmp_path / "in"), "--warehouse", str(wh), "--run-date", "2026-01-02", offline=True)
    assert broken.returncode == 1
    assert broken.stderr.startswith("c360 ingest: failed: ")
    assert broken.stderr.count("\n") == 1
    assert_clean_terminal(broken)
    log = wh / "_logs" / "ingest-2026-01-02.log"
    assert "Traceback" in log.read_text()

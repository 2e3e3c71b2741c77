"""The README's spark-submit command against a real standalone Spark cluster (a master and one worker
on loopback), with the cluster-style config: no master in config, jars shipped with --jars, the code
with --py-files. Executors write the Delta files, so this checks what local mode cannot."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest

from jobs.config import REPO_ROOT
from jobs.dist import build

BIN = Path(sys.executable).parent
# pip's pyspark is a complete Spark distribution; its launcher scripts need SPARK_HOME to find it.
SPARK_ENV = {"SPARK_HOME": str(Path(pyspark.__file__).parent), "SPARK_LOCAL_IP": "127.0.0.1",
             "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, **SPARK_ENV, "SPARK_NO_DAEMONIZE": "1"}
    return subprocess.Popen([str(BIN / "spark-class"), *args], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)


def _wait_for(log: Path, text: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"{log.name} exited:\n{log.read_text()[-2000:]}")
        time.sleep(1)
    raise AssertionError(f"'{text}' not in {log.name} after {STARTUP_SECONDS}s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("cluster")
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master = _start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                     "--webui-port", str(_free_port())], logs / "master.log")
    procs = [master]
    try:
        _wait_for(logs / "master.log", "I have been elected leader", master)
        worker = _start(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
                         "--memory", "1g", "--webui-port", str(_free_port()), "--work-dir", str(logs / "work"), url],
                        logs / "worker.log")
        procs.append(worker)
        _wait_for(logs / "worker.log", "Successfully registered with master", worker)
        yield url
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


@pytest.mark.slow
def test_spark_submit_runs_ingest_on_a_standalone_cluster(standalone_cluster, tmp_path):
    events = tmp_path / "raw" / "events"
    events.mkdir(parents=True)
    lines = [{"messageId": f"m{i}", "type": "track", "event": "Order Placed", "userId": f"u{i % 3}",
              "timestamp": "2026-02-01T12:00:00+01:00"} for i in range(20)]
    (events / "day.jsonl").write_text("\n".join(json.dumps(line) for line in lines + lines[:5]) + "\n")
    config = tmp_path / "cluster.yml"
    config.write_text(
        f"warehouse: {tmp_path / 'wh'}\n"
        "spark:\n  master: null\n  shuffle_partitions: 2\n  jars_dir: null\n"
    )
    archive = build(tmp_path / "c360.zip")
    jars = ",".join(str(p) for p in sorted((REPO_ROOT / ".jars").glob("*.jar")))
    cmd = [str(BIN / "spark-submit"), "--master", standalone_cluster, "--conf", "spark.driver.host=127.0.0.1",
           "--conf", "spark.executor.memory=768m", "--jars", jars, "--py-files", str(archive),
           str(REPO_ROOT / "jobs" / "cli.py"), "ingest", "--config", str(config), "--input", str(tmp_path / "raw"),
           "--run-date", "2026-02-01"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, **SPARK_ENV})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ingest: lines_read=25, accepted=20, duplicates=5, quarantined=0"), proc.stdout

    from deltalake import DeltaTable

    bronze = DeltaTable(str(tmp_path / "wh" / "bronze" / "events")).to_pyarrow_table()
    assert sorted(bronze.column("message_id").to_pylist()) == sorted(f"m{i}" for i in range(20))

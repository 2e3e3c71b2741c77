"""README's spark-submit command, taken from README.md: with `--master local[2]` (the ingest stage,
with the executors' log lines in the driver's log file; a bad config ends in one line, exit 2), and
against a real standalone Spark cluster (a master and two workers on loopback, separate JVMs) with
the cluster-style config: no master in config, jars shipped with --jars, the code with --py-files.
There the whole nightly (all 7 stages; the lens models and queries read from the --py-files zip;
identity's connected components computed on the executors, in several rounds of small buckets;
Spark's log lines in <warehouse>/_logs/, none on the terminal) runs for two dates (the second
incremental) into a warehouse given as a file:// URI, from the repo folder as README says (its paths
are relative), and every table and export equals a local-mode run of the same input. Executors write
the Delta files there, so that checks what local mode cannot."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import tarfile
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pyspark
import pytest
import yaml

from jobs.core.config import REPO_ROOT, load_config
from jobs.core.dist import build
from tests.test_readme_commands import JVM_NOTICE, SPARK_LOG_LINE, TRACE_MARKERS, readme_commands

# Runs `c360` in a fresh process, as a user does: not part of `make test-fast`.
pytestmark = pytest.mark.subprocess

BIN = Path(sys.executable).parent
# pip's pyspark is a complete Spark distribution; its launcher scripts need SPARK_HOME to find it.
SPARK_ENV = {"SPARK_HOME": str(Path(pyspark.__file__).parent), "SPARK_LOCAL_IP": "127.0.0.1",
             "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
STARTUP_SECONDS = 120
# Separate worker JVMs with one core each: every shuffle crosses processes, as on a real cluster.
WORKERS = 2


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
        for n in range(1, WORKERS + 1):
            log = logs / f"worker-{n}.log"
            worker = _start(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
                             "--memory", "1g", "--webui-port", str(_free_port()), "--work-dir",
                             str(logs / f"work-{n}"), url], log)
            procs.append(worker)
            _wait_for(log, "Successfully registered with master", worker)
        yield url
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------
# README's command
# ---------------------------------------------------------------------------------------------

RUN_DATE = "2026-02-01"


def readme_spark_submit() -> list[str]:
    """README's spark-submit command as words."""
    found = [c for c in readme_commands() if c.startswith("spark-submit ") and "--deploy-mode" not in c]
    assert len(found) == 1, found
    return shlex.split(found[0])


def readme_cluster_mode_submit(manager: str) -> list[str]:
    """README's `--deploy-mode cluster` command for `manager` ('yarn' or 'k8s') as words."""
    found = [shlex.split(c) for c in readme_commands()
             if c.startswith("spark-submit ") and "--deploy-mode cluster" in c and f"--master {manager}" in c]
    assert len(found) == 1, found
    return found[0]


def with_option(words: list[str], option: str, value: str) -> list[str]:
    """`words` with `option`'s value replaced (the option must be there)."""
    i = words.index(option)
    return [*words[:i + 1], value, *words[i + 2:]]


def readme_submit(master: str, archive: Path, app: list[str] | None = None, *, extra: tuple[str, ...] = (),
                  **replace: str) -> list[str]:
    """README's command as this test runs it: .venv's spark-submit, `master`, the archive built here,
    `extra` spark-submit flags, and README's stage arguments with `replace` (--config, --input, ...)
    or `app` instead; every other flag as README has it. Run it with cwd = the repo, as README says."""
    words = readme_spark_submit()
    words = with_option(with_option(words, "--master", master), "--py-files", str(archive))
    assert {"--driver-java-options", "--jars"} <= set(words), "README routes logs and ships the jars"
    script = words.index("jobs/cli.py")
    submit, args = words[1:script], words[script + 1:]
    if app is None:
        for option, value in replace.items():
            args = with_option(args, f"--{option.replace('_', '-')}", value)
    return [str(BIN / "spark-submit"), *submit, *extra, "jobs/cli.py", *(args if app is None else app)]


@pytest.mark.slow
def test_readme_spark_submit_runs_a_stage_with_the_local_master(tmp_path):
    """README's command with `--master local[2]`, as README says to try it on one machine: the
    executors run in the driver's JVM, so their log lines too must reach the log file, not the
    terminal. (The whole nightly runs on the standalone cluster below.)"""
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
    cmd = readme_submit("local[2]", build(tmp_path / "c360.zip"),
                        ["ingest", "--config", str(config), "--input", str(tmp_path / "raw"), "--run-date", RUN_DATE])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                          env={**os.environ, **SPARK_ENV})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith("ingest: lines_read=25, accepted=20, duplicates=5, quarantined=0"), proc.stdout
    assert_terminal_free_of_spark(proc)
    assert "Running Spark version" in (tmp_path / "wh" / "_logs" / f"ingest-{RUN_DATE}.log").read_text()

    from deltalake import DeltaTable

    bronze = DeltaTable(str(tmp_path / "wh" / "bronze" / "events")).to_pyarrow_table()
    assert sorted(bronze.column("message_id").to_pylist()) == sorted(f"m{i}" for i in range(20))


# The cluster runs identity's connected components on its executors, in buckets this small, so the
# test graph (a few hundred edges) takes several rounds of Python workers on both worker JVMs.
CLUSTER_TEST_BUCKET_EDGES = 16


def cluster_config_for_tests(path: Path) -> Path:
    """conf/cluster.yml (lens.materialize and all), sized for 2 cores, with the components computed
    on the executors (local_threshold 0) in small buckets."""
    data = yaml.safe_load((REPO_ROOT / "conf" / "cluster.yml").read_text())
    data["spark"]["shuffle_partitions"] = 2
    data["spark"].setdefault("conf", {})["spark.databricks.delta.snapshotPartitions"] = 1
    data["identity"].update(local_threshold=0, partition_edges=CLUSTER_TEST_BUCKET_EDGES)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def what_the_tables_follow(config) -> dict:
    """A config's settings but those of where and how Spark runs: the warehouse, `spark:`, and
    identity.local_threshold, partition_edges and checkpoints (where and in what pieces the
    components are computed and where stitch keeps its intermediate results, not what they are)."""
    data = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("warehouse", "spark", "source")}
    data["identity"].pop("local_threshold")
    data["identity"].pop("partition_edges")
    data["identity"].pop("checkpoints")
    return data


def assert_terminal_free_of_spark(proc: subprocess.CompletedProcess) -> None:
    for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        assert not SPARK_LOG_LINE.search(text), f"Spark log lines on {name}:\n{text[-3000:]}"
        assert not any(m in text for m in TRACE_MARKERS), f"a stack trace on {name}:\n{text[-3000:]}"
    rest = [line for line in proc.stderr.splitlines() if line.strip() and line != JVM_NOTICE]
    assert rest == [], f"stderr carries more than c360's own messages:\n{proc.stderr[-3000:]}"


def test_the_archive_reads_lens_files_and_conf_from_inside_the_zip(tmp_path):
    """With the packages imported from dist/c360.zip (as under spark-submit) and no checkout to fall
    back on, conf/cluster.yml's lens.materialize models and queries load from the zip."""
    archive = build(tmp_path / "dist" / "c360.zip")
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"jobs/cli.py", "lens/queries/rfm.yml", "conf/cluster.yml", "conf/log4j2.properties"} <= names
    probe = textwrap.dedent(f"""
        import jobs, sys
        from pathlib import Path
        assert jobs.__file__.startswith({str(archive)!r}), jobs.__file__
        from jobs.core.config import load_config, packaged_file
        from lens.model import load_model
        from lens.query_format import load_query
        cfg = load_config(packaged_file("conf/cluster.yml"))
        assert cfg.lens.materialize
        for m in cfg.lens.materialize:
            assert m.model_path().is_file() and not m.model_path().is_relative_to({str(REPO_ROOT)!r}), m
            load_model(m.model_path()); load_query(m.query_path(), m.variant)
        own = Path("mine.yml"); own.write_text(m.query_path().read_text())
        user = load_config(overrides={{"lens": {{"materialize": [{{"name": "x", "model": "/nope/m.yml", "query": "mine.yml"}}]}}}})
        item = user.lens.materialize[0]
        assert str(item.model_path()) == "/nope/m.yml" and item.query_path() == own.resolve(), item
        print("ok", len(cfg.lens.materialize))
    """)
    env = {**os.environ, "PYTHONPATH": str(archive)}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-3000:]


@pytest.mark.slow
def test_what_the_driver_jvm_prints_past_log4j_lands_in_the_log_not_on_the_terminal(tmp_path):
    """Under spark-submit the driver JVM's System.err is the terminal. Some of Spark's shutdown paths
    print there directly, not through log4j (Scala's default reporter prints a failed RPC callback's
    stack trace; seen on the two-worker cluster under load). Once c360 routes the logs, such output
    goes to the run's log file; c360's own lines still reach the terminal."""
    log_file = tmp_path / "_logs" / "probe.log"
    app = tmp_path / "probe.py"
    app.write_text(textwrap.dedent(f"""
        import os, sys
        from jobs.core.session import LOG_FILE_ENV, build_spark
        from jobs.core.config import load_config
        os.environ[LOG_FILE_ENV] = {str(log_file)!r}
        spark = build_spark(load_config().spark)
        spark._jvm.java.lang.Throwable("c360 probe: printed past log4j").printStackTrace()
        spark._jvm.java.lang.System.err.flush()
        print("probe done")
        spark.stop()
    """))
    log_file.parent.mkdir()
    cmd = readme_submit("local[1]", build(tmp_path / "c360.zip"), app=[])
    cmd[cmd.index("jobs/cli.py")] = str(app)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                          env={**os.environ, **SPARK_ENV})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["probe done"], proc.stdout[-3000:]
    assert_terminal_free_of_spark(proc)
    logged = log_file.read_text()
    assert "java.lang.Throwable: c360 probe: printed past log4j" in logged, logged[-3000:]
    assert "Running Spark version" in logged, logged[-3000:]


@pytest.mark.slow
def test_readme_spark_submit_with_a_bad_config_exits_2_with_one_line(tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text("spark:\n  master: null\n  mastr: local[2]\n")
    cmd = readme_submit("local[2]", build(tmp_path / "c360.zip"), config=str(config), input=str(tmp_path))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                          env={**os.environ, **SPARK_ENV})
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    # spark-submit runs Python with its stderr merged into stdout, so c360's message arrives there.
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip() and line != JVM_NOTICE]
    assert said == [f"c360 nightly: error: {config}: unknown key 'spark.mastr' (did you mean 'spark.master'?)"], \
        proc.stdout[-3000:] + proc.stderr[-3000:]


# ---------------------------------------------------------------------------------------------
# The whole nightly on the two-worker cluster, two dates, against local mode
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_whole_nightly_on_a_two_worker_cluster_equals_local_mode(standalone_cluster, spark, two_nights, tmp_path):
    """README's spark-submit against the standalone cluster, the warehouse and the input file:// URIs
    (listed and read through Hadoop, as an hdfs:// or s3a:// location would be), for two run
    dates (the second incremental: a day of new events for 5 of the customers); every table and
    export then equals the same two nights in local mode (this test session, tests/conftest.py
    two_nights). The cluster run's report and Spark log land in its warehouse."""
    from tests.regression.compare_commits import compare, delta_tables, export_files

    nights = [(two_nights.first_date, two_nights.first_input), (two_nights.second_date, two_nights.second_input)]
    config = cluster_config_for_tests(tmp_path / "cluster.yml")
    assert what_the_tables_follow(load_config(config)) == what_the_tables_follow(load_config()), \
        "conf/cluster.yml and conf/local.yml (two_nights) differ in more than where and how Spark runs"
    archive = build(tmp_path / "dist" / "c360.zip")
    on_cluster = tmp_path / "cluster-warehouse"
    rounds = []
    for run_date, raw in nights:
        cmd = readme_submit(standalone_cluster, archive, config=str(config), input=raw.as_uri(), run_date=run_date,
                            extra=("--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.executor.memory=768m")
                            ) + ["--warehouse", on_cluster.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO_ROOT,
                              env={**os.environ, **SPARK_ENV})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert f"c360 nightly {run_date} finished" in proc.stdout, proc.stdout
        assert "[7/7] lens-materialize ..." in proc.stdout, proc.stdout
        materialized = re.search(r"lens-materialize: queries=(\d+)", proc.stdout)
        assert materialized and int(materialized.group(1)) > 0, proc.stdout
        assert_terminal_free_of_spark(proc)
        report = json.loads((on_cluster / "_runs" / run_date / "report.json").read_text())
        assert report["warehouse"] == f"file:{on_cluster}" and set(report["stages"]) == {
            "ingest", "stitch", "activities", "rfm", "traits", "segments", "lens-materialize"}, report
        assert "Running Spark version" in (on_cluster / "_logs" / f"nightly-{run_date}.log").read_text()
        stitched = report["stages"]["stitch"]["metrics"]
        assert stitched["components_path"] == "distributed", stitched
        rounds.append(stitched["components_rounds"])
    assert stitched["mode"] == "incremental", stitched
    assert rounds[0] > 1, f"the first night's components took {rounds[0]} round(s) on the executors"
    assert not (REPO_ROOT / "file:").exists(), "a file:// warehouse was taken for a relative folder"

    locally = two_nights.after_both
    assert {"bronze/events", "gold/identity_map", "silver/activity_stream", "gold/rfm", "gold/traits",
            "gold/segment_membership", "gold/lens_rfm"} <= set(delta_tables(locally)), delta_tables(locally)
    assert export_files(locally), "the default segments export files"
    # text naming the warehouse (gold/segment_runs.export_file) is compared with the folder masked
    problems = compare(spark, locally, on_cluster, (two_nights.roots, (f"file:{on_cluster}", str(on_cluster))))
    assert problems == [], "\n".join(problems)


# Where nothing listens: the cluster manager's address in the two tests below.
CLOSED_PORT = 1
YARN_SITE = f"""<configuration>
<property><name>yarn.resourcemanager.address</name><value>127.0.0.1:{CLOSED_PORT}</value></property>
<property><name>yarn.resourcemanager.connect.max-wait.ms</name><value>2000</value></property>
<property><name>yarn.resourcemanager.connect.retry-interval.ms</name><value>500</value></property>
</configuration>
"""
CORE_SITE = """<configuration>
<property><name>fs.defaultFS</name><value>file:///</value></property>
<property><name>ipc.client.connect.max.retries</name><value>0</value></property>
</configuration>
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("manager", ["yarn", "k8s"])
def test_readme_cluster_deploy_mode_commands_get_as_far_as_the_cluster_manager(manager, tmp_path):
    """This machine has no YARN and no Kubernetes, so README's `--deploy-mode cluster` commands run
    against a cluster-manager address where nothing listens. spark-submit must accept every option
    and prepare the submission (for Kubernetes: the driver pod and the upload of every local file
    the command names, to a local upload folder here instead of s3a://), then fail only at the
    connection: no option or file problem on the way."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("jobs", "conf", ".jars"):
        (repo / name).symlink_to(REPO_ROOT / name)
    build(repo / "dist" / "c360.zip")
    with tarfile.open(repo / "dist" / "c360-env.tar.gz", "w:gz") as env_archive:  # the packed venv's stand-in
        env_archive.add(REPO_ROOT / "requirements.lock", arcname="requirements.lock")
    words = readme_cluster_mode_submit(manager)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "C360_"))}, **SPARK_ENV}
    uploads = tmp_path / "uploads"
    if manager == "yarn":
        hadoop_conf = tmp_path / "hadoop-conf"
        hadoop_conf.mkdir()
        (hadoop_conf / "yarn-site.xml").write_text(YARN_SITE)
        (hadoop_conf / "core-site.xml").write_text(CORE_SITE)
        env["HADOOP_CONF_DIR"] = str(hadoop_conf)
    else:
        words = with_option(words, "--master", f"k8s://https://127.0.0.1:{CLOSED_PORT}")
        upload = next(w for w in words if w.startswith("spark.kubernetes.file.upload.path="))
        words[words.index(upload)] = f"spark.kubernetes.file.upload.path={uploads.as_uri()}"
    proc = subprocess.run([str(BIN / "spark-submit"), *words[1:]], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "Connection refused" in output, output[-3000:]
    for problem in ("Unrecognized option", "Missing application resource", "does not exist", "FileNotFound"):
        assert problem not in output, output[-3000:]
    if manager == "k8s":
        uploaded = sorted(p.name for p in uploads.rglob("*") if p.is_file())
        assert uploaded == sorted(["c360-env.tar.gz", "c360.zip", "cli.py", "cluster.yml", "delta-spark_2.13-4.4.0.jar",
                                   "delta-storage-4.4.0.jar", "log4j2.properties"]), uploaded

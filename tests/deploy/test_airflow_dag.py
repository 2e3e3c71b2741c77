"""deploy/airflow/c360_nightly.py loads in Apache Airflow (its own virtualenv, `make airflow`) and
builds one task per nightly stage whose commands c360's command line accepts; deploy/cron.example's
commands too."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from jobs import pipeline
from jobs.cli import build_parser
from jobs.core.config import REPO_ROOT

AIRFLOW_PYTHON = REPO_ROOT / ".venv-airflow" / "bin" / "python"
RUN_DATE = "2026-07-01"
pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    if not AIRFLOW_PYTHON.is_file():
        pytest.fail(f"{AIRFLOW_PYTHON} is missing: `make airflow` installs Apache Airflow (make test does)")
    home = tmp_path_factory.mktemp("airflow_home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "C360_HOME": "/srv/c360", "C360_INPUT": "/data/drops/{{ ds }}"}
    env.pop("C360_COMMAND", None), env.pop("C360_CONFIG", None)
    proc = subprocess.run([str(AIRFLOW_PYTHON), str(Path(__file__).with_name("airflow_probe.py")),
                           str(REPO_ROOT / "deploy" / "airflow"), RUN_DATE],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_dag_imports_without_errors(loaded):
    assert loaded["import_errors"] == {}
    assert loaded["dags"] == ["c360_nightly"]
    assert (loaded["max_active_runs"], loaded["catchup"]) == (1, False)
    # the run starting at 02:00 on the next day processes the day that has ended
    assert loaded["first_run"] == {"starts": "2026-07-02T02:00:00+00:00", "ds": RUN_DATE}


def test_one_task_per_stage_in_the_nightly_order_with_its_command(loaded):
    stages = [s.name for s in pipeline.NIGHTLY]
    ids = [s.replace("-", "_") for s in stages]
    expected = {}
    for i, (stage, task_id) in enumerate(zip(stages, ids)):
        command = f".venv/bin/c360 {stage} --config conf/local.yml --run-date {RUN_DATE}"
        if stage == "ingest":
            command += f" --input /data/drops/{RUN_DATE}"
        expected[task_id] = {"upstream": ids[i - 1:i], "retries": 2, "retry_delay_s": 600.0, "cwd": "/srv/c360",
                             "command": command}
    assert loaded["tasks"] == expected


def test_every_task_command_is_one_c360_accepts(loaded):
    parser = build_parser()
    for task in loaded["tasks"].values():
        args = parser.parse_args(shlex.split(task["command"])[1:])
        assert str(args.run_date) == RUN_DATE


def test_the_cron_example_runs_commands_c360_accepts():
    lines = [line for line in (REPO_ROOT / "deploy" / "cron.example").read_text().splitlines()
             if re.match(r"^[0-9*]", line)]
    assert len(lines) == 2
    parser = build_parser()
    for line in lines:
        fields = line.split(None, 5)
        schedule, command = fields[:5], fields[5]
        assert all(re.fullmatch(r"[0-9*,/-]+", f) for f in schedule), line
        # the c360 invocation: from `.venv/bin/c360` up to the redirection of its output
        c360 = re.search(r"\.venv/bin/c360 ([^>]+?) >>", command).group(1).replace("$day", RUN_DATE)
        args = parser.parse_args(shlex.split(c360))
        assert args.command in ("nightly", "maintain"), line
    # the shell parses each command (cron runs it with SHELL=/bin/bash; `\%` is cron's escape)
    for line in lines:
        subprocess.run(["bash", "-n", "-c", line.split(None, 5)[5].replace("\\%", "%")], check=True)

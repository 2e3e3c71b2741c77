"""The c360 nightly as an Apache Airflow DAG: one task per stage, in the nightly's order.

Drop this file in your DAGs folder. Each task runs one `c360 <stage>` command for the run's logical
date (`{{ ds }}`: the day whose data the run processes; with the 02:00 schedule below, the run that
starts on 2 July processes 1 July). A task that fails is retried on its own, and a cleared or retried
task starts at its stage: the stages before it already committed their tables, and every stage is
idempotent for its run date (README: "A night that dies ... resumes where it stopped").
`max_active_runs=1`: c360 allows one writer per warehouse (its lease); Airflow need not queue a
second night against it.

Settings, from the environment of the Airflow worker (or edit the defaults here):
- C360_HOME     the c360 checkout the commands run in (config and lens paths are relative to it)
- C360_COMMAND  how c360 is started: `.venv/bin/c360` (local mode, the default) or a spark-submit
                prefix, e.g. `spark-submit --master spark://spark-master:7077 ... --py-files
                dist/c360.zip jobs/cli.py` (README: running on a cluster)
- C360_CONFIG   the config file (default conf/local.yml; conf/cluster.yml on a cluster)
- C360_INPUT    the day's raw drop, an Airflow template (default /mnt/raw/{{ ds }})
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

try:  # Airflow 3: the operator lives in the standard provider
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

DAG_ID = "c360_nightly"
# The nightly's stages in order (jobs.pipeline.NIGHTLY; a test keeps the two lists equal).
STAGES = ("ingest", "stitch", "activities", "rfm", "traits", "segments", "lens-materialize")
# 02:00 UTC every day. A data-interval timetable on both Airflow 2 and 3: the run starting on day
# D+1 has logical date D, so `ds` is the day that has just ended.
SCHEDULE = CronDataIntervalTimetable("0 2 * * *", timezone="UTC")
RETRIES = 2
RETRY_DELAY = timedelta(minutes=10)

C360_HOME = os.environ.get("C360_HOME", "/opt/c360")
C360_COMMAND = os.environ.get("C360_COMMAND", ".venv/bin/c360")
C360_CONFIG = os.environ.get("C360_CONFIG", "conf/local.yml")
C360_INPUT = os.environ.get("C360_INPUT", "/mnt/raw/{{ ds }}")


def stage_command(stage: str) -> str:
    """The command of one stage's task (an Airflow template: `{{ ds }}` is the run date)."""
    command = f"{C360_COMMAND} {stage} --config {C360_CONFIG} --run-date {{{{ ds }}}}"
    if stage == "ingest":
        command += f" --input {C360_INPUT}"
    return command


with DAG(
    dag_id=DAG_ID,
    description="c360 nightly: ingest, stitch, activities, rfm, traits, segments, lens-materialize",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
    tags=["c360"],
) as dag:
    previous = None
    for stage in STAGES:
        task = BashOperator(task_id=stage.replace("-", "_"), bash_command=stage_command(stage), cwd=C360_HOME)
        if previous is not None:
            previous >> task
        previous = task

"""Run by tests/deploy/test_airflow_dag.py with .venv-airflow's Python (Apache Airflow installed):
load deploy/airflow/ the way Airflow's DAG processor does and print, as JSON, what it found.

argv: the DAGs folder, the run date to render the commands for."""
from __future__ import annotations

import json
import sys

import pendulum

try:  # Airflow 3
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag
from airflow.timetables.base import TimeRestriction

folder, run_date = sys.argv[1], sys.argv[2]
bag = DagBag(dag_folder=folder)
out: dict = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags)}
dag = bag.dags.get("c360_nightly")
if dag is not None:
    # the first scheduled run whose data interval starts on the run date
    info = dag.timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=pendulum.parse(run_date), latest=None, catchup=True))
    out.update(
        max_active_runs=dag.max_active_runs,
        catchup=dag.catchup,
        first_run={"starts": info.run_after.isoformat(), "ds": info.logical_date.to_date_string()},
        tasks={t.task_id: {
            "upstream": sorted(t.upstream_task_ids),
            "retries": t.retries,
            "retry_delay_s": t.retry_delay.total_seconds(),
            "cwd": t.cwd,
            "command": t.render_template(t.bash_command, {"ds": info.logical_date.to_date_string()}),
        } for t in dag.tasks},
    )
print(json.dumps(out))

"""`c360 maintain`: OPTIMIZE (Z-order by the customer column) and VACUUM keep every table's rows
and every version a reader may still read."""
from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from jobs.commands.maintain import maintain, maintained_tables, zorder_columns
from jobs.ingest.inputs import INPUT_FILES_TABLE
from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.core.config import MaintainSettings, load_config
from jobs.core.errors import ConfigError
from jobs.core.session import job_group
from tests.jobs.test_cli import c360, one_event_input


def test_zorder_by_the_first_customer_column_outside_the_partitions():
    assert zorder_columns(["entity_id", "customer_id", "x"], []) == ["entity_id"]
    assert zorder_columns(["customer_id", "run_date"], ["run_date"]) == ["customer_id"]
    assert zorder_columns(["message_id", "run_date"], ["run_date"]) == []
    assert zorder_columns(["customer_id"], ["customer_id"]) == []


def _map_rows(first: int, count: int) -> list[tuple]:
    return [("user_id", f"u{i}", f"c{i % 7}", i % 7) for i in range(first, first + count)]


def _files(spark, path: str) -> int:
    return DeltaTable.forPath(spark, path).detail().first()["numFiles"]


def test_maintain_compacts_zorders_and_keeps_rows_and_readable_versions(spark, make_ctx):
    ctx = make_ctx()
    wh = ctx.warehouse
    schema = SPECS[tables.IDENTITY_MAP].schema
    for first in (0, 10, 20):  # three appends: three files
        wh.append(spark.createDataFrame(_map_rows(first, 10), schema).coalesce(1), tables.IDENTITY_MAP)
    customers_schema = SPECS[tables.SILVER_CUSTOMERS].schema
    wh.overwrite(spark.createDataFrame([("c1", *[None] * (len(customers_schema) - 1))], customers_schema).coalesce(1),
                 tables.SILVER_CUSTOMERS)
    before = wh.read(spark, tables.IDENTITY_MAP).localCheckpoint()
    version_before = wh.version(spark, tables.IDENTITY_MAP)
    assert _files(spark, wh.path(tables.IDENTITY_MAP)) == 3

    assert maintained_tables(ctx) == [tables.IDENTITY_MAP, tables.SILVER_CUSTOMERS]
    result = maintain(ctx)

    # Z-ordering rewrites a single file too (Delta orders within it)
    assert result.metrics == {"tables": 2, "files_removed": 4, "files_added": 2}
    assert result.notes == [
        f"{tables.IDENTITY_MAP}: z-ordered by customer_id, 3 files -> 1; vacuumed (files unread for 168 h)",
        f"{tables.SILVER_CUSTOMERS}: z-ordered by customer_id, 1 files -> 1; vacuumed (files unread for 168 h)",
    ]
    assert _files(spark, wh.path(tables.IDENTITY_MAP)) == 1
    assert_df_equality(wh.read(spark, tables.IDENTITY_MAP), before, ignore_row_order=True)
    # the version before OPTIMIZE is still readable: VACUUM kept its files (retention 7 days)
    assert_df_equality(wh.read_version(spark, tables.IDENTITY_MAP, version_before), before, ignore_row_order=True)
    history = DeltaTable.forPath(spark, wh.path(tables.IDENTITY_MAP)).history().select("operation", "operationParameters")
    optimize = [r for r in history.collect() if r.operation == "OPTIMIZE"]
    assert [r.operationParameters["zOrderBy"] for r in optimize] == ['["customer_id"]']


def test_vacuum_lists_files_in_as_many_tasks_as_the_shuffle_has_partitions(spark, make_ctx):
    """Not Spark's default of 10,000 tasks, which made `c360 maintain` take 30-40 s a table however
    small (jobs.core.session.LISTING_PARALLELISM)."""
    ctx = make_ctx()
    ctx.warehouse.append(spark.createDataFrame(_map_rows(0, 3), SPECS[tables.IDENTITY_MAP].schema), tables.IDENTITY_MAP)
    tracker, group = spark.sparkContext.statusTracker(), "test-maintain-vacuum"
    with job_group(spark, group, "c360 maintain, its tasks counted"):
        maintain(ctx)
    stages = [stage for job in tracker.getJobIdsForGroup(group) for stage in tracker.getJobInfo(job).stageIds]
    tasks = [tracker.getStageInfo(stage).numTasks for stage in stages if tracker.getStageInfo(stage)]
    assert tasks and max(tasks) <= int(spark.conf.get("spark.sql.shuffle.partitions")), tasks


def test_a_retention_shorter_than_seven_days_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"'maintain.vacuum_retain_hours' must be at least 168"):
        MaintainSettings(vacuum_retain_hours=24).validate("maintain")
    config = tmp_path / "c.yml"
    config.write_text("maintain:\n  vacuum_retain_hours: 24\n")
    with pytest.raises(ConfigError, match=r"maintain.vacuum_retain_hours' must be at least 168"):
        load_config(config)


@pytest.mark.subprocess
def test_c360_maintain_in_a_fresh_process(tmp_path):
    warehouse = tmp_path / "wh"
    ingest = c360("ingest", "--input", str(one_event_input(tmp_path)), "--warehouse", str(warehouse),
                  "--run-date", str(dt.date(2026, 1, 1)))
    assert ingest.returncode == 0, ingest.stderr
    proc = c360("maintain", "--warehouse", str(warehouse), "--run-date", "2026-01-02")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    # bronze/events, quarantine/events (ingest creates it) and the input manifest, one small file
    # each: nothing to rewrite
    assert proc.stdout == (
        "maintain: tables=3, files_removed=0, files_added=0\n"
        f"  note: {tables.BRONZE_EVENTS}: compacted, 0 files -> 0; vacuumed (files unread for 168 h)\n"
        f"  note: {tables.QUARANTINE_EVENTS}: compacted, 0 files -> 0; vacuumed (files unread for 168 h)\n"
        f"  note: {INPUT_FILES_TABLE}: compacted, 0 files -> 0; vacuumed (files unread for 168 h)\n"
    )


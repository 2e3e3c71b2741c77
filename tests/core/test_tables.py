"""The table registry (jobs.core.catalog) and the Warehouse's create / read(missing=...).

The registry is checked against real nightlies on generated data: every table the nightly writes is
registered, and each one with a fixed schema has exactly that schema, partitioning and properties.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

from jobs.core import table_names, tables
from jobs.core.catalog import SPECS, TableSpec, spec_for
from jobs.core.errors import InputError
from jobs.core.tables import Warehouse

LENS_TEMPLATE = tables.lens_table("<name>")


# ----------------------------------------------------------------------------------------------
# The registry itself (no Spark session)
# ----------------------------------------------------------------------------------------------


def test_every_public_table_name_has_a_spec():
    names = {v for k, v in vars(table_names).items() if k.isupper() and isinstance(v, str)}
    not_tables = {table_names.EXPORTS, table_names.LENS_PREFIX}  # CSV files; the prefix of gold/lens_<name>
    assert names - not_tables <= set(SPECS)
    assert all(name == spec.name for name, spec in SPECS.items())


def test_keys_and_partition_columns_are_columns_and_made_by_is_a_command():
    from jobs.pipeline import STAGES

    commands = {stage.name for stage in STAGES}
    for spec in SPECS.values():
        assert spec.made_by in commands, spec.name
        if spec.schema is not None:
            assert set(spec.keys) | set(spec.partition_by) <= set(spec.columns), spec.name
            assert all(f.nullable for f in spec.schema.fields), f"{spec.name}: Delta stores every column nullable"
        assert all(key.startswith("delta.") for key in spec.properties), spec.name


def test_spec_for_names_every_materialized_lens_table():
    assert spec_for(tables.IDENTITY_MAP) is SPECS[tables.IDENTITY_MAP]
    lens = spec_for(tables.lens_table("order_outcomes"))
    assert (lens.name, lens.schema, lens.made_by) == ("gold/lens_order_outcomes", None, "lens-materialize")
    assert spec_for("gold/nothing") is None


# ----------------------------------------------------------------------------------------------
# Warehouse.create and Warehouse.read(missing=...) on tiny tables
# ----------------------------------------------------------------------------------------------

TINY = TableSpec(
    "silver/tiny",
    StructType([StructField("id", StringType()), StructField("n", LongType()), StructField("day", DateType())]),
    keys=("id",),
    partition_by=("day",),
    properties={"delta.appendOnly": "true", "delta.dataSkippingStatsColumns": "n"},
    made_by="ingest",
)


DEFAULTS_PREFIX = "spark.databricks.delta.properties.defaults."


def detail(spark, wh: Warehouse, table: str) -> dict:
    """DESCRIBE DETAIL, with `properties` less those every new table gets from the session
    (spark.databricks.delta.properties.defaults.*, e.g. the test session's checkpointInterval)."""
    info = spark.sql(f"DESCRIBE DETAIL delta.`{wh.path(table)}`").first().asDict()
    session = {"delta." + k.removeprefix(DEFAULTS_PREFIX): v for k, v in spark.sparkContext.getConf().getAll()
               if k.startswith(DEFAULTS_PREFIX)}
    info["properties"] = {k: v for k, v in info["properties"].items() if session.get(k) != v}
    return info


def test_create_sets_schema_partitioning_and_properties_in_the_creating_commit(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    assert wh.create(spark, TINY) is True
    info = detail(spark, wh, TINY.name)
    assert info["partitionColumns"] == ["day"]
    assert info["properties"] == {"delta.appendOnly": "true", "delta.dataSkippingStatsColumns": "n"}
    assert wh.read(spark, TINY.name).schema == TINY.schema
    first = wh.delta(spark, TINY.name).history().collect()
    assert [(c["version"], c["operation"]) for c in first] == [(0, "CREATE TABLE")]
    # an existing table is left alone
    assert wh.create(spark, TINY) is False
    assert wh.version(spark, TINY.name) == 0
    # appends keep what creation set
    rows = spark.createDataFrame([("a", 1, dt.date(2026, 1, 1))], TINY.schema)
    wh.append(rows, TINY.name, partition_by=list(TINY.partition_by))
    assert detail(spark, wh, TINY.name)["properties"]["delta.appendOnly"] == "true"
    assert wh.read(spark, TINY.name).count() == 1


def test_create_a_registered_table_by_name(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    assert wh.create(spark, tables.BRONZE_EVENTS) is True
    info = detail(spark, wh, tables.BRONZE_EVENTS)
    assert info["partitionColumns"] == ["run_date"]
    assert info["properties"] == {"delta.dataSkippingStatsColumns": "timestamp"}
    assert wh.read(spark, tables.BRONZE_EVENTS).schema == SPECS[tables.BRONZE_EVENTS].schema


def test_ensure_properties_gives_an_existing_table_what_its_spec_lists(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    assert wh.ensure_properties(spark, TINY) == []  # no table yet: nothing to do
    # written by an overwrite, as the activity stream's full build writes it: no properties
    wh.overwrite(spark.createDataFrame([("a", 1, dt.date(2026, 1, 1))], TINY.schema), TINY.name)
    assert detail(spark, wh, TINY.name)["properties"] == {}
    assert wh.ensure_properties(spark, TINY) == ["delta.appendOnly", "delta.dataSkippingStatsColumns"]
    assert detail(spark, wh, TINY.name)["properties"] == dict(TINY.properties)
    version = wh.version(spark, TINY.name)
    assert wh.ensure_properties(spark, TINY) == []  # already set: no commit
    assert wh.version(spark, TINY.name) == version
    assert wh.read(spark, TINY.name).count() == 1


def test_create_refuses_a_table_without_a_fixed_schema_or_a_spec(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    with pytest.raises(ValueError, match="decided at run time"):
        wh.create(spark, tables.TRAITS)
    with pytest.raises(ValueError, match="not a registered table"):
        wh.create(spark, "gold/nothing")
    assert not wh.exists(spark, tables.TRAITS)


def test_read_missing_error_names_the_command_that_writes_it(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    for table, command in ((tables.IDENTITY_MAP, "stitch"), (tables.ACTIVITY_STREAM, "activities"),
                           (tables.lens_table("rfm"), "lens-materialize")):
        with pytest.raises(InputError) as err:
            wh.read(spark, table)  # missing="error" is the default
        assert str(err.value) == f"table {wh.path(table)} does not exist: run `c360 {command}` first"
    with pytest.raises(InputError, match=r"gold/nothing does not exist$"):
        wh.read(spark, "gold/nothing", missing="error")


def test_read_missing_empty_has_the_spec_schema(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    empty = wh.read(spark, tables.GROUP_MEMBERS, missing="empty")
    assert empty.schema == SPECS[tables.GROUP_MEMBERS].schema and empty.count() == 0
    assert not wh.exists(spark, tables.GROUP_MEMBERS), "reading as empty creates nothing"
    with pytest.raises(ValueError, match="no registered schema"):
        wh.read(spark, tables.TRAITS, missing="empty")
    with pytest.raises(ValueError, match="missing must be"):
        wh.read(spark, tables.GROUP_MEMBERS, missing="none")


def test_read_an_existing_table_whatever_missing_says(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    spark.createDataFrame([("g", "c", None, "group")], SPECS[tables.GROUP_MEMBERS].schema).write.format(
        "delta").save(wh.path(tables.GROUP_MEMBERS))
    for missing in ("error", "empty"):
        assert [tuple(r) for r in wh.read(spark, tables.GROUP_MEMBERS, missing=missing).collect()] == [
            ("g", "c", None, "group")]


# ----------------------------------------------------------------------------------------------
# Every table a nightly writes, against its spec
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nightly(two_nights) -> Warehouse:
    """Two nightlies on small generated inputs with the default config (tests/conftest.py two_nights)."""
    return Warehouse(two_nights.after_both)


def written_tables(wh: Warehouse) -> list[str]:
    """The data tables; not the warehouse's operational state under _-folders (_control/run_lock,
    _control/stage_runs: jobs.core.lock, jobs.core.completions)."""
    found = (str(log.parent.relative_to(wh.local_dir)) for log in wh.local_dir.rglob("_delta_log"))
    return sorted(name for name in found if not name.startswith("_"))


@pytest.mark.slow
def test_every_table_the_nightly_writes_is_registered(nightly):
    written = written_tables(nightly)
    assert [t for t in written if spec_for(t) is None] == []
    # and every registered table is written (gold/lens_<name>: one per lens.materialize entry)
    assert set(SPECS) - {LENS_TEMPLATE} <= set(written)
    assert tables.lens_table("rfm") in written


@pytest.mark.slow
def test_every_table_with_a_fixed_schema_has_exactly_that_schema(spark, nightly):
    checked = []
    for table in written_tables(nightly):
        spec = spec_for(table)
        info = detail(spark, nightly, table)
        assert (table, info["partitionColumns"]) == (table, list(spec.partition_by))
        # delta.* are the spec's; c360.* record run state (silver/activity_daily's stream version)
        delta_properties = {k: v for k, v in info["properties"].items() if not k.startswith("c360.")}
        assert (table, delta_properties) == (table, dict(spec.properties))
        if spec.schema is not None:
            stored = nightly.read(spark, table).schema
            assert stored == spec.schema, f"{table}:\n{json.dumps(stored.jsonValue())}"
            checked.append(table)
    assert len(checked) == len([s for s in SPECS.values() if s.schema is not None])


@pytest.mark.slow
def test_keys_identify_the_rows(spark, nightly):
    for table in written_tables(nightly):
        spec = spec_for(table)
        if spec.keys:
            df = nightly.read(spark, table)
            assert df.select(*spec.keys).distinct().count() == df.count(), table


# ----------------------------------------------------------------------------------------------
# tables.change_set and Warehouse.apply_changes: a night's changes by key
# ----------------------------------------------------------------------------------------------

KEYED = TableSpec(
    "silver/keyed",
    StructType([StructField("id", StringType()), StructField("n", LongType()), StructField("note", StringType())]),
    keys=("id",),
    properties={"delta.enableDeletionVectors": "true"},
    made_by="activities",
)
CHANGES_SCHEMA = "id string, n bigint, note string, _change string"


def test_change_set_lists_inserts_updates_and_deletes_and_leaves_out_rows_that_are_the_same(spark):
    current = spark.createDataFrame(
        [("a", 1, "x"), ("b", 2, "x"), ("c", 3, "x"), ("e", None, None), ("f", 5, None)], KEYED.schema)
    wanted = spark.createDataFrame(
        [("a", 1, "x"), ("b", 20, "x"), ("d", 4, "y"), ("e", None, None), ("f", None, None)], KEYED.schema)
    expected = spark.createDataFrame(
        [("b", 20, "x", "update"), ("d", 4, "y", "insert"), ("c", None, None, "delete"), ("f", None, None, "update")],
        CHANGES_SCHEMA)
    assert_df_equality(tables.change_set(current, wanted, KEYED), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_apply_changes_appends_inserts_merges_updates_and_deletes_and_counts_them(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    wh.create(spark, KEYED)
    wh.append(spark.createDataFrame([("a", 1, "x"), ("b", 2, "x"), ("c", 3, "x")], KEYED.schema), KEYED.name)
    wh.append(spark.createDataFrame([("z", 9, "other file")], KEYED.schema), KEYED.name)
    z_file = set(wh.read(spark, KEYED.name).where("id = 'z'").inputFiles())
    version = wh.version(spark, KEYED.name)
    changes = spark.createDataFrame(
        [("b", 20, "x", "update"), ("d", 4, "y", "insert"), ("c", None, None, "delete")], CHANGES_SCHEMA)

    wh.apply_changes(spark, KEYED, changes)

    expected = spark.createDataFrame([("a", 1, "x"), ("b", 20, "x"), ("d", 4, "y"), ("z", 9, "other file")],
                                     KEYED.schema)
    assert_df_equality(wh.read(spark, KEYED.name), expected, ignore_row_order=True)
    operations = [r["operation"] for r in wh.delta(spark, KEYED.name).history().where(f"version > {version}")
                  .orderBy("version").collect()]
    assert operations == ["MERGE", "WRITE"]  # updates and deletes, then the appended inserts
    assert wh.change_counts_since(spark, KEYED.name, version) == {"insert": 1, "update": 1, "delete": 1}
    assert z_file <= set(wh.read(spark, KEYED.name).inputFiles())  # another key's file is not touched

    # nothing to change: no commit
    version = wh.version(spark, KEYED.name)
    wh.apply_changes(spark, KEYED, changes.limit(0))
    assert wh.version(spark, KEYED.name) == version
    assert wh.change_counts_since(spark, KEYED.name, version) == {"insert": 0, "update": 0, "delete": 0}


def test_commit_metrics_add_up_every_commit_after_a_version_beyond_the_recent_ones(spark, warehouse_dir, monkeypatch):
    # two recent commits are read first: counts since an older version read the whole history
    monkeypatch.setattr(tables, "RECENT_COMMITS", 2)
    wh = Warehouse(warehouse_dir)
    wh.create(spark, KEYED)  # version 0
    for i in range(1, 6):  # versions 1..5 append i rows each
        wh.append(spark.createDataFrame([(f"{i}-{j}", j, "x") for j in range(i)], KEYED.schema), KEYED.name)

    assert wh.operation_metrics_since(spark, KEYED.name, 0)["numOutputRows"] == 1 + 2 + 3 + 4 + 5
    assert wh.operation_metrics_since(spark, KEYED.name, 2)["numOutputRows"] == 3 + 4 + 5
    assert wh.operation_metrics_since(spark, KEYED.name, 3)["numOutputRows"] == 4 + 5  # the recent two
    assert wh.operation_metrics_since(spark, KEYED.name, 5) == {}
    assert wh.change_counts_since(spark, KEYED.name, 1) == {"insert": 2 + 3 + 4 + 5, "update": 0, "delete": 0}


def test_overwrite_counted_returns_the_rows_it_wrote(spark, warehouse_dir):
    wh = Warehouse(warehouse_dir)
    rows = spark.createDataFrame([("a", 1, "x"), ("b", 2, "y"), ("c", 3, "z")], KEYED.schema)

    assert wh.overwrite_counted(spark, rows, KEYED.name) == 3  # a new table
    assert wh.overwrite_counted(spark, rows.limit(2), KEYED.name) == 2
    assert_df_equality(wh.read(spark, KEYED.name), rows.limit(2), ignore_row_order=True)
    assert wh.overwrite_counted(spark, rows.limit(0), KEYED.name) == 0
    assert wh.read(spark, KEYED.name).count() == 0

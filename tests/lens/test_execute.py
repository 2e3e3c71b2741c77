"""Lens on Spark: saved queries equal hand-written Spark SQL, the seed model runs unmodified, and the
fan-out/chasm examples give exact numbers. One small warehouse for the whole module."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (ArrayType, DoubleType, IntegerType, StringType, StructField, StructType,
                               TimestampType)

import lens
from jobs.core import tables
from jobs.core.config import Config
from jobs.core.context import JobContext
from jobs.ingest.schemas import CUSTOMER_COLUMNS
from jobs.core.tables import Warehouse
from lens.execute import views_for, warehouse_catalog
from lens.query_format import load_query
from tests.reference_sql import REFERENCES, seed_rfm
from jobs.lens_stage.settings import LensMaterialization, LensSettings
from tests.conftest import TEST_SPARK
from tests.lens import shop

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "lens" / "seed" / "customer_360.lens.yml"
PROJECT = REPO / "lens" / "customer_360.yml"
RUN_DATE = dt.date(2026, 3, 15)
FEATURES = [f"feature{i}" for i in range(1, 11)]

ACTIVITY_SCHEMA = StructType([
    StructField("activity_uuid", StringType(), False), StructField("entity_id", StringType()),
    StructField("anonymous_entity_id", StringType()), StructField("activity", StringType(), False),
    StructField("activity_ts", TimestampType(), False), *[StructField(f, StringType()) for f in FEATURES],
    StructField("feature_json", StringType()), StructField("revenue_impact", DoubleType()),
    StructField("activity_occurence", IntegerType()), StructField("activity_repeated_at", TimestampType()),
    StructField("group_id", StringType()),
])
CUSTOMER_SCHEMA = StructType([StructField(c, StringType(), c != "customer_id") for c in CUSTOMER_COLUMNS]
                             + [StructField("group_ids", ArrayType(StringType()))])

# (entity, activity, ts, order_id, product_id, category, order_value)
EVENTS = [
    ("c1", "order_placed", "2026-03-13 15:00:00", "O1-1", "P1", "wine", "10.0"),
    ("c1", "order_placed", "2026-03-13 15:00:00", "O1-2", "P2", "beer", "5.5"),
    ("c1", "order_placed", "2026-02-01 10:00:00", "O2-1", "P1", "wine", "7.25"),
    ("c1", "order_rejected", "2026-02-03 08:00:00", "O2-1", "P1", "late", "7.25"),
    ("c1", "order_invoiced", "2026-03-14 09:00:00", "O1-1", "P1", "wine", "10.0"),
    ("c1", "viewed_page", "2026-03-10 10:00:00", "O1-1", None, None, None),
    ("c2", "order_placed", "2025-06-10 12:00:00", "O3-1", "P3", "spirits", "20.0"),
    ("c2", "order_rejected", "2025-06-12 12:00:00", "O3-1", "P3", "late", "20.0"),
    ("c2", "order_placed", "2026-02-20 12:00:00", "O4-1", "P1", "wine", "3.0"),
    ("c2", "order_placed", "2026-02-20 12:00:00", "O4-2", "P3", "spirits", "4.0"),
    ("c2", "order_rejected", "2026-02-21 00:00:00", "O4-1", "P1", "damaged", "3.0"),
    ("c2", "order_rejected", "2026-02-28 23:59:59", "O4-2", "P3", "damaged", "4.0"),
    ("c2", "order_placed", "2025-02-27 12:00:00", "O8-1", "P3", "spirits", "6.0"),
    ("c2", "order_rejected", "2025-03-01 00:00:00", "O8-1", "P3", "late", "6.0"),     # first instant of the 12 months
    ("c2", "order_rejected", "2025-02-28 23:59:59", "O9-1", "P3", "late", "1.0"),     # just before them
    ("c3", "order_placed", "2026-01-05 08:00:00", "O5-1", "P2", "beer", "8.0"),
    ("c3", "order_invoiced", "2026-01-09 23:30:00", "O5-1", "P2", "beer", "8.0"),
    ("c5", "order_placed", "2026-03-01 00:00:00", "O6-1", "P2", "beer", "1.0"),       # c5 is not a customer row
    ("c5", "order_rejected", "2026-03-01 00:00:01", "O6-1", "P2", "late", "1.0"),     # this month: not "last month"
    (None, "order_placed", "2026-03-10 06:00:00", "O7-1", "P1", "wine", "2.0"),       # not attributed yet
    # after the run date: as of 2026-03-15 these have not happened (interface §5), every answer ignores them
    ("c1", "order_placed", "2026-03-16 00:00:00", "O10-1", "P1", "wine", "100.0"),
    ("c1", "order_rejected", "2026-03-16 00:00:00", "O1-1", "P1", "late", "10.0"),
    ("c3", "order_invoiced", "2026-03-20 10:00:00", "O5-1", "P2", "beer", "8.0"),
    ("c9", "order_placed", "2026-04-01 10:00:00", "O11-1", "P2", "beer", "1.0"),
]
# c7: one rejected order in each of the 12 months before March 2026 -> average 1.0, last month 1: not above.
# c8: two rejected orders in February 2026 and one in each of March..December 2025 -> 2 > 12 / 12: above.
EVENTS += [("c7", "order_rejected", f"{2025 + (m > 12)}-{(m - 1) % 12 + 1:02d}-15 12:00:00", f"R7{m:02d}-1",
            "P1", "late", "1.0") for m in range(3, 15)]
EVENTS += [("c8", "order_rejected", f"2025-{m:02d}-15 12:00:00", f"R8{m:02d}-1", "P1", "late", "1.0")
           for m in range(3, 13)]
EVENTS += [("c8", "order_rejected", "2026-02-10 12:00:00", f"R8F{i}-1", "P1", "late", "1.0") for i in (1, 2)]
CUSTOMERS = {"c1": "CA", "c2": "NY", "c3": "CA", "c4": None}


def activity_rows() -> list[tuple]:
    rows = []
    for i, (entity, activity, ts, order_id, product, category, value) in enumerate(EVENTS):
        features = [order_id, product, None, None, category, None, "1", "2", value, "2026-04-01"]
        if activity == "order_rejected":  # rejections carry codes in feature3..5
            features[2:5] = ["R1", "RJ", category]
        rows.append((f"a{i:03d}", entity, None if entity else "anon-1", activity,
                     dt.datetime.fromisoformat(ts), *features, "{}", None, 1, None, None))
    return rows


def customer_rows() -> list[tuple]:
    return [tuple(cid if c == "customer_id" else state if c == "state" else f"{c}-{cid}" for c in CUSTOMER_COLUMNS)
            + ([],) for cid, state in CUSTOMERS.items()]


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("lens_warehouse")
    store = Warehouse(root)
    store.overwrite(spark.createDataFrame(activity_rows(), ACTIVITY_SCHEMA), tables.ACTIVITY_STREAM)
    store.overwrite(spark.createDataFrame(customer_rows(), CUSTOMER_SCHEMA), tables.SILVER_CUSTOMERS)
    store.overwrite(spark.createDataFrame(shop.CUSTOMERS, "customer_id string, region string, credit_limit double"),
                    "shop/customers")
    orders = spark.createDataFrame(shop.ORDERS, "order_id string, customer_id string, product string, amount double, "
                                                "ordered_at string")
    store.overwrite(orders.withColumn("ordered_at", F.to_timestamp("ordered_at")), "shop/orders")
    store.overwrite(spark.createDataFrame(shop.RETURNS, "return_id string, customer_id string, refund double"),
                    "shop/returns")
    return root


@pytest.fixture(scope="module")
def catalog(warehouse):
    return warehouse_catalog(LensSettings().catalog, warehouse)


def reference(spark, catalog, builder) -> DataFrame:
    views = views_for(catalog)
    return spark.sql(builder(RUN_DATE, views["icebase.audience.activity_streams_large_data"],
                             views["icebase.audience.customers_large_data"]))


def assert_same(actual: DataFrame, expected: DataFrame) -> None:
    """Equal rows (doubles to 1e-9); numeric types may differ (e.g. BIGINT from datediff(DAY, ..))."""
    assert actual.columns == expected.columns
    # chispa sorts rows by unquoted column names, so the dots in `entity.member` go for the comparison
    plain = [c.replace(".", "__") for c in expected.columns]
    aligned = actual.select([F.col(f"`{c}`").cast(t.dataType).alias(p)
                             for c, t, p in zip(actual.columns, expected.schema, plain)])
    assert_approx_df_equality(aligned, expected.toDF(*plain), 1e-9, ignore_nullable=True, ignore_row_order=True)


# Answers worked out by hand from EVENTS (run date 2026-03-15), for the queries with few rows.
BY_HAND = {
    "rfm": [("c1", 2, 2, 22.75), ("c2", 23, 3, 33.0), ("c3", 69, 1, 8.0), ("c5", 14, 1, 1.0)],
    # placed: c1-O1 c1-O2 c2-O3 c2-O4 c2-O8 c3-O5 c5-O6; rejected: c1-O2 c2-O3 c2-O4 c2-O8 c2-O9 c5-O6 + c7 12 + c8 12
    "order_outcomes": [(7, 30, 2, pytest.approx(3000 / 7), pytest.approx(200 / 7))],
    "days_to_invoice": [(2.5,)],  # 1 day (O1-1) and 4 days (O5-1)
    "rejections_above_average": [("c1", 1, pytest.approx(1 / 12)), ("c2", 1, 0.25), ("c8", 2, 1.0)],
}


def drop_temp_views(spark) -> None:
    """As in a fresh process: no view left registered by an earlier query. (SHOW VIEWS, not
    spark.catalog.listTables(): in Spark's interpreted mode, which the suite runs in, decoding its
    Table rows fails with EXPRESSION_DECODING_FAILED.)"""
    for view in spark.sql("SHOW VIEWS").collect():
        if view.isTemporary:
            spark.catalog.dropTempView(view.viewName)


@pytest.mark.parametrize("ref", REFERENCES, ids=[r.name for r in REFERENCES])
def test_saved_queries_equal_the_hand_written_sql(spark, catalog, ref):
    drop_temp_views(spark)
    query = load_query(REPO / ref.query_file, ref.variant)
    answer = lens.query(spark, PROJECT, query, RUN_DATE, catalog).cache()
    expected = reference(spark, catalog, ref.sql)
    assert_same(answer, expected)
    if query.order:
        assert [r[0] for r in answer.collect()] == [r[0] for r in expected.collect()]
    if ref.name in BY_HAND:
        got, want = [tuple(r) for r in answer.collect()], BY_HAND[ref.name]
        assert len(got) == len(want) and all(any(g == w for g in got) for w in want)
    answer.unpersist()


def rows(frame: DataFrame) -> set[tuple]:
    return {tuple(r) for r in frame.collect()}


def test_the_seed_model_unmodified_answers_rfm_per_customer(spark, catalog):
    query = {"measures": ["order_placed.recency", "order_placed.frequency", "order_placed.monetary"],
             "dimensions": ["customer.customer_id"]}
    answer = lens.query(spark, SEED, query, RUN_DATE, catalog)
    assert_same(answer, reference(spark, catalog, seed_rfm))
    # Trino's day(current_date - ts): c1 ordered at 15:00 two days before the run date -> 1 whole day
    assert rows(answer) == {("c1", 1, 2, 22.75), ("c2", 22, 3, 33.0), ("c3", 68, 1, 8.0), (None, 4, 1, 3.0)}


def shop_query(spark, warehouse, tmp_path_factory, query: dict) -> set[tuple]:
    model = shop.write_shop_model(tmp_path_factory.mktemp("shop_model"))
    catalog = {t: str(Path(warehouse) / "shop" / t.split(".")[1]) for t in shop.VIEWS}
    return rows(lens.query(spark, model, query, RUN_DATE, catalog))


def test_fan_out_and_chasm_traps_on_spark(spark, warehouse, tmp_path_factory):
    chasm = {"measures": ["orders.revenue", "returns.refund_total", "orders.order_count"],
             "dimensions": ["customers.region"]}
    assert shop_query(spark, warehouse, tmp_path_factory, chasm) == {("west", 65.0, 10.0, 4), ("east", None, 1.0, 0)}
    fan_out = {"measures": ["customers.total_credit", "customers.count_customers"], "dimensions": ["orders.product"]}
    assert shop_query(spark, warehouse, tmp_path_factory, fan_out) == {("p1", 150.0, 2), ("p2", 100.0, 1),
                                                                       (None, 70.0, 1)}
    derived = {"measures": ["customers.customers_per_order"], "dimensions": ["customers.region"]}
    # Trino semantics of count / count: integer division (2 / 4 = 0); no orders: NULL
    assert shop_query(spark, warehouse, tmp_path_factory, derived) == {("west", 0), ("east", None)}
    by_month = {"measures": ["orders.revenue"], "timeDimensions": [
        {"dimension": "orders.ordered_at", "granularity": "month", "dateRange": ["2026-01-01", "2026-01-31"]}]}
    assert shop_query(spark, warehouse, tmp_path_factory, by_month) == {(dt.date(2026, 1, 1), 30.0)}


def test_a_quote_in_a_filter_value_is_data_on_spark(spark, catalog):
    query = {"measures": ["customer.count_customers"],
             "filters": [{"member": "customer.state", "operator": "equals", "values": ["CA' OR '1'='1"]}]}
    assert rows(lens.query(spark, SEED, query, RUN_DATE, catalog)) == {(0,)}


def context(spark, warehouse, concurrent_jobs: int = 1, **lens_settings) -> JobContext:
    config = Config(warehouse=str(warehouse), spark=dataclasses.replace(TEST_SPARK, concurrent_jobs=concurrent_jobs),
                    lens=LensSettings(**lens_settings))
    return JobContext(config=config, run_date=RUN_DATE, _spark=spark)


def test_cli_json_output_is_keyed_by_member(spark, warehouse, capsys):
    from jobs.commands.lens import run

    args = argparse.Namespace(lens_command="query", model=str(SEED), query_file=None, variant=None,
                              measure=["order_placed.recency"], dimension=["customer.customer_id"], time_dimension=[],
                              filter=["customer.state:equals:CA"], order=["customer.customer_id"], limit=None,
                              timezone=None, format="json", max_rows=100)
    run(context(spark, warehouse), args)
    assert json.loads(capsys.readouterr().out) == [
        {"customer.customer_id": "c1", "order_placed.recency": 1},
        {"customer.customer_id": "c3", "order_placed.recency": 68}]


def test_materialize_writes_gold_tables_and_is_a_no_op_before_the_activity_stream(spark, warehouse, catalog, tmp_path):
    from jobs.lens_stage import materialize as lens_materialize

    item = LensMaterialization(name="rfm", query="lens/queries/rfm.yml")
    result = lens_materialize.run(context(spark, warehouse, materialize=[item]), argparse.Namespace())
    assert result.metrics == {"queries": 1, "rows": 4}
    written = Warehouse(warehouse).read(spark, tables.lens_table("rfm"))
    assert_same(written, reference(spark, catalog, REFERENCES[0].sql))
    empty = lens_materialize.run(context(spark, tmp_path, materialize=[item]), argparse.Namespace())
    assert empty.metrics == {"queries": 0} and "does not exist yet" in empty.notes[0]


def test_materialize_writes_every_saved_query_concurrently_and_names_the_one_that_failed(spark, warehouse, catalog):
    from jobs.lens_stage import materialize as lens_materialize
    from lens.errors import LensError

    items = [LensMaterialization(name=r.name, query=r.query_file, variant=r.variant) for r in REFERENCES]
    result = lens_materialize.run(context(spark, warehouse, materialize=items, concurrent_jobs=3), argparse.Namespace())
    store = Warehouse(warehouse)
    for r in REFERENCES:
        assert_same(store.read(spark, tables.lens_table(r.name)), reference(spark, catalog, r.sql))
    assert result.metrics == {"queries": len(REFERENCES),
                              "rows": sum(reference(spark, catalog, r.sql).count() for r in REFERENCES)}

    # customers mapped to a table that does not exist: the queries that read it (by_state the first of them;
    # rfm and order_outcomes do not) fail, and the first in the config's order is named
    missing = {**LensSettings().catalog, "icebase.audience.customers_large_data": "silver/no_such_table"}
    with pytest.raises(LensError, match=r"^lens\.materialize order_outcomes_by_state: catalog table "
                                        r"icebase\.audience\.customers_large_data -> .*silver/no_such_table is not"):
        lens_materialize.run(context(spark, warehouse, materialize=items, catalog=missing, concurrent_jobs=3),
                             argparse.Namespace())


def stream_rows(events: list[tuple]) -> list[tuple]:
    """Activity-stream rows for (uuid, entity, activity, ts, order_id, order_value)."""
    return [(uuid, entity, None, activity, dt.datetime.fromisoformat(ts), order_id, "P1", None, None, "wine", None,
             "1", "2", value, "2026-04-01", "{}", None, 1, None, None)
            for uuid, entity, activity, ts, order_id, value in events]


def cli_query_args(query_file: Path, output: str) -> argparse.Namespace:
    return argparse.Namespace(lens_command="query", model=str(PROJECT), query_file=str(query_file), variant=None,
                              measure=[], dimension=[], time_dimension=[], filter=[], order=[], limit=None,
                              timezone=None, format=output, max_rows=100)


def test_a_lens_query_is_as_of_the_run_date_and_sums_money_exactly(spark, tmp_path, capsys):
    """Interface §5: as of D, activities after D do not exist yet; and 0.1 + 0.2 prints as 0.3."""
    from jobs.commands.lens import run

    events = [("t1", "c1", "order_placed", "2026-03-15 23:59:59", "T1-1", "0.1"),   # the last instant of D
              ("t2", "c1", "order_placed", "2026-03-01 10:00:00", "T2-1", "0.2"),
              ("t3", "c1", "order_placed", "2026-03-16 00:00:00", "T3-1", "100.0"),  # the day after D
              ("t4", "c2", "order_placed", "2026-03-17 08:00:00", "T4-1", "5.0")]    # c2's first order: after D
    Warehouse(tmp_path).overwrite(spark.createDataFrame(stream_rows(events), ACTIVITY_SCHEMA), tables.ACTIVITY_STREAM)
    drop_temp_views(spark)
    run(context(spark, tmp_path), cli_query_args(REPO / "lens/queries/rfm.yml", "json"))
    assert json.loads(capsys.readouterr().out) == [{"order_placed.entity_id": "c1", "order_placed.recency_days": 0,
                                                    "order_placed.frequency": 2, "order_placed.monetary": 0.3}]
    run(context(spark, tmp_path), cli_query_args(REPO / "lens/queries/rfm.yml", "csv"))
    assert capsys.readouterr().out.splitlines()[1] == "c1,0,2,0.3"
    run(context(spark, tmp_path), cli_query_args(REPO / "lens/queries/rfm.yml", "table"))
    assert capsys.readouterr().out.splitlines()[2].split() == ["c1", "0", "2", "0.3"]
    # the double sum Spark would have printed, for the record
    assert spark.sql("SELECT SUM(CAST(v AS DOUBLE)) FROM VALUES ('0.1'), ('0.2') AS t(v)").first()[0] != 0.3
    # with the as-of cut turned off (lens.as_of: {}), D+1 counts: the setting is what cuts
    run(context(spark, tmp_path, as_of={}), cli_query_args(REPO / "lens/queries/rfm.yml", "json"))
    assert {r["order_placed.entity_id"] for r in json.loads(capsys.readouterr().out)} == {"c1", "c2"}


def test_a_spark_error_at_run_time_is_one_paragraph(spark, tmp_path, capsys):
    from jobs.commands.lens import run
    from lens.errors import LensError

    events = [("t1", "c1", "order_placed", "2026-03-15 10:00:00", "T1-1", "not a number")]
    Warehouse(tmp_path).overwrite(spark.createDataFrame(stream_rows(events), ACTIVITY_SCHEMA), tables.ACTIVITY_STREAM)
    with pytest.raises(LensError, match="Spark rejected the compiled query") as caught:
        run(context(spark, tmp_path), cli_query_args(REPO / "lens/queries/rfm.yml", "json"))
    assert "\n" not in str(caught.value) and "at org.apache" not in str(caught.value)
    assert capsys.readouterr().out == ""   # nothing printed before the error


def test_cli_sql_explain_prints_the_plan_and_the_passes_that_fired(spark, tmp_path, capsys):
    """`c360 lens sql --explain`: the plan after the passes instead of the SQL (nothing runs)."""
    from jobs.commands.lens import run
    from lens.execute import compile_for, warehouse_catalog
    from lens.model import load_model
    from lens.query_format import load_query

    query_file = REPO / "lens/queries/order_outcomes.yml"
    args = cli_query_args(query_file, "table")
    args.lens_command, args.model, args.explain = "sql", str(PROJECT), True
    ctx = context(spark, tmp_path)
    run(ctx, args)
    shown = capsys.readouterr().out
    settings = ctx.config.lens
    compiled = compile_for(load_model(PROJECT), load_query(query_file), RUN_DATE,
                           warehouse_catalog(settings.catalog, tmp_path), settings.as_of)
    assert shown == compiled.explain + "\n"
    assert "shared_scan: merged" in shown and "SELECT" not in shown.upper().split("\n")[0]
    args.explain = False
    run(ctx, args)
    assert capsys.readouterr().out == compiled.sql + "\n"

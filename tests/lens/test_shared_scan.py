"""Shared scans: measure entities that are filtered projections of one table are read in one scan.

Pure-Python checks of when a scan is shared and what the SQL reads; then, on Spark, every answer of
a shared plan equals the plan that aggregates each entity apart, and both equal numbers worked out
by hand below, including entities whose predicates overlap (a big order is also an order), a
dimension each entity reaches differently (tagged rows) and a filter across a join.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlglot
from chispa import assert_df_equality
from sqlglot import exp

from lens.model import load_model
from lens.planner import compile_query
from lens.query_format import load_query, parse_query
from lens.shared_scan import scan_shape

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "lens" / "customer_360.yml"
RUN_DATE = dt.date(2026, 3, 15)
SEED_VIEWS = {"icebase.audience.activity_streams_large_data": "lens_activity_stream",
              "icebase.audience.customers_large_data": "lens_customers"}
VIEWS = {"shop.stream": "scan_stream", "shop.users": "scan_users"}

STREAM_MODEL = """
name: stream
entities:
  - name: users
    sql: {query: SELECT * FROM shop.users, columns: [{name: user_id}, {name: region}]}
    fields:
      - {name: user_id, type: string, column: user_id, primary: true}
      - {name: region, type: string, column: region}
  - name: orders
    sql:
      query: SELECT user_id, trim(ref) AS order_id, product, amount FROM shop.stream WHERE kind = 'order'
      columns: [{name: user_id}, {name: order_id}, {name: product}, {name: amount}]
    fields:
      - {name: user_id, type: string, column: user_id}
      - {name: order_id, type: string, column: order_id}
      - {name: product, type: string, column: product}
      - {name: amount, type: number, column: amount}
    measures:
      - {name: order_count, type: count}
      - {name: revenue, type: sum, sql_snippet: "${orders.amount}"}
      - {name: distinct_orders, type: count_distinct, sql_snippet: "${orders.order_id}"}
      - {name: wine_lines, type: count, filters: [{sql_snippet: "${orders.product} = 'wine'"}]}
    relationships:
      - {type: N:1, field: user_id, target: {name: users, field: user_id}}
  - name: big_orders
    sql:
      query: >
        SELECT user_id, trim(ref) AS order_id, product, amount FROM shop.stream
        WHERE kind = 'order' AND amount >= 10
      columns: [{name: user_id}, {name: order_id}, {name: product}, {name: amount}]
    fields:
      - {name: user_id, type: string, column: user_id}
      - {name: order_id, type: string, column: order_id}
      - {name: product, type: string, column: product}
      - {name: amount, type: number, column: amount}
    measures:
      - {name: big_count, type: count}
      - {name: big_revenue, type: sum, sql_snippet: "${big_orders.amount}"}
      - {name: distinct_big, type: count_distinct, sql_snippet: "${big_orders.order_id}"}
    relationships:
      - {type: N:1, field: user_id, target: {name: users, field: user_id}}
      - {type: 1:1, field: order_id, target: {name: orders, field: order_id}}
  - name: refunds
    sql:
      query: SELECT user_id, trim(ref) AS ref_order_id, amount AS refund FROM shop.stream WHERE kind = 'refund'
      columns: [{name: user_id}, {name: ref_order_id}, {name: refund}]
    fields:
      - {name: user_id, type: string, column: user_id}
      - {name: ref_order_id, type: string, column: ref_order_id}
      - {name: refund, type: number, column: refund}
    measures:
      - {name: refund_total, type: sum, sql_snippet: "${refunds.refund}"}
      - {name: refunded_orders, type: count_distinct, sql_snippet: "${refunds.ref_order_id}"}
      - {name: refund_share, type: number, sql_snippet: "sum(${refunds.refund}) / count(*)"}
    relationships:
      - {type: N:1, field: user_id, target: {name: users, field: user_id}}
      - {type: N:1, field: ref_order_id, target: {name: orders, field: order_id}}
"""

# (kind, user_id, ref, product, amount)
STREAM = [
    ("order", "u1", "A1", "wine", 12.0),
    ("order", "u1", " A2", "beer", 5.0),
    ("order", "u2", "B1", "wine", 30.0),
    ("order", "u3", "C1", "beer", 8.0),
    ("order", "u3", "C1", "beer", 8.0),      # the same line twice: counted twice, one distinct order
    ("refund", "u1", "A1", None, 12.0),
    ("refund", "u2", "B1 ", None, 10.0),
    ("refund", "u2", "B1", None, 5.0),
    ("refund", "u9", "Z9", None, 1.0),       # nobody's order, no user row
    ("view", "u1", None, None, None),
    (None, "u1", "A1", "wine", 99.0),        # no kind: in no entity (its predicates are NULL)
]
USERS = [("u1", "west"), ("u2", "east"), ("u3", "west")]

TOTALS = {"measures": ["orders.order_count", "orders.revenue", "orders.distinct_orders", "orders.wine_lines",
                       "big_orders.big_count", "big_orders.big_revenue", "refunds.refund_total"]}
BY_REGION = {**TOTALS, "dimensions": ["users.region"], "order": {"users.region": "asc"}}
# big orders and refunds reach a product through the order line they stand for: entities group by
# different columns, and one join serves two of the three
BY_PRODUCT = {"measures": ["orders.order_count", "orders.revenue", "big_orders.big_count", "refunds.refund_total"],
              "dimensions": ["orders.product"], "order": {"orders.product": "asc"}}
# three distinct counts of one value (trim(ref)), each of its own rows: counted in two steps
DISTINCT_BY_PRODUCT = {"measures": ["orders.distinct_orders", "big_orders.distinct_big", "refunds.refunded_orders"],
                       "dimensions": ["orders.product"], "order": {"orders.product": "asc"}}
WEST_BY_PRODUCT = {**BY_PRODUCT, "filters": [{"member": "users.region", "operator": "equals", "values": ["west"]}]}

# Worked out by hand from STREAM and USERS.
EXPECTED = {
    "totals": [(5, 63.0, 4, 2, 2, 42.0, 28.0)],
    "by_region": [("east", 1, 30.0, 1, 1, 1, 30.0, 15.0),
                  ("west", 4, 33.0, 3, 1, 1, 12.0, 12.0),
                  (None, 0, None, 0, 0, 0, None, 1.0)],
    "by_product": [("beer", 3, 21.0, 0, None), ("wine", 2, 42.0, 2, 27.0), (None, 0, None, 0, 1.0)],
    "distinct_by_product": [("beer", 2, 0, 0), ("wine", 2, 2, 2), (None, 0, 0, 1)],
    "west_by_product": [("beer", 3, 21.0, 0, None), ("wine", 1, 12.0, 1, 12.0)],
}


@pytest.fixture(scope="module")
def stream_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "stream.yml"
    path.write_text(STREAM_MODEL)
    return load_model(path)


def compile_on(model, query: dict, views=VIEWS, **options):
    return compile_query(model, parse_query(query), run_date=RUN_DATE, views=views, **options)


def reads_of(compiled, view: str) -> int:
    """How many times the SQL scans `view`."""
    tree = sqlglot.parse_one(compiled.sql, read="spark")
    return sum(1 for t in tree.find_all(exp.Table) if t.name == view)


def cte_names(compiled) -> list[str]:
    return [cte.alias for cte in sqlglot.parse_one(compiled.sql, read="spark").find_all(exp.CTE)]


# ---------------------------------------------------------------- pure Python


@pytest.mark.parametrize("text, shared", [
    ("SELECT a, trim(b) AS c FROM t WHERE k = 'x'", True),
    ("SELECT a FROM t", True),
    ("SELECT * FROM t WHERE k = 'x'", False),
    ("SELECT a FROM t JOIN u ON t.a = u.a", False),
    ("SELECT a, count(*) AS n FROM t GROUP BY a", False),
    ("SELECT DISTINCT a FROM t", False),
    ("SELECT a, row_number() OVER (PARTITION BY a ORDER BY b) AS r FROM t", False),
    ("SELECT a FROM (SELECT a FROM t) AS s", False),
    ("SELECT a FROM t WHERE b IN (SELECT b FROM u)", False),
    ("SELECT a, rand() AS r FROM t", False),
    ("SELECT a FROM t LIMIT 5", False),
    ("SELECT a, a FROM t", False),
])
def test_only_filtered_projections_of_one_table_have_a_scan_shape(text, shared):
    assert (scan_shape(sqlglot.parse_one(text, read="trino")) is not None) is shared


def test_the_three_order_entities_read_the_activity_stream_once():
    model = load_model(PROJECT)
    overall = compile_query(model, load_query(REPO / "lens/queries/order_outcomes.yml"), run_date=RUN_DATE,
                            views=SEED_VIEWS)
    by_state = compile_query(model, load_query(REPO / "lens/queries/order_outcomes.yml", "by_state"),
                             run_date=RUN_DATE, views=SEED_VIEWS)
    assert reads_of(overall, "lens_activity_stream") == 1
    assert (reads_of(by_state, "lens_activity_stream"), reads_of(by_state, "lens_customers")) == (1, 1)
    assert "lens_tag" not in overall.sql and "lens_tag" not in by_state.sql   # same grouping: flags


def test_entities_that_group_differently_are_tagged_and_only_the_rows_that_need_a_join_are_joined():
    model = load_model(PROJECT)
    compiled = compile_query(model, load_query(REPO / "lens/queries/order_outcomes.yml", "by_product_category"),
                             run_date=RUN_DATE, views=SEED_VIEWS)
    parts = {cte.alias: cte.this for cte in sqlglot.parse_one(compiled.sql, read="spark").find_all(exp.CTE)}
    # as by hand: the placed lines; the rejections and invoices, joined to the placed lines they refer to
    assert parts["lens_s_order_placed_0"].args["where"].this.sql("spark") == "activity = 'order_placed'"
    assert parts["lens_s_order_placed_1"].args["where"].this.sql("spark") == (
        "activity = 'order_rejected' OR activity = 'order_invoiced'")
    placed, outcomes = parts["lens_u_order_placed"].this, parts["lens_u_order_placed"].expression   # UNION ALL
    assert placed.args["from_"].this.name == "lens_s_order_placed_0" and not placed.args.get("joins")
    assert outcomes.args["from_"].this.name == "lens_s_order_placed_1"
    assert [j.this.name for j in outcomes.args["joins"]] == ["lens_e_order_placed"]
    assert reads_of(compiled, "lens_activity_stream") == 3


def test_distinct_counts_of_one_value_are_counted_in_two_steps():
    compiled = compile_query(load_model(PROJECT), load_query(REPO / "lens/queries/rejections_above_average.yml"),
                             run_date=RUN_DATE, views=SEED_VIEWS)
    tree = sqlglot.parse_one(compiled.sql, read="spark")
    assert not list(tree.find_all(exp.Distinct)) and len(list(tree.find_all(exp.CountIf))) == 2
    assert "lens_v_order_rejected" in cte_names(compiled)


def test_number_measures_and_select_star_entities_are_aggregated_apart(stream_model):
    compiled = compile_on(stream_model, {"measures": ["orders.order_count", "refunds.refund_share"]})
    assert reads_of(compiled, "scan_stream") == 2 and not any(n.startswith("lens_s_") for n in cte_names(compiled))


def test_a_single_entity_query_has_no_shared_scan(stream_model):
    assert cte_names(compile_on(stream_model, {"measures": ["orders.revenue"]})) == ["lens_e_orders", "lens_a_orders",
                                                                                    "lens_r"]


# ---------------------------------------------------------------- on Spark


@pytest.fixture(scope="module")
def stream_views(spark):
    spark.createDataFrame(STREAM, "kind string, user_id string, ref string, product string, amount double") \
        .createOrReplaceTempView(VIEWS["shop.stream"])
    spark.createDataFrame(USERS, "user_id string, region string").createOrReplaceTempView(VIEWS["shop.users"])
    return VIEWS


def answer(spark, model, query: dict, **options):
    compiled = compile_on(model, query, **options)
    return compiled, spark.sql(compiled.sql)


@pytest.mark.parametrize("name, query", [("totals", TOTALS), ("by_region", BY_REGION), ("by_product", BY_PRODUCT),
                                         ("west_by_product", WEST_BY_PRODUCT),
                                         ("distinct_by_product", DISTINCT_BY_PRODUCT)])
def test_a_shared_scan_answers_as_the_entities_apart_and_as_by_hand(spark, stream_views, stream_model, name, query):
    shared_sql, shared = answer(spark, stream_model, query)
    # a dimension the entities reach differently: one read per join set, + the orders joined to
    assert reads_of(shared_sql, "scan_stream") == (3 if "orders.product" in query.get("dimensions", ()) else 1)
    apart_sql, apart = answer(spark, stream_model, query, passes=("distinct_split",))   # shared_scan off
    assert not any(n.startswith(("lens_s_", "lens_v_")) for n in cte_names(apart_sql))
    assert ("lens_v_orders" in cte_names(shared_sql)) is (name == "distinct_by_product")
    expected = spark.createDataFrame(EXPECTED[name], shared.schema)
    assert_df_equality(shared, apart, ignore_nullable=True)
    assert_df_equality(shared, expected, ignore_nullable=True)

"""lens.planner + lens.query_format, pure Python: compilation, fan-out/chasm numbers, filters, injection, errors.

Exact numbers here come from sqlglot's own Python executor running the compiled SQL on the tiny shop
tables (no Spark); tests/lens/test_execute.py checks the same on Spark.
"""
from __future__ import annotations

import argparse
import json
import datetime as dt
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.executor import execute
from sqlglot.executor.env import ENV

from lens.errors import LensError
from lens.model import load_model
from lens.planner import compile_query
from lens.query_format import (Filter, load_query, parse_filter_arg, parse_query, parse_time_dimension_arg,
                        resolve_date_range, variant_names)
from tests.lens.shop import CUSTOMERS, ORDERS, RETURNS, VIEWS, write_shop_model

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "lens" / "seed" / "customer_360.lens.yml"
PROJECT = REPO / "lens" / "customer_360.yml"
SEED_VIEWS = {"icebase.audience.activity_streams_large_data": "lens_activity_stream",
              "icebase.audience.customers_large_data": "lens_customers"}
RUN_DATE = dt.date(2026, 3, 15)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return load_model(write_shop_model(tmp_path_factory.mktemp("shop")))


@pytest.fixture(scope="module")
def seed():
    return load_model(SEED)


def compile_on(model, query: dict, views=VIEWS):
    return compile_query(model, parse_query(query), run_date=RUN_DATE, views=views)


def run_on_shop(shop, query: dict, monkeypatch) -> set[tuple]:
    """Run the compiled SQL with sqlglot's Python executor on the shop rows."""
    monkeypatch.setitem(ENV, "NULLSAFEEQ", lambda a, b: a == b)  # `IS NOT DISTINCT FROM`, absent there
    tables = {
        "shop_customers": [dict(zip(("customer_id", "region", "credit_limit"), r)) for r in CUSTOMERS],
        "shop_orders": [dict(zip(("order_id", "customer_id", "product", "amount", "ordered_at"), r)) for r in ORDERS],
        "shop_returns": [dict(zip(("return_id", "customer_id", "refund"), r)) for r in RETURNS],
    }
    compiled = compile_on(shop, query)
    result = execute(compiled.sql, dialect="spark", tables=tables)
    assert tuple(result.columns) == compiled.columns
    return set(result.rows)


def ctes(compiled) -> dict[str, exp.Select]:
    tree = sqlglot.parse_one(compiled.sql, read="spark")
    return {cte.alias: cte.this for cte in tree.find_all(exp.CTE)}


# ---------------------------------------------------------------- fan-out and chasm traps


def test_chasm_trap_two_sibling_one_to_many_entities_never_double_count(shop, monkeypatch):
    rows = run_on_shop(shop, {"measures": ["orders.revenue", "returns.refund_total", "orders.order_count"],
                              "dimensions": ["customers.region"]}, monkeypatch)
    # naive customers-orders-returns join: west revenue 125, refunds 30
    assert rows == {("west", 65.0, 10.0, 4), ("east", None, 1.0, 0)}


def test_chasm_trap_without_dimensions(shop, monkeypatch):
    assert run_on_shop(shop, {"measures": ["orders.revenue", "returns.refund_total"]}, monkeypatch) == {(65.0, 11.0)}


def test_fan_out_customer_measures_with_order_measures(shop, monkeypatch):
    rows = run_on_shop(shop, {"measures": ["customers.total_credit", "customers.count_customers", "orders.revenue"],
                              "dimensions": ["customers.region"]}, monkeypatch)
    # naive join: west credit 350 (A counted once per order), 4 customers
    assert rows == {("west", 150.0, 2, 65.0), ("east", 70.0, 1, None)}


def test_fan_out_grouping_a_parent_measure_by_a_child_dimension_counts_each_parent_once(shop, monkeypatch):
    rows = run_on_shop(shop, {"measures": ["customers.total_credit", "customers.count_customers"],
                              "dimensions": ["orders.product"]}, monkeypatch)
    # A has two p1 orders: a naive join gives p1 credit 250 and 3 customers
    assert rows == {("p1", 150.0, 2), ("p2", 100.0, 1), (None, 70.0, 1)}


def test_each_measure_entity_is_aggregated_in_its_own_subquery(shop):
    compiled = compile_on(shop, {"measures": ["orders.revenue", "returns.refund_total"], "dimensions": ["customers.region"]})
    parts = ctes(compiled)
    for entity, other in (("orders", "returns"), ("returns", "orders")):
        tables = {t.name for t in parts[f"lens_a_{entity}"].find_all(exp.Table)}
        assert tables == {f"lens_e_{entity}", "lens_e_customers"} and f"lens_e_{other}" not in tables
        assert parts[f"lens_a_{entity}"].args.get("group") is not None
    joins = parts["lens_r"].args["joins"]
    assert [j.side for j in joins] == ["FULL"] and isinstance(joins[0].args["on"], exp.NullSafeEQ)


def test_child_dimension_uses_distinct_primary_keys(shop):
    parts = ctes(compile_on(shop, {"measures": ["customers.total_credit"], "dimensions": ["orders.product"]}))
    assert parts["lens_k_customers"].args.get("distinct") is not None
    assert {t.name for t in parts["lens_a_customers"].find_all(exp.Table)} == {"lens_k_customers", "lens_e_customers"}


def test_fan_out_without_a_primary_key_is_an_error(tmp_path):
    text = Path(write_shop_model(tmp_path)).read_text().replace(
        "{name: customer_id, type: string, column: customer_id, primary: true}",
        "{name: customer_id, type: string, column: customer_id}")
    (tmp_path / "nopk.yml").write_text(text)
    model = load_model(tmp_path / "nopk.yml")
    with pytest.raises(LensError, match="entity 'customers': its measures are asked across a one-to-many"):
        compile_on(model, {"measures": ["customers.total_credit"], "dimensions": ["orders.product"]})


# ---------------------------------------------------------------- the seed and project models


def test_seed_rfm_per_customer_compiles_with_a_left_join_to_customers(seed):
    compiled = compile_on(seed, {"measures": ["order_placed.recency"], "dimensions": ["customer.customer_id"]},
                          SEED_VIEWS)
    assert compiled.columns == ("customer.customer_id", "order_placed.recency")
    assert set(compiled.tables) == {"icebase.audience.customers_large_data", "icebase.audience.activity_streams_large_data"}
    text = " ".join(compiled.sql.split())
    assert "LEFT JOIN lens_e_customer AS `customer` ON `order_placed`.`entity_id` = `customer`.`customer_id`" in text
    assert ("MIN( EXTRACT(DAY FROM CAST(CAST('2026-03-15' AS DATE) AS TIMESTAMP) - "
            "CAST(`order_placed`.`activity_ts` AS TIMESTAMP)) )") in text
    assert "FROM `lens_activity_stream` AS activity_streams_large_data WHERE activity = 'order_placed'" in text


def test_compiled_sql_is_deterministic(seed):
    query = {"measures": ["order_placed.frequency", "order_rejected.frequency"], "dimensions": ["customer.state"],
             "filters": [{"member": "customer.state", "operator": "equals", "values": ["CA", "NY"]}]}
    first = compile_on(seed, query, SEED_VIEWS).sql
    assert all(compile_on(seed, query, SEED_VIEWS).sql == first for _ in range(3))
    assert len(sqlglot.parse(first, read="spark")) == 1


@pytest.mark.parametrize("name", ["rfm", "order_outcomes", "days_to_invoice", "rejections_above_average"])
def test_saved_queries_compile_with_every_variant(name):
    model = load_model(PROJECT)
    path = REPO / "lens" / "queries" / f"{name}.yml"
    for variant in [None, *variant_names(path)]:
        compiled = compile_query(model, load_query(path, variant), run_date=RUN_DATE, views=SEED_VIEWS)
        assert compiled.columns[-1].split(".")[0] in model.entities


def test_rejections_last_month_binds_to_the_run_date():
    model = load_model(PROJECT)
    compiled = compile_query(model, load_query(REPO / "lens/queries/rejections_above_average.yml"),
                             run_date=dt.date(2026, 3, 15), views=SEED_VIEWS)
    text = " ".join(compiled.sql.split())
    assert ("`order_rejected`.`activity_ts` >= CAST('2026-02-01 00:00:00' AS TIMESTAMP) "
            "AND `order_rejected`.`activity_ts` < CAST('2026-03-01 00:00:00' AS TIMESTAMP)") in text
    assert "CAST('2025-03-01 00:00:00' AS TIMESTAMP)" in text
    # the comparison of two measures is a HAVING on the combined result
    assert "FROM lens_r WHERE `order_rejected.rejected_orders_above_average` > 0" in text


# ---------------------------------------------------------------- filters and injection


def where_of(compiled, cte: str):
    return ctes(compiled)[cte].args["where"].this


@pytest.mark.parametrize("operator, values, expected", [
    ("equals", ["west"], "`customers`.`region` = 'west'"),
    ("equals", ["west", "east"], "`customers`.`region` IN ('west', 'east')"),
    ("notEquals", ["west"], "(NOT `customers`.`region` = 'west' OR `customers`.`region` IS NULL)"),
    ("contains", ["es"], "(`customers`.`region` ILIKE '%es%')"),
    ("notContains", ["es", "x"],
     "(NOT (`customers`.`region` ILIKE '%es%' OR `customers`.`region` ILIKE '%x%') OR `customers`.`region` IS NULL)"),
    ("startsWith", ["w"], "(`customers`.`region` ILIKE 'w%')"),
    ("endsWith", ["100%"], "(`customers`.`region` ILIKE '%100\\\\%')"),
    ("set", [], "NOT `customers`.`region` IS NULL"),
    ("notSet", [], "`customers`.`region` IS NULL"),
])
def test_string_filter_operators(shop, operator, values, expected):
    compiled = compile_on(shop, {"measures": ["customers.count_customers"],
                                 "filters": [{"member": "customers.region", "operator": operator, "values": values}]})
    assert where_of(compiled, "lens_a_customers").sql("spark") == expected


@pytest.mark.parametrize("operator, values, expected", [
    ("gt", ["10"], "`customers`.`credit_limit` > 10"),
    ("gte", ["-2.5"], "`customers`.`credit_limit` >= -2.5"),
    ("lt", ["1e3"], "`customers`.`credit_limit` < 1e3"),
    ("lte", ["0"], "`customers`.`credit_limit` <= 0"),
])
def test_number_filter_operators(shop, operator, values, expected):
    compiled = compile_on(shop, {"measures": ["customers.count_customers"],
                                 "filters": [{"member": "customers.credit_limit", "operator": operator, "values": values}]})
    assert where_of(compiled, "lens_a_customers").sql("spark") == expected


@pytest.mark.parametrize("operator, values, expected", [
    ("inDateRange", ["2026-01-01", "2026-01-31"],
     "(`orders`.`ordered_at` >= CAST('2026-01-01 00:00:00' AS TIMESTAMP) AND "
     "`orders`.`ordered_at` < CAST('2026-02-01 00:00:00' AS TIMESTAMP))"),
    ("notInDateRange", ["last month"],
     "(`orders`.`ordered_at` < CAST('2026-02-01 00:00:00' AS TIMESTAMP) OR "
     "`orders`.`ordered_at` >= CAST('2026-03-01 00:00:00' AS TIMESTAMP))"),
    ("beforeDate", ["2026-01-20"], "`orders`.`ordered_at` < CAST('2026-01-20 00:00:00' AS TIMESTAMP)"),
    ("afterDate", ["2026-01-20"], "`orders`.`ordered_at` >= CAST('2026-01-21 00:00:00' AS TIMESTAMP)"),
    ("afterDate", ["2026-01-20T12:30:00"], "`orders`.`ordered_at` > CAST('2026-01-20 12:30:00' AS TIMESTAMP)"),
])
def test_date_filter_operators(shop, operator, values, expected):
    compiled = compile_on(shop, {"measures": ["orders.order_count"],
                                 "filters": [{"member": "orders.ordered_at", "operator": operator, "values": values}]})
    assert where_of(compiled, "lens_a_orders").sql("spark") == expected


def test_and_or_nesting(shop):
    compiled = compile_on(shop, {"measures": ["orders.order_count"], "filters": [{"or": [
        {"member": "orders.product", "operator": "equals", "values": ["p1"]},
        {"and": [{"member": "orders.amount", "operator": "gt", "values": ["15"]},
                 {"member": "customers.region", "operator": "equals", "values": ["west"]}]}]}]})
    assert where_of(compiled, "lens_a_orders").sql("spark") == (
        "(`orders`.`product` = 'p1' OR (`orders`.`amount` > 15 AND `customers`.`region` = 'west'))")


def test_a_filter_on_a_measure_becomes_having(shop, monkeypatch):
    query = {"measures": ["orders.revenue"], "dimensions": ["orders.product"],
             "filters": [{"member": "orders.revenue", "operator": "gt", "values": ["40"]}]}
    assert ctes(compile_on(shop, query))["lens_a_orders"].args.get("where") is None
    assert run_on_shop(shop, query, monkeypatch) == {("p1", 45.0)}


def test_a_filter_on_an_unrequested_measure_still_filters(shop, monkeypatch):
    query = {"dimensions": ["customers.region"], "measures": ["customers.count_customers"],
             "filters": [{"member": "orders.order_count", "operator": "gte", "values": ["1"]}]}
    assert run_on_shop(shop, query, monkeypatch) == {("west", 2)}


def test_a_group_mixing_measures_and_dimensions_is_an_error(shop):
    with pytest.raises(LensError, match="mixes measures and dimensions"):
        compile_on(shop, {"measures": ["orders.revenue"], "filters": [{"or": [
            {"member": "orders.revenue", "operator": "gt", "values": ["1"]},
            {"member": "orders.product", "operator": "equals", "values": ["p1"]}]}]})


@pytest.mark.parametrize("value", ["west' OR '1'='1", "west'); DROP TABLE shop_customers; --", "\\' OR 1=1 --"])
def test_an_injection_attempt_in_a_string_filter_value_stays_one_literal(shop, value, monkeypatch):
    query = {"measures": ["customers.count_customers"],
             "filters": [{"member": "customers.region", "operator": "equals", "values": [value]}]}
    condition = where_of(compile_on(shop, query), "lens_a_customers")
    assert isinstance(condition, exp.EQ) and condition.expression.this == value
    assert run_on_shop(shop, query, monkeypatch) == {(0,)}


@pytest.mark.parametrize("query, message", [
    ({"measures": ["customers.count_customers"],
      "filters": [{"member": "customers.credit_limit", "operator": "gt", "values": ["1 OR 1=1"]}]}, "is not a number"),
    ({"measures": ["customers.count_customers"],
      "filters": [{"member": "orders.ordered_at", "operator": "beforeDate", "values": ["2026-01-01' OR '1'='1"]}]},
     "is not a date"),
    ({"measures": ["customers.count_customers; DROP TABLE x"]}, "is not a member name"),
    ({"measures": ["customers.count_customers"], "order": {"customers.count_customers": "desc; DROP TABLE x"}},
     "direction must be asc or desc"),
    ({"measures": ["customers.count_customers"], "timezone": "UTC'); DROP TABLE x; --"}, "unknown time zone"),
    ({"measures": ["customers.count_customers"], "limit": "1; DROP TABLE x"}, "limit: expected a positive whole number"),
])
def test_injection_attempts_in_typed_values_and_names_are_errors(shop, query, message):
    with pytest.raises(LensError, match=message):
        compile_on(shop, query)


# ---------------------------------------------------------------- time dimensions, order, limit


def test_time_dimension_granularity_and_range(shop, monkeypatch):
    query = {"measures": ["orders.revenue"], "timeDimensions": [
        {"dimension": "orders.ordered_at", "granularity": "month", "dateRange": ["2026-01-01", "2026-02-28"]}]}
    compiled = compile_on(shop, query)
    assert compiled.columns == ("orders.ordered_at.month", "orders.revenue")
    assert "CAST(DATE_TRUNC('MONTH', `orders`.`ordered_at`) AS DATE)" in compiled.sql


def test_a_query_time_zone_shifts_time_dimensions(shop):
    compiled = compile_on(shop, {"measures": ["orders.revenue"], "timezone": "America/New_York",
                                 "timeDimensions": [{"dimension": "orders.ordered_at", "granularity": "day",
                                                     "dateRange": "yesterday"}]})
    text = " ".join(compiled.sql.split())
    assert "DATE_TRUNC('DAY', FROM_UTC_TIMESTAMP(`orders`.`ordered_at`, 'America/New_York'))" in text
    assert ("FROM_UTC_TIMESTAMP(`orders`.`ordered_at`, 'America/New_York') >= "
            "CAST('2026-03-14 00:00:00' AS TIMESTAMP)") in text


def test_order_and_limit_break_ties_by_dimensions(shop):
    compiled = compile_on(shop, {"measures": ["orders.revenue"], "dimensions": ["customers.region", "orders.product"],
                                 "order": {"orders.revenue": "desc"}, "limit": 2})
    final = sqlglot.parse_one(compiled.sql, read="spark")
    assert [o.sql("spark") for o in final.args["order"].expressions] == [
        "`orders.revenue` DESC", "`customers.region` ASC NULLS LAST", "`orders.product` ASC NULLS LAST"]
    assert final.args["limit"].expression.this == "2"


@pytest.mark.parametrize("query, message", [
    ({"measures": ["customers.region"]}, "customers.region is a field; list it under dimensions"),
    ({"dimensions": ["orders.revenue"]}, "orders.revenue is a measure; list it under measures"),
    ({"measures": ["orders.revenu"]}, "entity 'orders' has no member 'revenu' \\(did you mean 'revenue'\\?\\)"),
    ({"measures": ["order.revenue"]}, "no entity 'order' \\(did you mean 'orders'\\?\\)"),
    ({"measures": ["orders.revenue"], "order": {"customers.region": "asc"}}, "only members the query returns"),
    ({"measures": ["orders.revenue"], "timeDimensions": [{"dimension": "orders.product", "granularity": "day"}]},
     "must be a date or time"),
    ({"measures": ["orders.revenue", "orders.revenue"]}, "asked for twice"),
    ({"filters": []}, "at least one measure or dimension"),
])
def test_query_errors(shop, query, message):
    with pytest.raises(LensError, match=message):
        compile_on(shop, query)


def test_unmapped_tables_name_the_entity_and_the_catalog(shop):
    with pytest.raises(LensError, match="entity 'orders': sql.query reads table shop.orders, which has no catalog"):
        compile_on(shop, {"measures": ["orders.revenue"]}, views={"shop.customers": "c"})


def test_a_dimensions_only_query_lists_distinct_values(shop, monkeypatch):
    rows = run_on_shop(shop, {"dimensions": ["customers.region", "orders.product"]}, monkeypatch)
    assert rows == {("west", "p1"), ("west", "p2"), ("east", None)}


# ---------------------------------------------------------------- date ranges and the CLI syntax


@pytest.mark.parametrize("phrase, start, stop", [
    ("today", "2026-03-15", "2026-03-16"),
    ("yesterday", "2026-03-14", "2026-03-15"),
    ("this week", "2026-03-09", "2026-03-16"),
    ("this month", "2026-03-01", "2026-03-16"),
    ("last month", "2026-02-01", "2026-03-01"),
    ("last 12 months", "2025-03-01", "2026-03-01"),
    ("last quarter", "2025-10-01", "2026-01-01"),
    ("last year", "2025-01-01", "2026-01-01"),
    ("last 7 days", "2026-03-08", "2026-03-15"),
    ("2026-01-05", "2026-01-05", "2026-01-06"),
])
def test_relative_date_ranges_end_at_the_run_date(phrase, start, stop):
    assert resolve_date_range((phrase,), RUN_DATE, "t") == (
        dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(stop))


def test_bad_date_ranges_are_errors():
    with pytest.raises(LensError, match="empty"):
        resolve_date_range(("2026-02-01", "2026-01-01"), RUN_DATE, "t")
    with pytest.raises(LensError, match="relative range"):
        resolve_date_range(("2026-01-01T10:00:00",), RUN_DATE, "t")
    with pytest.raises(LensError, match="UTC offset"):
        resolve_date_range(("2026-01-01T10:00:00+02:00", "2026-01-02"), RUN_DATE, "t")


def test_filter_arguments():
    assert parse_filter_arg("customer.state:equals:CA,NY") == Filter("customer.state", "equals", ("CA", "NY"))
    assert parse_filter_arg("customer.address:contains:Main St\\, 5") == Filter(
        "customer.address", "contains", ("Main St, 5",))
    assert parse_filter_arg("order_placed.activity_ts:afterDate:2026-01-01T10:00:00") == Filter(
        "order_placed.activity_ts", "afterDate", ("2026-01-01T10:00:00",))
    assert parse_filter_arg("customer.email:set") == Filter("customer.email", "set", ())
    for bad, message in (("customer.state", "expected MEMBER:OPERATOR"), ("customer.state:like:x", "not an operator"),
                         ("customer.state:equals", "takes at least 1 value"), ("customer.email:set:x", "takes no values")):
        with pytest.raises(LensError, match=message):
            parse_filter_arg(bad)


def test_time_dimension_arguments():
    td = parse_time_dimension_arg("order_placed.activity_ts:month:last 6 months")
    assert (td.member, td.granularity, td.date_range, td.key) == (
        "order_placed.activity_ts", "month", ("last 6 months",), "order_placed.activity_ts.month")
    td = parse_time_dimension_arg("order_placed.activity_ts:2026-01-01,2026-01-31")
    assert (td.granularity, td.date_range) == (None, ("2026-01-01", "2026-01-31"))


def cli_args(*argv: str) -> argparse.Namespace:
    """Arguments as the real `c360 lens sql` parser builds them, so the test cannot drift from the CLI."""
    from jobs.cli import build_parser

    return build_parser().parse_args(["lens", "sql", "--model", str(SEED), *argv])


def test_lens_sql_command_prints_the_compiled_sql_without_spark(tmp_path, capsys):
    from jobs.core.config import Config
    from jobs.core.context import JobContext
    from jobs.commands.lens import run

    ctx = JobContext(config=Config(warehouse=str(tmp_path)), run_date=RUN_DATE)
    run(ctx, cli_args("--measure", "order_placed.recency", "--dimension", "customer.customer_id",
                      "--filter", "customer.state:equals:CA"))
    printed = capsys.readouterr().out
    assert "`lens_silver_activity_stream`" in printed and "`customer`.`state` = 'CA'" in printed
    assert not ctx.has_spark


def test_cli_query_file_and_members_are_exclusive():
    from jobs.commands.lens import build_query

    with pytest.raises(LensError, match="either --query FILE or --measure"):
        build_query(cli_args("--query", str(REPO / "lens/queries/rfm.yml"), "--measure", "order_placed.frequency"))
    query = build_query(cli_args("--query", str(REPO / "lens/queries/order_outcomes.yml"), "--variant", "by_state",
                                 "--filter", "customer.state:equals:CA", "--limit", "5"))
    assert query.dimensions == ("customer.state",) and query.limit == 5
    assert query.filters[-1] == Filter("customer.state", "equals", ("CA",))


def test_cli_output_formats(capsys):
    from jobs.commands.lens import format_table, write_csv, write_json

    columns = ["customer.state", "order_placed.frequency"]
    rows = [("CA", 3), (None, float("nan")), ("NY", dt.date(2026, 1, 2))]
    write_json(columns, iter(rows))
    assert json.loads(capsys.readouterr().out) == [
        {"customer.state": "CA", "order_placed.frequency": 3}, {"customer.state": None, "order_placed.frequency": None},
        {"customer.state": "NY", "order_placed.frequency": "2026-01-02"}]
    write_csv(columns, iter(rows[:2]))
    assert capsys.readouterr().out == "customer.state,order_placed.frequency\nCA,3\n,\n"
    table = format_table(columns, [("CA", 3), (None, 12)], more=True).splitlines()
    assert table[0] == "customer.state  order_placed.frequency"
    assert table[2:] == ["CA                                   3", "NULL                                12",
                         "(2 rows; more not shown, use --max-rows or --format csv)"]


def test_a_derived_measure_combines_entities_after_aggregation_with_trino_division(shop):
    query = {"measures": ["customers.customers_per_order"], "dimensions": ["customers.region"]}
    combined = ctes(compile_on(shop, query))["lens_r"].sql("spark")
    # Trino's bigint / bigint is integer division (numbers: tests/lens/test_execute.py)
    assert combined.endswith("SELECT COALESCE(`a0`.`d0`, `a1`.`d0`) AS `customers.region`, "
                             "CAST(CAST(COALESCE(`a0`.`m0`, 0) AS BIGINT) / NULLIF(CAST(COALESCE(`a1`.`m0`, 0) AS BIGINT), 0) "
                             "AS BIGINT) AS `customers.customers_per_order` FROM lens_a_customers AS `a0` "
                             "FULL OUTER JOIN lens_a_orders AS `a1` ON `a0`.`d0` IS NOT DISTINCT FROM `a1`.`d0`")

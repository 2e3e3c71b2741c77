"""What a compiled query reads, pure Python: the table list, the run date's cut-off, exact sums.

- `CompiledQuery.tables` is read off the generated SQL, whatever the plan (entity CTEs, shared
  scans, scans in groups by joins): a fresh Spark session registers exactly those views, so a
  table missing from the list is `TABLE_OR_VIEW_NOT_FOUND` there.
- With `as_of` (what lens.execute passes for the activity stream), every read of the table is of
  its rows before the day after the run date (interface §5).
- A sum of a value the model casts to double is added up as a DECIMAL (lens.planner.SUM_DECIMAL).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from lens.execute import as_of_columns, views_for
from lens.model import load_model
from lens.planner import compile_query
from lens.query_format import load_query, parse_query, variant_names
from jobs.lens_stage.settings import LensSettings
from tests.lens.shop import VIEWS, write_shop_model

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "lens" / "customer_360.yml"
SEED = REPO / "lens" / "seed" / "customer_360.lens.yml"
QUERIES = sorted((REPO / "lens" / "queries").glob("*.yml"))
RUN_DATE = dt.date(2026, 3, 15)
STREAM = "icebase.audience.activity_streams_large_data"
SEED_VIEWS = {STREAM: "lens_activity_stream", "icebase.audience.customers_large_data": "lens_customers"}
AS_OF = {STREAM: "activity_ts"}
SAVED = [(path, variant) for path in QUERIES for variant in [None, *variant_names(path)]]
SAVED_IDS = [f"{path.stem}{'-' + variant if variant else ''}" for path, variant in SAVED]


def tables_in(sql_text: str) -> set[str]:
    """Every table the SQL reads that is not one of its own CTEs, by sqlglot."""
    tree = sqlglot.parse_one(sql_text, read="spark")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}


def ctes_of(sql_text: str) -> dict[str, exp.Expression]:
    return {cte.alias: cte.this for cte in sqlglot.parse_one(sql_text, read="spark").find_all(exp.CTE)}


@pytest.fixture(scope="module")
def project():
    return load_model(PROJECT)


@pytest.mark.parametrize("as_of", [None, AS_OF], ids=["plain", "as_of"])
@pytest.mark.parametrize("path, variant", SAVED, ids=SAVED_IDS)
def test_the_table_list_covers_every_table_the_sql_reads(project, path, variant, as_of):
    compiled = compile_query(project, load_query(path, variant), run_date=RUN_DATE, views=SEED_VIEWS, as_of=as_of)
    assert compiled.tables, "a saved query reads at least the activity stream"
    assert {SEED_VIEWS[t] for t in compiled.tables} == tables_in(compiled.sql)


def test_a_shared_scan_lists_the_table_it_scans(project):
    # order_outcomes reads the stream once for three entities (lens_s_), through no entity CTE
    compiled = compile_query(project, load_query(REPO / "lens/queries/order_outcomes.yml"), run_date=RUN_DATE,
                             views=SEED_VIEWS)
    assert not any(name.startswith("lens_e_") for name in ctes_of(compiled.sql))
    assert compiled.tables == (STREAM,)


@pytest.mark.parametrize("query", [
    {"measures": ["order_placed.recency"], "dimensions": ["customer.customer_id"]},
    {"measures": ["customer.count_customers"], "dimensions": ["customer.state"]},
    {"dimensions": ["customer.state"]},
    {"measures": ["order_placed.frequency", "order_rejected.frequency", "order_placed.monetary"],
     "dimensions": ["customer.state"]},
])
def test_the_table_list_of_ad_hoc_queries_on_the_seed_model(query):
    compiled = compile_query(load_model(SEED), parse_query(query), run_date=RUN_DATE, views=SEED_VIEWS, as_of=AS_OF)
    assert {SEED_VIEWS[t] for t in compiled.tables} == tables_in(compiled.sql)


# ---------------------------------------------------------------- as of the run date


@pytest.mark.parametrize("path, variant", SAVED, ids=SAVED_IDS)
def test_every_read_of_the_activity_stream_is_as_of_the_run_date(project, path, variant):
    compiled = compile_query(project, load_query(path, variant), run_date=RUN_DATE, views=SEED_VIEWS, as_of=AS_OF)
    parts = ctes_of(compiled.sql)
    cut = parts["lens_t_activity_stream"]
    assert cut.sql("spark") == ("SELECT * FROM `lens_activity_stream` "
                                "WHERE `activity_ts` < CAST('2026-03-16 00:00:00' AS TIMESTAMP)")
    # the view itself is read there and nowhere else
    readers = [name for name, body in parts.items()
               if any(t.name == "lens_activity_stream" for t in body.find_all(exp.Table))]
    assert readers == ["lens_t_activity_stream"]
    assert list(parts)[0] == "lens_t_activity_stream"   # defined before the CTEs that read it


def test_tables_without_a_time_column_are_read_whole(project):
    query = {"measures": ["customer.count_customers", "order_placed.frequency"], "dimensions": ["customer.state"]}
    compiled = compile_query(project, parse_query(query), run_date=RUN_DATE, views=SEED_VIEWS, as_of=AS_OF)
    customers = ctes_of(compiled.sql)["lens_e_customer"]
    assert [t.name for t in customers.find_all(exp.Table)] == ["lens_customers"] and not customers.args.get("where")


def test_the_as_of_setting_matches_the_activity_stream_of_any_warehouse(tmp_path):
    catalog = {STREAM: str(tmp_path / "silver" / "activity_stream"),
               "icebase.audience.customers_large_data": str(tmp_path / "silver" / "customers")}
    assert as_of_columns(catalog) == {STREAM: "activity_ts"}
    assert as_of_columns(catalog, LensSettings().as_of) == {STREAM: "activity_ts"}
    assert as_of_columns(catalog, {}) == {}
    assert as_of_columns({STREAM: "s3://bucket/wh/silver/activity_stream/"}) == {STREAM: "activity_ts"}
    assert as_of_columns({STREAM: str(tmp_path / "other" / "activity_stream")}) == {}
    assert views_for(catalog)[STREAM] == "lens_silver_activity_stream"


# ---------------------------------------------------------------- exact sums


def test_a_sum_of_a_value_cast_to_double_is_added_up_as_a_decimal(project):
    compiled = compile_query(project, load_query(REPO / "lens/queries/rfm.yml"), run_date=RUN_DATE, views=SEED_VIEWS)
    text = " ".join(compiled.sql.split())
    assert "CAST(SUM(CAST(`order_placed`.`order_value` AS DECIMAL(38, 9))) AS DOUBLE) AS `m2`" in text


def test_a_gated_sum_on_a_shared_scan_is_a_decimal_too(project):
    query = {"measures": ["order_placed.monetary", "order_rejected.frequency"], "dimensions": ["customer.state"]}
    compiled = compile_query(project, parse_query(query), run_date=RUN_DATE, views=SEED_VIEWS)
    aggregate = ctes_of(compiled.sql)["lens_a_order_placed"].sql("spark")
    assert ("CAST(SUM(CASE WHEN `lens_scan`.`in0` THEN CAST(`lens_scan`.`c11` AS DECIMAL(38, 9)) END) AS DOUBLE)"
            in aggregate)


def test_sums_of_values_of_unknown_or_integer_type_stay_as_they_are(tmp_path, project):
    shop = load_model(write_shop_model(tmp_path))   # SELECT *: column types unknown
    compiled = compile_query(shop, parse_query({"measures": ["orders.revenue"]}), run_date=RUN_DATE, views=VIEWS)
    assert "DECIMAL" not in compiled.sql and "SUM(`orders`.`amount`)" in compiled.sql
    days = compile_query(project, load_query(REPO / "lens/queries/days_to_invoice.yml"), run_date=RUN_DATE,
                         views=SEED_VIEWS)
    assert "DECIMAL" not in days.sql   # an avg of whole days

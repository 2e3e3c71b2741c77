"""lens.sql: snippets as ASTs (allow-list, injection attempts), dialect semantics, table rewriting."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlglot
from sqlglot import exp

from lens import sql
from lens.errors import LensError

RUN_DATE = dt.date(2026, 1, 31)


def spark_sql(text: str, dialect: str = "trino") -> str:
    tree = sql.parse_snippet(text, dialect).tree
    return sql.render(sql.with_spark_semantics(tree, dialect=dialect, run_date=RUN_DATE), pretty=False)


def test_references_become_placeholders_and_bare_columns_are_listed():
    snippet = sql.parse_snippet("concat(${order_placed.entity_id}, '-', split_part(order_id, '-', 1))")
    assert snippet.references == (sql.Reference("order_placed", "entity_id"),)
    assert snippet.bare_columns == ("order_id",)
    columns = [c.name for c in snippet.tree.find_all(exp.Column)]
    assert columns == ["__lens_ref_0__", "order_id"]


def test_substitute_puts_the_resolved_ast_where_the_reference_was():
    snippet = sql.parse_snippet("${orders.amount} * 2")
    tree = sql.substitute(snippet, lambda ref: exp.Add(this=exp.column("a"), expression=exp.column("b")),
                          lambda name: exp.column(name))
    assert tree.sql() == "(a + b) * 2"


@pytest.mark.parametrize("text, position", [
    ("sum(${orders.amount)", 4),         # closed by ')' instead of '}'
    ("${orders}", 0),                    # no member
    ("1 + ${orders.amount + 2}", 4),     # not a plain entity.member
])
def test_a_malformed_reference_points_at_its_dollar(text, position):
    with pytest.raises(sql.SnippetError, match="malformed reference") as caught:
        sql.parse_snippet(text)
    assert caught.value.position == position
    assert sql.pointer(text, position).splitlines()[-1].index("^") == 4 + position


@pytest.mark.parametrize("attempt, reason", [
    ("${customer.email}); DROP TABLE customers; --", "not valid SQL|';' is not allowed"),
    ("1; DROP TABLE customers", "';' is not allowed"),
    ("${customer.email};", "';' is not allowed"),
    ("(SELECT max(secret) FROM credentials)", "not allowed"),
    ("${customer.email} IN (SELECT email FROM vip)", "not allowed"),
    ("DROP TABLE customers", "not allowed|not valid SQL"),
    ("reflect('java.lang.Runtime', 'getRuntime')", "reflect\\(\\) is not allowed"),
    ("java_method('java.lang.System', 'exit', 1)", "java_method\\(\\) is not allowed"),
    ("rand()", "rand\\(\\) is not allowed"),
    ("row_number() OVER (ORDER BY ${customer.email})", "not allowed"),
    ("customers_large_data.email", "qualified column"),
    ("count(${customer.email}) AS n", "not allowed"),
    ("'${customer.email}'", "must stand where a column can"),
])
def test_injection_attempts_in_a_snippet_are_errors(attempt, reason):
    with pytest.raises(sql.SnippetError, match=reason):
        sql.parse_snippet(attempt)


def test_comments_never_reach_the_generated_sql():
    rendered = spark_sql("${customer.email} /* */ -- '; DROP TABLE customers")
    assert "DROP" not in rendered and "--" not in rendered and "/*" not in rendered


def test_trino_interval_day_part_becomes_whole_days_between_run_date_and_ts():
    assert spark_sql("day(current_date - ${order_placed.activity_ts})") == (
        "EXTRACT(DAY FROM CAST(CAST('2026-01-31' AS DATE) AS TIMESTAMP) - CAST(__lens_ref_0__ AS TIMESTAMP))"
    )


def test_day_of_a_datetime_stays_the_day_of_month():
    assert spark_sql("day(${order_placed.activity_ts})") == "DAY(__lens_ref_0__)"
    assert spark_sql("day(${order_placed.activity_ts} - interval '1' day)") == "DAY(__lens_ref_0__ - INTERVAL '1' DAY)"


def test_spark_models_keep_day_as_written():
    assert spark_sql("day(current_date())", dialect="spark") == "DAY(CAST('2026-01-31' AS DATE))"


def test_current_date_and_timestamp_bind_to_the_run_date_not_the_clock():
    assert spark_sql("current_date") == "CAST('2026-01-31' AS DATE)"
    assert spark_sql("now()") == "CAST('2026-01-31 00:00:00' AS TIMESTAMP)"


def test_trino_integer_division_stays_integer_division():
    assert spark_sql("count(${e.x}) / count(*)") == "CAST(COUNT(__lens_ref_0__) / COUNT(*) AS BIGINT)"
    # the seed's own percentage divides by a double: ordinary division
    assert spark_sql("round(100*count(${e.x})/cast(count(*) as double),2)") == (
        "ROUND(100 * COUNT(__lens_ref_0__) / CAST(COUNT(*) AS DOUBLE), 2)"
    )
    assert spark_sql("count(x) / count(*)", dialect="spark") == "COUNT(x) / COUNT(*)"


@pytest.mark.parametrize("snippet, expected", [
    # days between two dates: Spark's date subtraction, not TIMESTAMPDIFF
    ("date_diff('day', date(${e.a}), date(${e.b}))", "DATEDIFF(DATE(__lens_ref_1__), DATE(__lens_ref_0__))"),
    # anything else keeps its unit
    ("date_diff('day', ${e.a}, ${e.b})", "DATEDIFF(DAY, __lens_ref_0__, __lens_ref_1__)"),
    ("date_diff('hour', date(${e.a}), date(${e.b}))", "DATEDIFF(HOUR, DATE(__lens_ref_0__), DATE(__lens_ref_1__))"),
])
def test_day_differences_of_dates_are_date_subtractions(snippet, expected):
    assert spark_sql(snippet) == expected


def test_trino_functions_map_to_spark():
    assert spark_sql("date_diff('day', date(${e.ts}), current_date)") == (
        "DATEDIFF(CAST('2026-01-31' AS DATE), DATE(__lens_ref_0__))"
    )
    assert spark_sql("approx_distinct(${e.x})") == "APPROX_COUNT_DISTINCT(__lens_ref_0__)"


@pytest.mark.parametrize("value", ["O'Brien", "a\\' OR 1=1 --", "x\\", "'; DROP TABLE t; --", "tab\tnew\nline"])
def test_string_literals_round_trip_through_spark_sql(value):
    rendered = sql.render(exp.EQ(this=exp.column("state"), expression=sql.string_literal(value)))
    parsed = sqlglot.parse_one(rendered, read="spark")
    assert isinstance(parsed, exp.EQ) and parsed.expression.this == value


def test_like_patterns_match_the_value_literally():
    pattern = sql.like_pattern("50%_off\\", prefix="%", suffix="%")
    assert pattern.this == "%50\\%\\_off\\\\%"


def test_tables_are_rewritten_in_the_ast_not_as_text():
    query = sql.parse_entity_query(
        "WITH recent AS (SELECT * FROM icebase.audience.t WHERE note <> 'icebase.audience.t') "
        "SELECT r.*, o.x FROM recent r JOIN icebase.audience.other o ON r.id = o.id"
    )
    assert sorted(sql.table_names(query)) == ["icebase.audience.other", "icebase.audience.t"]
    rewritten = sql.render(sql.rewrite_tables(query, {"icebase.audience.t": "lens_t", "icebase.audience.other": "lens_o"}),
                           pretty=False)
    assert "FROM `lens_t` AS t WHERE note <> 'icebase.audience.t'" in rewritten  # the literal is untouched
    assert "JOIN `lens_o` AS o" in rewritten and "FROM recent AS r" in rewritten
    with pytest.raises(LensError, match="icebase.audience.other has no catalog mapping"):
        sql.rewrite_tables(query, {"icebase.audience.t": "lens_t"})


@pytest.mark.parametrize("statement", [
    "DELETE FROM icebase.audience.t",
    "SELECT 1; DROP TABLE icebase.audience.t",
    "INSERT INTO x SELECT * FROM y",
    "CREATE TABLE x AS SELECT 1",
    "SELECT reflect('java.lang.Runtime', 'getRuntime') FROM t",
])
def test_entity_queries_must_be_one_select(statement):
    with pytest.raises(sql.SnippetError):
        sql.parse_entity_query(statement)


def test_unknown_dialect_is_an_error():
    with pytest.raises(LensError, match="unknown SQL dialect 'trinoo'"):
        sql.check_dialect("trinoo")

"""lens.model: the seed model loads unmodified; every mistake names file, line, entity and member."""
from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from lens.errors import LensError
from lens.model import load_model

REPO = Path(__file__).resolve().parents[2]
SEED_COPY = REPO / "lens" / "seed" / "customer_360.lens.yml"
SHARED_SEED = REPO.parent / "shared" / "seeds" / "customer_360.lens.yml"
SEED_SHA256 = "0ac8da9c24aba655af39a0e9cb3aeb4c48ce021ef78fe9ab08f9d42831fbc06d"
PROJECT_MODEL = REPO / "lens" / "customer_360.yml"


def test_the_seed_copy_is_the_seed_byte_for_byte():
    assert hashlib.sha256(SEED_COPY.read_bytes()).hexdigest() == SEED_SHA256
    if SHARED_SEED.is_file():
        assert SHARED_SEED.read_bytes() == SEED_COPY.read_bytes()


def test_the_seed_model_loads_unmodified():
    model = load_model(SEED_COPY)
    assert list(model.entities) == ["customer", "order_placed", "order_rejected", "order_invoiced"]
    assert model.dialect == "trino"
    assert len(model.entities["customer"].members) == 18 + 4
    placed = model.entities["order_placed"].members
    assert placed["recency"].type == "min" and placed["frequency"].type == "count_distinct"
    # `1:1` would be the YAML 1.1 integer 61; relationships keep it as text
    assert [(e.target, e.cardinality) for e in model.edges["order_placed"]] == [
        ("customer", "N:1"), ("order_rejected", "1:1"), ("order_invoiced", "1:1")]
    assert model.tables() == ["icebase.audience.customers_large_data", "icebase.audience.activity_streams_large_data"]


def test_the_project_model_is_the_seed_plus_additions():
    seed, project = load_model(SEED_COPY), load_model(PROJECT_MODEL)
    for name, entity in seed.entities.items():
        for member_name, member in entity.members.items():
            mine = project.entities[name].members[member_name]
            assert (mine.kind, mine.type, mine.column) == (member.kind, member.type, member.column)
            assert (mine.snippet.text if mine.snippet else None) == (member.snippet.text if member.snippet else None)
        assert [e for e in project.edges[name] if e.target in seed.entities] == seed.edges[name]
    assert project.derived["order_placed.percentage_rejected"] == ("order_rejected.frequency", "order_placed.frequency")
    assert project.derived["order_rejected.rejected_orders_above_average"] == (
        "order_rejected.rejected_orders_last_month", "order_rejected.rejected_orders_last_12_months")


def write_model(tmp_path: Path, entities: str) -> Path:
    path = tmp_path / "model.yml"
    path.write_text("name: test\nentities:\n" + textwrap.indent(textwrap.dedent(entities).strip("\n"), "  ") + "\n")
    return path


ORDERS = """
- name: orders
  sql:
    query: SELECT * FROM shop.orders
    columns: [{name: order_id}, {name: amount}, {name: customer_id}]
  fields:
    - {name: order_id, column: order_id, primary: true}
    - {name: amount, type: number, column: amount}
    - {name: customer_id, column: customer_id}
"""


def orders_with(extra: str) -> str:
    return ORDERS + textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ") + "\n"


def load_error(tmp_path: Path, entities: str) -> str:
    path = write_model(tmp_path, entities)
    with pytest.raises(LensError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message
    return message


CUSTOMERS = """
- name: customers
  sql: {query: SELECT * FROM shop.customers}
  fields: [{name: customer_id, primary: true}, {name: state}]
"""

# (the model's entities, fragments the error must contain)
MODEL_ERRORS = {
    "unknown member": (orders_with("""
        measures:
          - {name: total, type: sum, sql_snippet: "${orders.amont}"}
    """), ["model.yml:12, entity 'orders', measure 'total'", "entity 'orders' has no member 'amont'",
           "did you mean 'amount'"]),
    "unknown entity": (orders_with("""
        measures:
          - {name: total, type: sum, sql_snippet: "${order.amount}"}
    """), ["unknown entity in ${order.amount} (did you mean 'orders'?)"]),
    "reference cycle": (orders_with("""
        dimensions:
          - {name: a, sql_snippet: "${orders.b} || 'x'"}
          - {name: b, sql_snippet: "${orders.c}"}
          - {name: c, sql_snippet: "upper(${orders.a})"}
    """), ["dimension 'a': reference cycle: orders.a -> orders.b -> orders.c -> orders.a"]),
    "unknown relationship target": (orders_with("""
        relationships:
          - {type: N:1, field: customer_id, target: {name: customer, field: customer_id}}
    """), ["entity 'orders': relationship to unknown entity 'customer'"]),
    "unknown relationship field": (ORDERS + CUSTOMERS + """
  relationships:
    - {type: 1:N, field: customer_id, target: {name: orders, field: customer}}
""", ["relationship field 'customer' is not a field or dimension of entity 'orders'", "did you mean 'customer_id'"]),
    "duplicate member": (orders_with("""
        measures:
          - {name: amount, type: sum, sql_snippet: "${orders.amount}"}
    """), ["measure 'amount': the name 'amount' is already used by field 'amount' at line 9"]),
    "names differing in case": (orders_with("""
        dimensions:
          - {name: Amount, sql_snippet: "${orders.amount} * 2"}
    """), ["dimension 'Amount': the name 'Amount' is already used by field 'amount'"]),
    "duplicate entity": (ORDERS + ORDERS, ["entity 'orders' is defined twice (first at line 3)"]),
    "duplicate yaml key": (orders_with("""
        measures:
          - name: total
            type: sum
            sql_snippet: ${orders.amount}
            sql_snippet: ${orders.order_id}
    """), ["key 'sql_snippet' appears twice"]),
    "unknown key": (orders_with("""
        measures:
          - {name: total, type: sum, sql_snipet: "${orders.amount}"}
    """), ["unknown key 'sql_snipet' in a measure (did you mean 'sql_snippet'?)"]),
    "unknown measure type": (orders_with("""
        measures:
          - {name: total, type: summ, sql_snippet: "${orders.amount}"}
    """), ["measure 'total': type 'summ' is not one of", "did you mean 'sum'"]),
    "dimension across entities": (ORDERS + CUSTOMERS + """
  dimensions:
    - {name: order_amount, sql_snippet: "${orders.amount}"}
""", ["dimension 'order_amount': ${orders.amount} belongs to entity 'orders'"]),
    "sum of an aggregate": (orders_with("""
        measures:
          - {name: total, type: sum, sql_snippet: "sum(${orders.amount})"}
    """), ["a sum measure aggregates its snippet itself"]),
    "unknown bare column": (orders_with("""
        dimensions:
          - {name: doubled, sql_snippet: "amout * 2"}
    """), ["dimension 'doubled': unknown column 'amout'", "did you mean 'amount'"]),
    "field column not declared": (ORDERS.replace("column: amount", "column: amout"),
                                  ["field 'amount': column 'amout' is not among sql.columns (did you mean 'amount'?)"]),
    "entity query not a select": (ORDERS.replace("SELECT * FROM shop.orders", "DELETE FROM shop.orders"),
                                  ["entity 'orders': sql.query: sql.query must be exactly one SELECT"]),
    "injection in a snippet": (orders_with("""
        dimensions:
          - {name: x, sql_snippet: "${orders.amount}); DROP TABLE shop.orders; --"}
    """), ["dimension 'x': sql_snippet:"]),
}


@pytest.mark.parametrize("entities, fragments", MODEL_ERRORS.values(), ids=MODEL_ERRORS.keys())
def test_model_errors_name_file_line_entity_and_member(tmp_path, entities, fragments):
    message = load_error(tmp_path, entities)
    for fragment in fragments:
        assert fragment in message


def test_a_typo_closing_a_reference_points_at_it(tmp_path):
    message = load_error(tmp_path, orders_with("""
        measures:
          - name: total
            type: sum
            sql_snippet: sum(${orders.amount)
    """))
    assert "entity 'orders', measure 'total': sql_snippet: malformed reference" in message
    snippet_line, caret_line = message.splitlines()[-2:]
    assert snippet_line.strip() == "sum(${orders.amount)" and caret_line.index("^") == snippet_line.index("$")


def test_lens_errors_exit_with_status_2():
    assert LensError("x").exit_status == 2


def test_missing_model_file(tmp_path):
    with pytest.raises(LensError, match="model file .*nope.yml does not exist"):
        load_model(tmp_path / "nope.yml")

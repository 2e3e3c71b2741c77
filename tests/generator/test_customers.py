"""generator.customers: the customer master files."""
from __future__ import annotations

from jobs.ingest.schemas import CUSTOMER_COLUMNS
from tests.generator.readers import read_customers


def test_customer_files_have_the_seed_model_columns(dataset):
    out, _ = dataset
    headers, rows, _ = read_customers(out)
    assert headers and all(h == list(CUSTOMER_COLUMNS) for h in headers)
    col = {name: n for n, name in enumerate(CUSTOMER_COLUMNS)}
    assert {r[col["premise_code"]] for r in rows} == {"on prem", "off prem"}
    assert {r[col["status"]] for r in rows} <= {"active", "inactive", "suspended"}
    assert {r[col["consent"]] for r in rows} == {"yes", "no"}
    assert any("," in r[col["address"]] for r in rows)     # quoted fields survive the CSV round trip

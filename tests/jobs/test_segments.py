"""Segments: the condition language, membership stints, daily changes, Resonate exports, preview."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest

from jobs.core.context import RunParams
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs.activities.daily import rebuild_daily
from jobs.cli import _params, build_parser
from jobs.segments import conditions, evaluate
from jobs.segments import stage as segments
from jobs.traits import stage as traits_stage
from jobs.traits.settings import TraitDefinition, TraitSettings, TraitWindow, Within

from jobs.core import tables
from jobs.core.config import load_config
from jobs.core.errors import ConfigError, InputError
from jobs.core.catalog import SPECS
from jobs.segments.settings import (
    SegmentDefinition,
    SegmentExport,
    SegmentSettings,
    default_definitions,
)
from lens.calendar import parse_relative_date
from tests.jobs.event_builders import group_members, utc
from tests.jobs.stream_builders import activity, stream

CUSTOMERS_DDL = "customer_id string, customer_name string, email string, state string, consent string, group_ids array<string>"
TRAITS_DDL = "customer_id string, total_orders long, lifetime_value double, last_order_date timestamp, vip boolean"
RFM_DDL = "customer_id string, rfm_segment string"
IDENTITY_DDL = "identifier_type string, identifier_value string, customer_id string"


def segment(name: str, condition: dict, level: str = "customer", **export) -> SegmentDefinition:
    return SegmentDefinition(name=name, condition=condition, level=level,
                             export=SegmentExport(enabled=True, **export) if export else SegmentExport())


def rule(field: str, op: str, *value) -> dict:
    return {"field": field, "op": op, **({"value": value[0]} if value else {})}


# ----------------------------------------------------------------------------------------------
# Config: parsing and validation at load (no Spark)
# ----------------------------------------------------------------------------------------------


def _load_segments(tmp_path: Path, body: str):
    path = tmp_path / "seg.yml"
    path.write_text("segments:\n  definitions:\n" + body)
    return load_config(path).segments


@pytest.mark.parametrize(
    "body, message",
    [
        ("    - {name: s1, condition: {field: total_orders, op: greater, value: 1}}\n",
         r"seg\.yml: segment 's1': 'segments\.definitions\[0\]\.condition\.op' must be one of equals, notEquals, gt, "
         r"gte, lt, lte, set, notSet, contains \(or the older eq, ne, in, not_in, is_null, not_null\); got 'greater'"),
        ("    - {name: s1, condition: {field: total_orders, op: eq, valeu: 1}}\n",
         r"segment 's1': unknown key 'segments\.definitions\[0\]\.condition\.valeu'"),
        ("    - {name: s1, condition: {all: [{field: a, op: eq, value: 1}, {field: b, op: in, value: x}]}}\n",
         r"segment 's1': 'segments\.definitions\[0\]\.condition\.all\[1\]\.value' must be a non-empty list for `in`"),
        ("    - {name: s1, condition: {any: [{field: a, op: is_null, value: 1}]}}\n",
         r"'segments\.definitions\[0\]\.condition\.any\[0\]\.value' must be left out: `is_null` takes no value"),
        ("    - {name: s1, condition: {field: a, op: gt}}\n",
         r"'segments\.definitions\[0\]\.condition\.value' is required for `gt`"),
        ("    - {name: s1, condition: {field: d, op: lt, value: {weeks_ago: 2}}}\n",
         r"'segments\.definitions\[0\]\.condition\.value': a run-date relative date is one of \{unit: "
         r"day\|week\|month\|quarter\|year, offset: K\}, \{days_before_run_date: N\}, \{month_start: K\}; got \{'weeks_ago': 2\}"),
        ("    - {name: s1, condition: {all: [], field: a}}\n",
         r"'segments\.definitions\[0\]\.condition' has `all:` and also field"),
        ("    - {name: s1, condition: {any: []}}\n",
         r"'segments\.definitions\[0\]\.condition\.any' must be a non-empty list"),
        ("    - {name: s1, condition: {field: 'bad name', op: eq, value: 1}}\n",
         r"'segments\.definitions\[0\]\.condition\.field' must be a column name"),
        ("    - {name: s1, levl: group, condition: {field: a, op: eq, value: 1}}\n",
         r"unknown key 'segments\.definitions\[0\]\.levl' \(did you mean 'segments\.definitions\[0\]\.level'\?\)"),
        ("    - {name: s1, level: household, condition: {field: a, op: eq, value: 1}}\n",
         r"segment 's1': 'segments\.definitions\[0\]\.level' must be customer, group or identifier:<type>"),
        ("    - {name: s1, condition: {field: a, op: eq, value: 1}, export: {enabled: true, group: 'A=B', segment: S}}\n",
         r"'segments\.definitions\[0\]\.export\.group' must not contain '='"),
        ("    - {name: s1, condition: {field: a, op: eq, value: 1}, export: {enabled: true, group: G, segment: S, delimiter: ';'}}\n",
         r"'segments\.definitions\[0\]\.export\.delimiter' must be '\|' or ','"),
        ("    - {name: s1, level: 'identifier:phone', condition: {field: a, op: eq, value: 1}, export: {enabled: true, group: G, segment: S}}\n",
         r"segment 's1': 'segments\.definitions\[0\]\.export': only customer, group, identifier:email segments can be exported"),
        ("    - {name: s1, condition: {field: a, op: eq, value: 1}}\n    - {name: s1, condition: {field: a, op: eq, value: 2}}\n",
         r"'segments\.definitions' defines the segment 's1' twice"),
        ("    - {name: S 1, condition: {field: a, op: eq, value: 1}}\n",
         r"'segments\.definitions\[0\]\.name' must be lower-case letters"),
    ],
)
def test_bad_segment_config_names_file_segment_and_key(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        _load_segments(tmp_path, body)


def test_a_good_definition_loads_with_nested_conditions_and_dates(tmp_path):
    loaded = _load_segments(tmp_path, (
        "    - name: lapsed\n"
        "      level: identifier:email\n"
        "      condition:\n"
        "        all:\n"
        "          - {field: traits.last_order_date, op: lt, value: 2026-01-01}\n"
        "          - any: [{field: group.household income, op: in, value: [high, top]}, {field: state, op: not_null}]\n"
    ))
    node = loaded.definitions[0].parsed_condition("c")
    assert node.items[0].value == dt.date(2026, 1, 1)
    assert (node.items[1].items[0].source, node.items[1].items[0].name) == ("group", "household income")
    assert node.items[1].items[0].value == ("high", "top")


@pytest.mark.parametrize(
    "kind, amount, run_date, expected",
    [
        ("month_start", -1, "2026-03-15", "2026-02-01"),
        ("month_start", -1, "2026-01-31", "2025-12-01"),   # "last month" crosses the year
        ("month_start", 0, "2026-01-31", "2026-01-01"),
        ("month_start", -13, "2026-01-31", "2024-12-01"),
        ("days_before_run_date", 30, "2026-03-01", "2026-01-30"),
    ],
)
def test_run_date_relative_dates(kind, amount, run_date, expected):
    relative = parse_relative_date({kind: amount})
    assert relative.on(dt.date.fromisoformat(run_date)) == dt.date.fromisoformat(expected)


# ----------------------------------------------------------------------------------------------
# The condition language on Spark
# ----------------------------------------------------------------------------------------------

RUN_DATE = dt.date(2026, 2, 15)   # last month starts 2026-01-01; 30 days before is 2026-01-16


@pytest.fixture
def inputs(spark):
    customers = spark.createDataFrame([
        ("c1", "Ann Lee", "ann@x.com", "CA", "yes", ["g1", "g2"]),
        ("c2", "Bob Ray", "bob@x.com", "NY", "no", ["g1"]),
        ("c3", "Cy Dow", None, "CA", "yes", ["g2"]),
        ("c4", "Dee Fox", "dee@y.org", "TX", "yes", []),
        ("c5", None, "e@x.com", None, "no", None),
    ], CUSTOMERS_DDL)
    traits = spark.createDataFrame([
        ("c1", 12, 1500.0, utc("2026-01-20 10:00"), True),
        ("c2", 3, 200.0, utc("2025-12-31 23:00"), False),
        ("c3", 10, 1000.0, utc("2025-11-02 08:00"), None),
        ("c4", None, None, None, None),
    ], TRAITS_DDL)
    rfm = spark.createDataFrame([("c1", "Champions"), ("c2", "At Risk"), ("c3", "Champions"), ("c4", "Lost")], RFM_DDL)
    groups = spark.createDataFrame([
        ("g1", None, None, None, None, "Lee household", {"income": "high", "size": "4"}, None),
        ("g2", None, None, None, None, "Dow household", {"size": "2"}, None),
        ("g3", None, None, None, None, "Empty", {}, None),
    ], SPECS[tables.GROUPS].schema)
    identity = spark.createDataFrame([
        ("email", "ann@x.com", "c1"), ("email", "ann.work@x.com", "c1"), ("email", "bob@x.com", "c2"),
        ("phone", "+1555", "c1"),
    ], IDENTITY_DDL)
    return conditions.Inputs(customers=customers, traits=traits, rfm=rfm, groups=groups,
                           group_members=group_members(spark, {"g1": ["c1", "c2"], "g2": ["c1", "c3"]}),
                           identity_map=identity)


# (definition, expected members) — each worked out by hand from the fixture above
CASES = [
    (segment("eq", rule("state", "eq", "CA")), {"c1", "c3"}),
    (segment("ne", rule("state", "ne", "CA")), {"c2", "c4"}),                 # unknown state: not a member
    (segment("gt", rule("traits.total_orders", "gt", 10)), {"c1"}),
    (segment("gte", rule("lifetime_value", "gte", 1000)), {"c1", "c3"}),
    (segment("lt", rule("last_order_date", "lt", {"month_start": -1})), {"c2", "c3"}),
    (segment("lte", rule("total_orders", "lte", 10)), {"c2", "c3"}),
    (segment("in", rule("rfm_segment", "in", ["Champions", "Lost"])), {"c1", "c3", "c4"}),
    (segment("not_in", rule("rfm.rfm_segment", "not_in", ["Champions"])), {"c2", "c4"}),
    (segment("is_null", rule("traits.total_orders", "is_null")), {"c4", "c5"}),   # c5 has no traits row
    (segment("not_null", rule("customer.email", "not_null")), {"c1", "c2", "c4", "c5"}),
    (segment("contains_text", rule("customer_name", "contains", "Lee")), {"c1"}),
    (segment("contains_list", rule("group_ids", "contains", "g2")), {"c1", "c3"}),
    (segment("recent", rule("last_order_date", "gte", {"days_before_run_date": 30})), {"c1"}),
    (segment("iso_date", rule("last_order_date", "eq", "2025-12-31")), {"c2"}),
    (segment("boolean", rule("vip", "eq", True)), {"c1"}),
    (segment("all_any", {"all": [rule("total_orders", "gte", 10),
                                 {"any": [rule("state", "eq", "TX"), rule("rfm_segment", "eq", "Champions")]}]}),
     {"c1", "c3"}),
    (segment("any", {"any": [rule("vip", "eq", True), rule("lifetime_value", "lt", 500)]}), {"c1", "c2"}),
    (segment("group_standard", rule("group.name", "eq", "Lee household")), {"c1", "c2"}),
    (segment("group_trait_number", rule("group.size", "gte", 3)), {"c1", "c2"}),
    (segment("group_and_customer", {"all": [rule("group.income", "eq", "high"), rule("state", "eq", "CA")]}), {"c1"}),
    (segment("household_champions", rule("rfm.rfm_segment", "eq", "Champions"), level="group"), {"g1", "g2"}),
    (segment("memberless_group", rule("group.name", "contains", "Empty"), level="group"), {"g3"}),
    (segment("emails_of_big_spenders", rule("lifetime_value", "gte", 1000), level="identifier:email"),
     {"ann@x.com", "ann.work@x.com"}),
    (segment("work_emails", rule("identifier.identifier_value", "contains", "work"), level="identifier:email"),
     {"ann.work@x.com"}),
    # the canonical (lens) operator names and relative dates: the same members as their synonyms above
    (segment("equals_one", rule("state", "equals", "CA")), {"c1", "c3"}),
    (segment("equals_list", rule("rfm_segment", "equals", ["Champions", "Lost"])), {"c1", "c3", "c4"}),
    (segment("not_equals_one", rule("state", "notEquals", "CA")), {"c2", "c4"}),
    (segment("not_equals_list", rule("rfm.rfm_segment", "notEquals", ["Champions"])), {"c2", "c4"}),
    (segment("not_set", rule("traits.total_orders", "notSet")), {"c4", "c5"}),
    (segment("set", rule("customer.email", "set")), {"c1", "c2", "c4", "c5"}),
    (segment("before_last_month", rule("last_order_date", "lt", {"unit": "month", "offset": -1})), {"c2", "c3"}),
    (segment("last_30_days", rule("last_order_date", "gte", {"unit": "day", "offset": -30})), {"c1"}),
    # the quarter of 2026-02-15 starts 2026-01-01
    (segment("quarter_to_date", rule("last_order_date", "gte", {"unit": "quarter", "offset": 0})), {"c1"}),
]


def test_every_op_combination_level_and_group_attribute(inputs):
    settings = SegmentSettings(definitions=[definition for definition, _ in CASES])
    compiled = conditions.compile_segments(settings, conditions.FieldCatalog.of(inputs, "t.yml"), RUN_DATE)
    got: dict[str, set[str]] = {definition.name: set() for definition, _ in CASES}
    levels = {}
    for row in evaluate.current_members(inputs, compiled).collect():   # a few dozen rows
        got[row["segment"]].add(row["member_id"])
        levels[row["segment"]] = row["level"]
    assert got == {definition.name: expected for definition, expected in CASES}
    assert (levels["household_champions"], levels["work_emails"], levels["eq"]) == ("group", "identifier:email", "customer")


@pytest.mark.parametrize(("run_date", "rolling"), [
    # c1's last order is 2026-01-20 10:00: inside the 30 days ending on 2026-02-18 (from 2026-01-20),
    # outside those ending on 2026-02-19 (from 2026-01-21); since last month (2026-01-01) it has ordered
    (dt.date(2026, 2, 18), {"c3"}),
    (dt.date(2026, 2, 19), {"c1", "c3"}),
])
def test_churn_risk_in_the_past_30_days_and_since_last_month(inputs, run_date, rolling):
    """The seed recipe's "no purchase in the past month" as written (a rolling 30 days ending on the run
    date) and its calendar-month variant, the two default churn audiences (c3: no order since
    2025-11-02; c2 has too few orders)."""
    settings = SegmentSettings(definitions=[DEFAULTS["churn_risk"], DEFAULTS["churn_risk_since_last_month"]])
    compiled = conditions.compile_segments(settings, conditions.FieldCatalog.of(inputs, "t.yml"), run_date)
    got = {"churn_risk": set(), "churn_risk_since_last_month": set()}
    for row in evaluate.current_members(inputs, compiled).collect():
        got[row["segment"]].add(row["member_id"])
    assert got == {"churn_risk": rolling, "churn_risk_since_last_month": {"c3"}}


def _catalog(with_rfm: bool = True, with_groups: bool = False) -> conditions.FieldCatalog:
    schemas = {
        "customer": StructType.fromDDL(CUSTOMERS_DDL),
        "traits": StructType.fromDDL(TRAITS_DDL + ", monetary double"),
    }
    if with_rfm:
        schemas["rfm"] = StructType.fromDDL(RFM_DDL + ", monetary double")
    if with_groups:
        schemas["group"] = SPECS[tables.GROUPS].schema
    return conditions.FieldCatalog(schemas, "t.yml")


@pytest.mark.parametrize(
    "condition, tables_present, message",
    [
        (rule("total_order", "gte", 1), {},
         r"t\.yml: segment 'bad': 'segments\.definitions\[0\]\.condition\.all\[1\]\.field': 'total_order' is not a "
         r"known field; silver/customers has customer_id, .*; gold/traits has customer_id, total_orders"),
        (rule("monetary", "gt", 1), {}, r"'monetary' is a column of several inputs; write traits\.monetary or rfm\.monetary"),
        (rule("rfm.rfm_segment", "eq", "x"), {'with_rfm': False}, r"gold/rfm does not exist yet \(run `c360 rfm`\)"),
        (rule("total_orders", "eq", "ten"), {},
         r"'segments\.definitions\[0\]\.condition\.all\[1\]': a bigint field cannot be compared with text value\(s\) 'ten'"),
        (rule("total_orders", "contains", "1"), {}, r"`contains` needs a text field and text"),
        (rule("total_orders", "lt", {"days_before_run_date": 3}), {}, r"bigint field cannot be compared with date"),
        (rule("last_order_date", "lt", "January"), {}, r"a date field needs YYYY-MM-DD dates; got 'January'"),
        (rule("identifier.identifier_value", "eq", "a"), {}, r"identifier fields exist only at level identifier"),
        (rule("group.name", "eq", "a"), {}, r"gold/groups does not exist yet"),
        (rule("group.updated_at", "eq", 1), {'with_groups': True}, r"a timestamp field cannot be compared with number"),
        (rule("group_ids", "eq", "g1"), {}, r"customer\.group_ids is a list: use contains, set or notSet"),
    ],
)
def test_unknown_fields_and_mistyped_values_name_the_segment_and_key(spark, condition, tables_present, message):
    bad = segment("bad", {"all": [rule("state", "eq", "CA"), condition]})
    with pytest.raises(ConfigError, match=message):
        conditions.compile_segments(SegmentSettings(definitions=[bad]), _catalog(**tables_present), RUN_DATE)


# ----------------------------------------------------------------------------------------------
# The stage: stints, changes, exports, idempotence, order (one warehouse, several run dates)
# ----------------------------------------------------------------------------------------------

D1, D2, D3 = dt.date(2026, 1, 15), dt.date(2026, 2, 10), dt.date(2026, 3, 5)
DEFAULTS = {d.name: d for d in default_definitions()}
# The seed audience with its calendar-month rule (churn_risk_since_last_month), under the name and the
# export of the default churn_risk ("Retention 2026=Churn risk", '|'): the dates below are chosen
# around month starts.
CHURN = dataclasses.replace(DEFAULTS["churn_risk_since_last_month"], name="churn_risk",
                            export=DEFAULTS["churn_risk"].export)
VIP_EMAILS = segment("vip_emails", rule("lifetime_value", "gte", 3000), level="identifier:email",
                     group="VIP", segment="Emails", delimiter=",")
STAGE_SETTINGS = SegmentSettings(definitions=[CHURN, VIP_EMAILS])
RUN = RunParams()
CHURN_LABEL = "Retention 2026=Churn risk"

# last_order_date, total_orders, lifetime_value per customer and run date. "No order since the start
# of last month": before 2025-12-01 on D1, 2026-01-01 on D2, 2026-02-01 on D3.
TRAITS_BY_DATE = {
    D1: {"c1": ("2025-11-20", 12, 1500.0), "c2": ("2025-10-01", 20, 3000.0), "c3": ("2025-09-01", 10, 1000.0),
         "c4": ("2025-11-01", 11, 1200.0), "c5": ("2025-11-25", 9, 5000.0)},
    D2: {"c1": ("2025-11-20", 12, 1500.0), "c2": ("2026-01-05", 21, 3100.0), "c3": ("2025-09-01", 10, 1000.0),
         "c4": ("2025-11-01", 11, 1200.0), "c5": ("2025-11-25", 10, 5000.0)},
    D3: {"c1": ("2026-02-15", 13, 1600.0), "c2": ("2026-01-05", 21, 3100.0), "c3": ("2025-09-01", 10, 1000.0),
         "c4": ("2025-11-01", 11, 1200.0), "c5": ("2025-11-25", 10, 5000.0)},
}


def _customers(consent_c3: str):
    return [
        ("c1", "Ann", " Ann@Example.com ", "CA", "yes", []),
        ("c2", "Bob", "bob@example.com", "NY", " TRUE", []),
        ("c3", "Cy", "cy@example.com", "CA", consent_c3, []),
        ("c4", "Dee", None, "TX", "y", []),                        # no usable email
        ("c5", "Eve", "eve@example.com", "WA", "1", []),
        ("c6", "Fay", "fay@example.com", "WA", "yes", []),         # no traits: never a member
    ]


def _write_traits(spark, wh, run_date: dt.date) -> None:
    traits = [(c, n, v, utc(f"{d} 12:00"), None) for c, (d, n, v) in TRAITS_BY_DATE[run_date].items()]
    wh.overwrite(spark.createDataFrame(traits, TRAITS_DDL), tables.TRAITS)


def _write_customers(spark, wh, *, consent_c3: str) -> None:
    wh.overwrite(spark.createDataFrame(_customers(consent_c3), CUSTOMERS_DDL), tables.SILVER_CUSTOMERS)


def _write_identity_map(spark, wh) -> None:
    identity = [("email", "ann@example.com", "c1"), ("email", "bob@example.com", "c2"),
                ("email", "bob@work.example.com", "c2"), ("email", "eve@example.com", "c5")]
    wh.overwrite(spark.createDataFrame(identity, IDENTITY_DDL), tables.IDENTITY_MAP)


def hemsha2(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def export_file(adds: list[str], removes: list[str], label: str, sep: str = "|") -> str:
    lines = [sep.join(("ID Type", "ID", "Add", "Remove"))]
    lines += [sep.join(("HEMSHA2", h, label, "")) for h in sorted(hemsha2(e) for e in adds)]
    lines += [sep.join(("HEMSHA2", h, "", label)) for h in sorted(hemsha2(e) for e in removes)]
    return "\n".join(lines) + "\n"


def _table(spark, wh, table: str, ddl: str, rows: list[tuple]):
    return wh.read(spark, table).select(*[c.split()[0] for c in ddl.split(", ")]), spark.createDataFrame(rows, ddl)


MEMBERSHIP_DDL = "segment string, level string, member_id string, entered_on date, exited_on date"
CHANGES_DDL = "run_date date, segment string, level string, member_id string, change string"


def _churn_membership(spark, wh, rows):
    got, expected = _table(spark, wh, tables.SEGMENT_MEMBERSHIP, MEMBERSHIP_DDL,
                           [("churn_risk", "customer", *row) for row in rows])
    assert_df_equality(got.filter(F.col("segment") == "churn_risk"), expected, ignore_row_order=True)


def test_stints_changes_exports_rerun_and_order(spark, make_ctx, capsys):
    ctx1 = make_ctx(D1, segments=STAGE_SETTINGS)
    wh = ctx1.warehouse
    _write_customers(spark, wh, consent_c3="no")
    _write_identity_map(spark, wh)
    _write_traits(spark, wh, D1)

    # preview before saving (the seed's step 6): the count and a sample, and nothing written
    shown = segments.preview(ctx1, "churn_risk", 2)
    assert "segment churn_risk (customer) as of 2026-01-15: 4 members" in shown
    assert "  c1  " in shown and "  c2  " in shown and "  c3  " not in shown and "(first 2 of 4" in shown
    assert not wh.exists(spark, tables.SEGMENT_MEMBERSHIP)

    result = segments.run(ctx1, RUN)
    assert (result.metrics["members"], result.metrics["skipped_no_consent"], result.metrics["skipped_no_email"]) == (4 + 3, 1, 1)
    # first export: the full list of the emails of consenting members (c3 declined, c4 has none), every
    # email of a customer: bob@work.example.com is stitched into c2 beside silver/customers' one
    churn_dir = wh.local_dir / "exports" / "churn_risk"
    assert (churn_dir / "2026-01-15.psv").read_text() == export_file(
        ["ann@example.com", "bob@example.com", "bob@work.example.com"], [], CHURN_LABEL)
    assert (wh.local_dir / "exports" / "vip_emails" / "2026-01-15.csv").read_text() == export_file(
        ["bob@example.com", "bob@work.example.com", "eve@example.com"], [], "VIP=Emails", sep=",")

    _write_traits(spark, wh, D2)
    segments.run(make_ctx(D2, segments=STAGE_SETTINGS), RUN)
    assert (churn_dir / "2026-02-10.psv").read_text() == export_file(
        ["eve@example.com"], ["bob@example.com", "bob@work.example.com"], CHURN_LABEL)

    _write_traits(spark, wh, D3)
    _write_customers(spark, wh, consent_c3="Yes")      # c3 consents now: exported although she stays
    ctx3 = make_ctx(D3, segments=STAGE_SETTINGS)
    segments.run(ctx3, RUN)
    third = (churn_dir / "2026-03-05.psv").read_text()
    assert third == export_file(["bob@example.com", "bob@work.example.com", "cy@example.com"], ["ann@example.com"],
                                CHURN_LABEL)

    after_d3 = [("c1", D1, D3), ("c2", D1, D2), ("c2", D3, None), ("c3", D1, None), ("c4", D1, None), ("c5", D2, None)]
    _churn_membership(spark, wh, after_d3)
    churn_changes = [(D1, "c1", "add"), (D1, "c2", "add"), (D1, "c3", "add"), (D1, "c4", "add"),
                     (D2, "c2", "remove"), (D2, "c5", "add"), (D3, "c1", "remove"), (D3, "c2", "add")]
    got, expected = _table(spark, wh, tables.SEGMENT_CHANGES, CHANGES_DDL,
                           [(d, "churn_risk", "customer", m, c) for d, m, c in churn_changes])
    assert_df_equality(got.filter(F.col("segment") == "churn_risk"), expected, ignore_row_order=True)

    # re-running D3 rewrites D3's changes and export and leaves everything as it was
    segments.run(ctx3, RUN)
    _churn_membership(spark, wh, after_d3)
    got, _ = _table(spark, wh, tables.SEGMENT_CHANGES, CHANGES_DDL, [])
    assert_df_equality(got.filter(F.col("segment") == "churn_risk"), expected, ignore_row_order=True)
    assert (churn_dir / "2026-03-05.psv").read_text() == third

    # an earlier date is refused (--full would rewind history to it)
    with pytest.raises(InputError, match=r"run date 2026-02-10 is earlier than the last applied segments run 2026-03-05"):
        segments.run(make_ctx(D2, segments=STAGE_SETTINGS), RUN)
    runs = {(r["segment"], r["run_date"]): r for r in wh.read(spark, tables.SEGMENT_RUNS).collect()}   # 6 rows
    assert len(runs) == 6
    d3 = runs[("churn_risk", D3)]
    assert (d3["members"], d3["adds"], d3["removes"], d3["export_adds"], d3["export_removes"]) == (4, 1, 1, 3, 1)
    assert (d3["skipped_no_consent"], d3["skipped_no_email"], d3["export_file"]) == (0, 1, str(churn_dir / "2026-03-05.psv"))


MONDAY, TUESDAY, WEDNESDAY, NEXT_MONDAY = dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4), dt.date(2026, 3, 9)
# lifetime_value per customer and run date: "big spenders" have at least 3,000
SPEND = {MONDAY: {"c2": 3000.0, "c5": 5000.0}, TUESDAY: {"c1": 3500.0, "c2": 3000.0, "c5": 100.0}}
SPEND[NEXT_MONDAY] = SPEND[TUESDAY]


def test_weekly_and_static_exports(spark, make_ctx):
    """A weekly export sends on its weekday only, with every change since its last file (netted: c5
    leaves on Tuesday and is back on Wednesday, so the next file names c5 in neither column, while
    c2, gone on Wednesday, is removed); a static segment only ever adds. Membership is kept every
    run either way."""
    weekly = segment("spenders_weekly", rule("lifetime_value", "gte", 3000), group="Spend", segment="Weekly",
                     cadence="weekly", weekday="monday")
    static = segment("spenders_static", rule("lifetime_value", "gte", 3000), group="Spend", segment="Ever",
                     static=True)
    monthly = segment("spenders_monthly", rule("lifetime_value", "gte", 3000), group="Spend", segment="Monthly",
                      cadence="monthly", month_day=4)
    settings = SegmentSettings(definitions=[weekly, static, monthly])
    wh = make_ctx(MONDAY).warehouse
    _write_customers(spark, wh, consent_c3="no")
    _write_identity_map(spark, wh)
    back = {"c1": 3500.0, "c2": 100.0, "c5": 4000.0}  # Wednesday on: c5 back, c2 out
    spend = {MONDAY: SPEND[MONDAY], TUESDAY: SPEND[TUESDAY], WEDNESDAY: back, NEXT_MONDAY: back}
    files = {}
    for day in (MONDAY, TUESDAY, WEDNESDAY, NEXT_MONDAY):
        wh.overwrite(spark.createDataFrame([(c, 1, v, None, None) for c, v in spend[day].items()], TRAITS_DDL),
                     tables.TRAITS)
        result = segments.run(make_ctx(day, segments=settings), RUN)
        files[day] = sorted(p.relative_to(wh.local_dir / "exports").as_posix()
                            for p in (wh.local_dir / "exports").rglob(f"{day}.psv"))
        assert result.metrics["members"] == 3 * sum(v >= 3000 for v in spend[day].values())  # all three
    assert files == {MONDAY: ["spenders_static/2026-03-02.psv", "spenders_weekly/2026-03-02.psv"],
                     TUESDAY: ["spenders_static/2026-03-03.psv"],
                     WEDNESDAY: ["spenders_monthly/2026-03-04.psv", "spenders_static/2026-03-04.psv"],
                     NEXT_MONDAY: ["spenders_static/2026-03-09.psv", "spenders_weekly/2026-03-09.psv"]}
    out = wh.local_dir / "exports"
    bob = ["bob@example.com", "bob@work.example.com"]
    assert (out / "spenders_weekly" / "2026-03-02.psv").read_text() == export_file([*bob, "eve@example.com"], [],
                                                                                    "Spend=Weekly")
    # c1 joined on Tuesday and c2 left on Wednesday; c5 left on Tuesday and came back on Wednesday:
    # the next Monday's file adds c1 and removes c2 only (the receiver still has c5)
    assert (out / "spenders_weekly" / "2026-03-09.psv").read_text() == export_file(
        ["ann@example.com"], bob, "Spend=Weekly")
    assert (out / "spenders_static" / "2026-03-03.psv").read_text() == export_file(["ann@example.com"], [], "Spend=Ever")
    # the monthly segment's first file, on the 4th: its members then (c1, c5)
    assert (out / "spenders_monthly" / "2026-03-04.psv").read_text() == export_file(
        ["ann@example.com", "eve@example.com"], [], "Spend=Monthly")
    # neither c5's return nor c2's leaving changes the static segment: it never removes
    assert (out / "spenders_static" / "2026-03-04.psv").read_text() == export_file([], [], "Spend=Ever")
    assert (out / "spenders_static" / "2026-03-09.psv").read_text() == export_file([], [], "Spend=Ever")
    # each day's manifest lists the files sent that day with their rows
    assert (out / "2026-03-02.manifest.csv").read_text() == (
        "file,group,segment,rows,adds,removes\n"
        "spenders_static/2026-03-02.psv,Spend,Ever,3,3,0\nspenders_weekly/2026-03-02.psv,Spend,Weekly,3,3,0\n")
    assert (out / "2026-03-03.manifest.csv").read_text() == (
        "file,group,segment,rows,adds,removes\nspenders_static/2026-03-03.psv,Spend,Ever,1,1,0\n")
    assert (out / "2026-03-09.manifest.csv").read_text() == (
        "file,group,segment,rows,adds,removes\n"
        "spenders_static/2026-03-09.psv,Spend,Ever,0,0,0\nspenders_weekly/2026-03-09.psv,Spend,Weekly,3,1,2\n")
    runs = {(r["segment"], r["run_date"]): (r["members"], r["export_file"], r["export_adds"])
            for r in wh.read(spark, tables.SEGMENT_RUNS).collect()}
    assert runs[("spenders_weekly", TUESDAY)] == (2, None, None)
    assert runs[("spenders_static", TUESDAY)] == (2, str(out / "spenders_static" / "2026-03-03.psv"), 1)


def test_segment_group_one_file_for_every_value(spark, make_ctx):
    """Resonate's segment group: RFM=<rfm_segment>, one file for the group; a customer moving from
    Champions to At Risk is one row (added to the new value, removed from the old). A complete list
    (--resend) names every id with its value and clears, by its removes, a value nobody has any more."""
    every_rfm = SegmentDefinition("rfm_all", rule("rfm.rfm_segment", "set"),
                                  export=SegmentExport(enabled=True, group="RFM", segment_from="rfm.rfm_segment"))
    settings = SegmentSettings(definitions=[every_rfm])
    day1, day2 = dt.date(2026, 4, 1), dt.date(2026, 4, 2)
    wh = make_ctx(day1).warehouse
    _write_customers(spark, wh, consent_c3="no")   # c3 is a member but not exported
    _write_identity_map(spark, wh)
    day3, day4 = dt.date(2026, 4, 3), dt.date(2026, 4, 4)
    scores = {day1: [("c1", "Champions"), ("c2", "At Risk"), ("c3", "Champions"), ("c5", "Lost")],
              day2: [("c1", "At Risk"), ("c2", "At Risk"), ("c3", "Champions")],
              day3: [("c1", "At Risk"), ("c2", "Loyal Customers"), ("c3", "Champions")],
              day4: [("c1", "Champions"), ("c2", "Loyal Customers"), ("c3", "Champions")]}
    for day in (day1, day2, day3, day4):
        wh.overwrite(spark.createDataFrame(scores[day], RFM_DDL), tables.RFM)
        segments.run(make_ctx(day, segments=settings), RunParams(resend=("rfm_all",) if day == day4 else ()))
    out = wh.local_dir / "exports"

    def file(rows: list[tuple[str, str, str]]) -> str:
        # rows with an Add first, then removes only, each by id
        lines = sorted(((hemsha2(e), add, remove) for e, add, remove in rows), key=lambda r: (not r[1], r[0]))
        return "ID Type|ID|Add|Remove\n" + "".join(f"HEMSHA2|{h}|{a}|{r}\n" for h, a, r in lines)

    assert (out / "rfm_all" / "2026-04-01.psv").read_text() == file([
        ("ann@example.com", "RFM=Champions", ""), ("bob@example.com", "RFM=At Risk", ""),
        ("bob@work.example.com", "RFM=At Risk", ""), ("eve@example.com", "RFM=Lost", "")])
    assert (out / "rfm_all" / "2026-04-02.psv").read_text() == file([
        ("ann@example.com", "RFM=At Risk", "RFM=Champions"), ("eve@example.com", "", "RFM=Lost")])
    assert (out / "2026-04-02.manifest.csv").read_text() == (
        "file,group,segment,rows,adds,removes\nrfm_all/2026-04-02.psv,RFM,<rfm.rfm_segment>,2,1,2\n")
    assert (out / "rfm_all" / "2026-04-03.psv").read_text() == file([
        ("bob@example.com", "RFM=Loyal Customers", "RFM=At Risk"),
        ("bob@work.example.com", "RFM=Loyal Customers", "RFM=At Risk")])
    # the complete list: Bob again, unchanged; Ann's At Risk, a value nobody has now, is cleared
    assert (out / "rfm_all" / "2026-04-04.psv").read_text() == file([
        ("ann@example.com", "RFM=Champions", "RFM=At Risk"), ("bob@example.com", "RFM=Loyal Customers", ""),
        ("bob@work.example.com", "RFM=Loyal Customers", "")])


def test_a_segment_group_value_the_file_cannot_carry_is_counted_as_skipped(spark, make_ctx):
    """A member whose segment group value holds the file's delimiter, a quote or a comma (or is
    empty) has no label and stays out of the file: counted in skipped_no_value, so every member
    left out of the file is counted under one reason. A gold/segment_runs written before the
    column existed gains it."""
    every_rfm = SegmentDefinition("rfm_all", rule("rfm.rfm_segment", "set"),
                                  export=SegmentExport(enabled=True, group="RFM", segment_from="rfm.rfm_segment"))
    day = dt.date(2026, 4, 1)
    wh = make_ctx(day).warehouse
    _write_customers(spark, wh, consent_c3="no")   # c3: no consent, whatever her value
    _write_identity_map(spark, wh)
    wh.overwrite(spark.createDataFrame(
        [("c1", "Champions"), ("c2", "At|Risk"), ("c3", "Say \"hi\""), ("c4", "Lost"), ("c5", "Lost, Found"),
         ("c6", " ")], RFM_DDL), tables.RFM)
    # the segment_runs table an earlier c360 wrote: every column but skipped_no_value
    old_runs = SPECS[tables.SEGMENT_RUNS].schema
    wh.overwrite(spark.createDataFrame([], StructType([f for f in old_runs.fields if f.name != "skipped_no_value"])),
                 tables.SEGMENT_RUNS)
    result = segments.run(make_ctx(day, segments=SegmentSettings(definitions=[every_rfm])), RUN)
    # members c1..c6; c3 declined; c4 has no email; c2, c5 and c6 have no value a label can carry
    assert {k: result.metrics[k] for k in ("members", "skipped_no_consent", "skipped_no_email", "skipped_no_value",
                                           "export_adds")} == {"members": 6, "skipped_no_consent": 1,
                                                               "skipped_no_email": 1, "skipped_no_value": 3,
                                                               "export_adds": 1}
    assert (wh.local_dir / "exports" / "rfm_all" / "2026-04-01.psv").read_text() == export_file(
        ["ann@example.com"], [], "RFM=Champions")
    assert "3 whose segment value the file cannot carry" in result.notes[0]
    runs = wh.read(spark, tables.SEGMENT_RUNS).collect()
    assert [(r["segment"], r["skipped_no_consent"], r["skipped_no_email"], r["skipped_no_value"]) for r in runs] == [
        ("rfm_all", 1, 1, 3)]


def test_full_lists_and_a_resend_on_demand(spark, make_ctx):
    """Resonate's "re-send a complete list of IDs to be processed like a new segment": a full_list
    export sends every id each time (Add only); `--resend NAME` does it once for a differential one,
    and the next file is differential again, from what the complete list left the receiver with."""
    full = segment("spenders_full", rule("lifetime_value", "gte", 3000), group="Spend", segment="Full",
                   full_list=True)
    changes = segment("spenders", rule("lifetime_value", "gte", 3000), group="Spend", segment="Now")
    settings = SegmentSettings(definitions=[full, changes])
    wednesday, thursday = dt.date(2026, 3, 10), dt.date(2026, 3, 11)
    spend = {**SPEND, wednesday: {"c1": 3500.0, "c2": 3000.0, "c5": 4000.0}, thursday: {"c1": 10.0}}
    wh = make_ctx(MONDAY).warehouse
    _write_customers(spark, wh, consent_c3="no")
    _write_identity_map(spark, wh)
    notes = {}
    for day, resend in ((MONDAY, ()), (TUESDAY, ()), (NEXT_MONDAY, ("spenders",)), (wednesday, ()), (thursday, ())):
        wh.overwrite(spark.createDataFrame([(c, 1, v, None, None) for c, v in spend[day].items()], TRAITS_DDL),
                     tables.TRAITS)
        notes[day] = segments.run(make_ctx(day, segments=settings), RunParams(resend=resend)).notes
    out = wh.local_dir / "exports"
    ann, bob, eve = ["ann@example.com"], ["bob@example.com", "bob@work.example.com"], ["eve@example.com"]
    # Monday: both first files are the full list (c2, c5)
    for name, label in (("spenders_full", "Spend=Full"), ("spenders", "Spend=Now")):
        assert (out / name / "2026-03-02.psv").read_text() == export_file([*bob, *eve], [], label)
    # Tuesday: c1 in, c5 out; the full list names the members, the differential file the changes
    assert (out / "spenders_full" / "2026-03-03.psv").read_text() == export_file([*ann, *bob], [], "Spend=Full")
    assert (out / "spenders" / "2026-03-03.psv").read_text() == export_file(ann, eve, "Spend=Now")
    # next Monday, nothing changed: the full list again, and the resent one is the complete list too
    assert (out / "spenders_full" / "2026-03-09.psv").read_text() == export_file([*ann, *bob], [], "Spend=Full")
    assert (out / "spenders" / "2026-03-09.psv").read_text() == export_file([*ann, *bob], [], "Spend=Now")
    # Wednesday, c5 back: the differential file adds only c5 (the resend left the receiver with c1, c2)
    assert (out / "spenders" / "2026-03-10.psv").read_text() == export_file(eve, [], "Spend=Now")
    assert (out / "spenders_full" / "2026-03-10.psv").read_text() == export_file([*ann, *bob, *eve], [], "Spend=Full")
    # Thursday nobody qualifies: the complete list names no id, so its removes clear the segment
    assert (out / "spenders_full" / "2026-03-11.psv").read_text() == export_file([], [*ann, *bob, *eve], "Spend=Full")
    # the manifest counts what each file carries; gold/segment_runs what the receiver's list lost too
    assert (out / "2026-03-03.manifest.csv").read_text() == (
        "file,group,segment,rows,adds,removes\n"
        "spenders/2026-03-03.psv,Spend,Now,2,1,1\nspenders_full/2026-03-03.psv,Spend,Full,3,3,0\n")
    runs = {(r["segment"], r["run_date"]): (r["export_adds"], r["export_removes"])
            for r in wh.read(spark, tables.SEGMENT_RUNS).collect()}
    assert runs[("spenders_full", TUESDAY)] == (3, 1)
    assert runs[("spenders", NEXT_MONDAY)] == (3, 0)
    assert any("export " in n and "the complete list, 3 ids (1 no longer in it)" in n for n in notes[TUESDAY])
    assert any(n.startswith("spenders (customer)") and ": +1 -1 " in n for n in notes[TUESDAY])


def test_a_household_segment_on_group_traits_exports_its_members(spark, make_ctx):
    """A group-level segment reads the group traits (gold/group_traits) as group fields, and its
    export sends every email of every member of each qualifying household."""
    households = segment("big_households", rule("group.household_lifetime_value", "gte", 100), level="group",
                         group="Households", segment="Big spenders")
    wh = make_ctx(MONDAY).warehouse
    _write_customers(spark, wh, consent_c3="no")
    _write_identity_map(spark, wh)
    wh.overwrite(spark.createDataFrame([(g, None, None, None, None, g, {}, None) for g in ("h1", "h2", "h3", "h4")],
                                       SPECS[tables.GROUPS].schema), tables.GROUPS)
    wh.overwrite(group_members(spark, {"h1": ["c1", "c2"], "h2": ["c3", "c4"], "h3": ["c5"], "h4": ["c3"]}),
                 tables.GROUP_MEMBERS)
    wh.overwrite(spark.createDataFrame([("h1", 150.0), ("h2", 500.0), ("h3", 50.0), ("h4", 300.0)],
                                       "group_id string, household_lifetime_value double"), tables.GROUP_TRAITS)
    result = segments.run(make_ctx(MONDAY, segments=SegmentSettings(definitions=[households])), RUN)
    got, expected = _table(spark, wh, tables.SEGMENT_MEMBERSHIP, MEMBERSHIP_DDL,
                           [("big_households", "group", g, MONDAY, None) for g in ("h1", "h2", "h4")])
    assert_df_equality(got, expected, ignore_row_order=True)
    # h1: Ann and both of Bob's emails; h2: c3 declined and c4 has no email, so h2 sends nothing
    # (skipped for want of an email: one of its people consented); h4's only person declined
    # (skipped for want of consent)
    assert (wh.local_dir / "exports" / "big_households" / "2026-03-02.psv").read_text() == export_file(
        ["ann@example.com", "bob@example.com", "bob@work.example.com"], [], "Households=Big spenders")
    assert (result.metrics["members"], result.metrics["skipped_no_consent"], result.metrics["skipped_no_email"]) == (3, 1, 1)


@pytest.mark.parametrize(("name", "message"), [
    ("quiet", r"--resend quiet: not an exported segment \(exported: sent, kept\)"),
    ("kept", r"--resend kept: a static segment is never re-sent"),
])
def test_resend_names_an_exported_segment_that_is_not_static(make_ctx, name, message):
    settings = SegmentSettings(definitions=[
        segment("quiet", rule("lifetime_value", "gte", 1)),
        segment("sent", rule("lifetime_value", "gte", 1), group="G", segment="S"),
        segment("kept", rule("lifetime_value", "gte", 1), group="G", segment="K", static=True)])
    with pytest.raises(ConfigError, match=message):
        segments.run(make_ctx(MONDAY, segments=settings), RunParams(resend=(name,)))


@pytest.mark.parametrize("command", ["segments", "nightly --input in"])
def test_resend_on_the_command_line(command):
    args = build_parser().parse_args([*command.split(), "--resend", "a", "--resend", "b"])
    assert _params(args).resend == ("a", "b")


def _members_night_by_night(spark, make_ctx, rows, days, trait_settings, settings):
    """The customers of _customers over these stream rows (message_id = the row's id), the traits and
    segments stages run on each day in turn: (the warehouse, {day: current members})."""
    wh = make_ctx(days[0]).warehouse
    _write_customers(spark, wh, consent_c3="no")
    _write_identity_map(spark, wh)
    wh.overwrite(stream(spark, rows).withColumn("message_id", F.col("activity_uuid")), tables.ACTIVITY_STREAM)
    rebuild_daily(spark, wh)
    members = {}
    for day in days:
        ctx = make_ctx(day, traits=trait_settings, segments=settings)
        traits_stage.run(ctx, RUN)
        segments.run(ctx, RUN)
        members[day] = sorted(r["member_id"] for r in wh.read(spark, tables.SEGMENT_MEMBERSHIP)
                              .filter(F.col("exited_on").isNull()).collect())
    return wh, members


def test_a_fixed_period_segment_keeps_its_members_after_the_period(spark, make_ctx):
    """Resonate's fixed-period segment "Purchasers 2026=Q1": a trait over a fixed calendar window
    (traits.window {first_day, last_day}) does not move with the run date, so the audience of Q1's
    buyers is the same in May as on March 31, and an April buyer never joins it."""

    q1 = TraitWindow(first_day=dt.date(2026, 1, 1), last_day=dt.date(2026, 3, 31))
    trait_settings = TraitSettings([TraitDefinition("orders_2026_q1", "count_distinct", activity="order_placed",
                                                    of="order_no", window=q1)], group=[])
    purchasers = segment("purchasers_2026_q1", rule("traits.orders_2026_q1", "gte", 1),
                         group="Purchasers 2026", segment="Q1")
    end_of_q1, may = dt.date(2026, 3, 31), dt.date(2026, 5, 15)
    # c1 bought in February, c5 on Q1's last evening, c2 in April (after the period)
    wh, members = _members_night_by_night(spark, make_ctx, [
        activity("u1", "c1", "order_placed", "2026-02-10 10:00", order="A-1", value="10"),
        activity("u2", "c5", "order_placed", "2026-03-31 23:30", order="B-1", value="20"),
        activity("u3", "c2", "order_placed", "2026-04-02 09:00", order="C-1", value="30"),
    ], (end_of_q1, may), trait_settings, SegmentSettings(definitions=[purchasers]))
    assert members == {end_of_q1: ["c1", "c5"], may: ["c1", "c5"]}
    out = wh.local_dir / "exports" / "purchasers_2026_q1"
    assert (out / "2026-03-31.psv").read_text() == export_file(["ann@example.com", "eve@example.com"], [],
                                                               "Purchasers 2026=Q1")
    assert (out / "2026-05-15.psv").read_text() == export_file([], [], "Purchasers 2026=Q1")


def test_cart_abandoners_added_to_cart_and_no_purchase_within_4_hours(spark, make_ctx):
    """The retention recipe's "added to cart and no purchase within 4 hours": a not_followed_by trait
    (docs/traits.md, Sequences) read by a segment, over two nights. A cart added late in the evening
    joins on the next night, once its 4 hours are over."""
    abandoned = TraitDefinition("carts_abandoned_last_7_days", "not_followed_by", activity="product_added",
                                followed_by="order_placed", within=Within(hours=4), window=TraitWindow(days=7))
    trait_settings = TraitSettings([abandoned], group=[])
    abandoners = segment("cart_abandoners", rule("traits.carts_abandoned_last_7_days", "gt", 0),
                         group="Retention", segment="Cart abandoners")
    first, second = dt.date(2026, 3, 14), dt.date(2026, 3, 15)
    # c1 ordered an hour after the cart; c2 five hours after; c5's cart came at 21:00 on the first night
    wh, members = _members_night_by_night(spark, make_ctx, [
        activity("u1", "c1", "product_added", "2026-03-14 10:00"),
        activity("u2", "c1", "order_placed", "2026-03-14 11:00", order="A-1", value="10"),
        activity("u3", "c2", "product_added", "2026-03-13 09:00"),
        activity("u4", "c2", "order_placed", "2026-03-13 14:00", order="B-1", value="20"),
        activity("u5", "c5", "product_added", "2026-03-14 21:00"),
    ], (first, second), trait_settings, SegmentSettings(definitions=[abandoners]))
    assert members == {first: ["c2"], second: ["c2", "c5"]}
    out = wh.local_dir / "exports" / "cart_abandoners"
    label = "Retention=Cart abandoners"
    assert (out / "2026-03-14.psv").read_text() == export_file(["bob@example.com", "bob@work.example.com"], [], label)
    assert (out / "2026-03-15.psv").read_text() == export_file(["eve@example.com"], [], label)


@pytest.mark.parametrize(("export", "level", "message"), [
    ({"segment": "S", "segment_from": "rfm.rfm_segment"}, "customer", "give either segment"),
    ({"segment_from": "rfm"}, "customer", "'x.export.segment_from' must be a customer field"),
    ({"segment_from": "rfm.rfm_segment"}, "group", "'x.export.segment_from' needs level customer"),
])
def test_segment_group_mistakes(export, level, message):
    definition = SegmentDefinition("s", rule("state", "set"), level=level,
                                   export=SegmentExport(enabled=True, group="G", **export))
    with pytest.raises(ValueError, match=re.escape(message)):
        definition.export.validate("x.export")   # as the config loader does, section by section
        definition.validate("x")


def test_a_static_segment_is_never_a_full_list():
    with pytest.raises(ValueError, match=re.escape("'x.full_list' does not apply to a static segment")):
        SegmentExport(enabled=True, group="G", segment="S", static=True, full_list=True).validate("x")


@pytest.mark.parametrize(("export", "message"), [
    ({"cadence": "weekly"}, "'x.weekday' names the day of a weekly export"),
    ({"weekday": "monday"}, "'x.weekday' names the day of a weekly export"),
    ({"cadence": "monthly"}, "'x.month_day' names the day of a monthly export"),
    ({"cadence": "monthly", "month_day": 31}, "'x.month_day' must be 1 to 28"),
])
def test_export_cadence_mistakes(export, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SegmentExport(enabled=True, group="G", segment="S", **export).validate("x")


@pytest.mark.parametrize(("file_name", "message"), [
    ("{grp}_{date}", "'x.file_name' names an unknown field {grp} (fields: segment, group, date, yyyymmdd, sequence)"),
    ("{group.upper}", "'x.file_name' names an unknown field {group.upper}"),
    ("{sequence:q}", "'x.file_name' is not a file name template (Unknown format code 'q'"),
    ("{date", "'x.file_name' is not a file name template"),
    ("../{date}", "'x.file_name' must be a relative path"),
    ("/srv/{date}", "'x.file_name' must be a relative path"),
    ("_hidden/{date}", "'x.file_name' must be a relative path whose parts are not empty and do not start with '.' or '_'"),
    ("{group}_{sequence:04d}", "'x.file_name' with {sequence} needs {date} or {yyyymmdd} too"),
])
def test_export_file_name_mistakes(file_name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SegmentExport(enabled=True, group="G", segment="S", file_name=file_name).validate("x")


def test_two_exports_cannot_share_a_file(tmp_path):
    body = ("    - {name: a, condition: {field: state, op: set}, export: {enabled: true, group: G, segment: A, "
            "file_name: '{group}_{yyyymmdd}'}}\n"
            "    - {name: b, condition: {field: state, op: set}, export: {enabled: true, group: G, segment: B, "
            "file_name: '{group}_{yyyymmdd}'}}\n")
    with pytest.raises(ConfigError, match=re.escape("'segments.definitions[1].export.file_name': segment 'b' would "
                                                    "write the file of segment 'a' (G_20260131.psv)")):
        _load_segments(tmp_path, body)


def test_files_named_by_group_date_and_sequence(spark, make_ctx):
    """An onboarding upload's flat folder: <group>_<YYYYMMDD>_<sequence>.psv, the sequence counting
    the files the segment sent (a weekly export: Tuesday sends none), the same name on a re-run."""
    weekly = segment("spenders_weekly", rule("lifetime_value", "gte", 3000), group="Big Spend", segment="Weekly",
                     cadence="weekly", weekday="monday", file_name="{group}_{yyyymmdd}_{sequence:03d}")
    settings = SegmentSettings(definitions=[weekly])
    wh = make_ctx(MONDAY).warehouse
    _write_customers(spark, wh, consent_c3="no")
    _write_identity_map(spark, wh)
    for day in (MONDAY, TUESDAY, NEXT_MONDAY, NEXT_MONDAY):
        wh.overwrite(spark.createDataFrame([(c, 1, v, None, None) for c, v in SPEND[day].items()], TRAITS_DDL),
                     tables.TRAITS)
        segments.run(make_ctx(day, segments=settings), RUN)
    out = wh.local_dir / "exports"
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "2026-03-02.manifest.csv", "2026-03-09.manifest.csv", "Big_Spend_20260302_001.psv", "Big_Spend_20260309_002.psv"]
    assert (out / "Big_Spend_20260309_002.psv").read_text() == export_file(["ann@example.com"], ["eve@example.com"],
                                                                           "Big Spend=Weekly")
    assert (out / "2026-03-09.manifest.csv").read_text() == (
        "file,group,segment,rows,adds,removes\nBig_Spend_20260309_002.psv,Big Spend,Weekly,2,1,1\n")


def test_export_days():
    weekly = SegmentExport(cadence="weekly", weekday="friday")
    monthly = SegmentExport(cadence="monthly", month_day=1)
    assert [d.day for d in (dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(14)) if weekly.due(d)] == [6, 13]
    assert [monthly.due(d) for d in (dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 4, 1))] == [True, False, True]
    assert SegmentExport().due(dt.date(2026, 3, 2))


def test_preview_needs_a_known_segment_and_its_inputs(make_ctx):
    ctx = make_ctx(D1, segments=STAGE_SETTINGS)
    with pytest.raises(ConfigError, match=r"no segment named 'nope' to preview \(configured: churn_risk, vip_emails\)"):
        segments.preview(ctx, "nope", None)
    with pytest.raises(ConfigError, match=r"needs the NAME of a segment"):
        segments.preview(ctx, None, None)
    with pytest.raises(InputError, match=r"silver/customers does not exist: run `c360 stitch` first"):
        segments.preview(ctx, "churn_risk", None)

"""The segments condition language's operators: the lens's names, the older names as synonyms. Pure Python."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from jobs.core.config import load_config
from jobs.core.errors import ConfigError
from jobs.segments import operators
from jobs.segments.settings import Rule, SegmentDefinition, default_definitions, parse_condition, rules_of
from lens.calendar import RelativeDate


def parse(rule: dict):
    return parse_condition(rule, "c")


# (older spelling, canonical spelling): each pair parses to the same rule
SYNONYM_PAIRS = [
    ({"field": "state", "op": "eq", "value": "CA"}, {"field": "state", "op": "equals", "value": "CA"}),
    ({"field": "state", "op": "ne", "value": "CA"}, {"field": "state", "op": "notEquals", "value": "CA"}),
    ({"field": "rfm_segment", "op": "in", "value": ["Champions", "Lost"]},
     {"field": "rfm_segment", "op": "equals", "value": ["Champions", "Lost"]}),
    ({"field": "rfm_segment", "op": "not_in", "value": ["Champions"]},
     {"field": "rfm_segment", "op": "notEquals", "value": ["Champions"]}),
    ({"field": "email", "op": "is_null"}, {"field": "email", "op": "notSet"}),
    ({"field": "email", "op": "not_null"}, {"field": "email", "op": "set"}),
    ({"field": "last_order_date", "op": "lt", "value": {"month_start": -1}},
     {"field": "last_order_date", "op": "lt", "value": {"unit": "month", "offset": -1}}),
    ({"field": "last_order_date", "op": "eq", "value": {"days_before_run_date": 30}},
     {"field": "last_order_date", "op": "equals", "value": {"unit": "day", "offset": -30}}),
]


@pytest.mark.parametrize("older, canonical", SYNONYM_PAIRS)
def test_older_names_are_synonyms_of_the_lens_names(older, canonical):
    old_rule, new_rule = parse(older), parse(canonical)
    assert old_rule == new_rule
    assert old_rule.op in operators.OPERATORS
    assert (old_rule.written, new_rule.written) == (older["op"], canonical["op"])


def test_what_a_rule_holds_after_parsing():
    assert parse({"field": "state", "op": "eq", "value": "CA"}) == Rule("state", "equals", "CA")
    assert parse({"field": "state", "op": "in", "value": ["CA"]}) == Rule("state", "equals", ("CA",))
    assert parse({"field": "d", "op": "gte", "value": {"month_start": 0}}) == Rule("d", "gte", RelativeDate("month", 0))
    assert parse({"field": "email", "op": "is_null"}) == Rule("email", "notSet", None)


def test_every_synonym_and_its_canonical_operator():
    assert operators.SYNONYMS == {"eq": "equals", "ne": "notEquals", "in": "equals", "not_in": "notEquals",
                                  "is_null": "notSet", "not_null": "set"}
    assert operators.OPERATORS == ("equals", "notEquals", "gt", "gte", "lt", "lte", "set", "notSet", "contains")
    assert [operators.canonical(n) for n in ("gt", "eq", "notSet", "greater")] == ["gt", "equals", "notSet", None]


def test_the_canonical_names_are_lens_filter_operators():
    lens_operators = getattr(importlib.import_module("lens.query_format"), "OPERATORS", None)
    if lens_operators is None:
        pytest.skip("lens.query_format.OPERATORS moved")
    assert set(operators.OPERATORS) <= set(lens_operators)
    assert not set(operators.SYNONYMS) & set(lens_operators)


def test_the_compiler_re_exports_the_vocabulary():
    conditions = importlib.import_module("jobs.segments.conditions")   # imports pyspark, starts no session
    assert (conditions.OPERATORS, conditions.SYNONYMS) == (operators.OPERATORS, operators.SYNONYMS)


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"field": "a", "op": "greater", "value": 1},
         r"'c\.op' must be one of equals, notEquals, gt, gte, lt, lte, set, notSet, contains \(or the older eq, ne, "
         r"in, not_in, is_null, not_null\); got 'greater'"),
        ({"field": "a", "op": "notContains", "value": "x"}, r"'c\.op' must be one of equals, .*; got 'notContains'"),
        ({"field": "a", "op": 5, "value": 1}, r"'c\.op' must be one of .*; got 5"),
        # each older name keeps the value it always took
        ({"field": "a", "op": "eq", "value": [1, 2]},
         r"'c\.value' must be a single value for `eq`; lists go with equals / notEquals \(or in / not_in\)"),
        ({"field": "a", "op": "in", "value": 1}, r"'c\.value' must be a non-empty list for `in`"),
        ({"field": "a", "op": "not_in", "value": []}, r"'c\.value' must be a non-empty list for `not_in`"),
        ({"field": "a", "op": "is_null", "value": 1}, r"'c\.value' must be left out: `is_null` takes no value"),
        # the canonical names take what the lens's do: equals / notEquals one value or a list
        ({"field": "a", "op": "equals", "value": []}, r"'c\.value' must be a non-empty list for `equals`"),
        ({"field": "a", "op": "equals"}, r"'c\.value' is required for `equals` \(use notSet / set for missing values\)"),
        ({"field": "a", "op": "set", "value": True}, r"'c\.value' must be left out: `set` takes no value"),
        ({"field": "a", "op": "gt", "value": [1]}, r"'c\.value' must be a single value for `gt`"),
        ({"field": "a", "op": "contains", "value": ["x"]}, r"'c\.value' must be a single value for `contains`"),
        ({"field": "a", "op": "equals", "value": [{"month_start": -1}]},
         r"'c\.value\[0\]': a run-date relative date works as the one value of equals, notEquals, gt, gte, lt, lte "
         r"\(or eq, ne\), not in a list"),
        ({"field": "a", "op": "contains", "value": {"unit": "day", "offset": -1}},
         r"'c\.value': a run-date relative date works as the one value of .*, not `contains`"),
        ({"field": "a", "op": "lt", "value": {"unit": "month", "offset": "last"}},
         r"'c\.value\.offset' must be a whole number, got 'last'"),
    ],
)
def test_operator_and_value_mistakes_name_the_key(rule, message):
    with pytest.raises(ValueError, match=message):
        parse(rule)


def test_definitions_compare_by_meaning_not_spelling():
    older = SegmentDefinition("s", {"all": [pair[0] for pair in SYNONYM_PAIRS]})
    canonical = SegmentDefinition("s", {"all": [pair[1] for pair in SYNONYM_PAIRS]})
    assert older == canonical
    assert older != SegmentDefinition("s", {"all": [pair[1] for pair in SYNONYM_PAIRS[:-1]]})
    assert older != SegmentDefinition("t", {"all": [pair[1] for pair in SYNONYM_PAIRS]})
    # a condition that does not parse compares as written
    assert SegmentDefinition("s", {"bad": 1}) == SegmentDefinition("s", {"bad": 1})
    assert SegmentDefinition("s", {"bad": 1}) != SegmentDefinition("s", {"bad": 2})


def test_the_defaults_are_spelled_canonically():
    for definition in default_definitions():
        for rule in rules_of(definition.parsed_condition("c")):
            assert rule.written in operators.OPERATORS


def test_a_config_in_the_canonical_spelling_loads(tmp_path: Path):
    path = tmp_path / "seg.yml"
    path.write_text(
        "segments:\n  definitions:\n"
        "    - name: lapsed\n"
        "      condition:\n"
        "        all:\n"
        "          - {field: traits.last_order_date, op: lt, value: {unit: month, offset: -1}}\n"
        "          - {field: rfm.rfm_segment, op: notEquals, value: [Lost, Hibernating]}\n"
        "          - {field: customer.email, op: set}\n"
    )
    rules = rules_of(load_config(path).segments.definitions[0].parsed_condition("c"))
    assert [(r.op, r.value) for r in rules] == [
        ("lt", RelativeDate("month", -1)), ("notEquals", ("Lost", "Hibernating")), ("set", None)]


def test_a_mistake_in_the_canonical_spelling_names_file_segment_and_key(tmp_path: Path):
    path = tmp_path / "seg.yml"
    path.write_text("segments:\n  definitions:\n"
                    "    - {name: s1, condition: {field: a, op: notSet, value: 1}}\n")
    with pytest.raises(ConfigError, match=r"seg\.yml: segment 's1': 'segments\.definitions\[0\]\.condition\.value' "
                                          r"must be left out: `notSet` takes no value"):
        load_config(path)

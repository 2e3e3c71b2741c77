"""The `segments:` config section: audience definitions, their condition language, their exports.

Kept out of jobs/config.py (which imports it) so the segments stage owns its schema; this module
must not import jobs.config or pyspark. Validated at load by `jobs.config.build_section`: an unknown
key or a bad value is a ConfigError naming the file, the segment and the dotted key. Whether a field
exists, and whether a value fits its column's type, is known only once the input tables are read:
jobs.segments checks that at the start of a run, before anything is written (docs/segments.md).

Condition language (structured, so no user text ever reaches Spark SQL):

    condition:                       # a node is one rule, or `all:` / `any:` over a list of nodes
      all:
        - {field: traits.last_order_date, op: lt, value: {month_start: -1}}
        - {field: traits.total_orders, op: gte, value: 10}
        - any:
            - {field: group.income_band, op: in, value: [high, very high]}
            - {field: state, op: eq, value: CA}

Fields: `<column>` of silver/customers, gold/traits or gold/rfm (qualify as customer.x, traits.x,
rfm.x when the name is in more than one), `group.<attribute>` (gold/groups column or custom trait),
`identifier.identifier_value` at identifier level. Values: text, numbers, booleans, ISO dates, lists
(in/not_in) and run-date relative dates `{days_before_run_date: N}` / `{month_start: K}`.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Union

from jobs.activity_settings import IDENTIFIER_TYPES

CUSTOMER_LEVEL = "customer"
GROUP_LEVEL = "group"
IDENTIFIER_LEVEL_PREFIX = "identifier:"
LEVELS_HELP = "customer, group or identifier:<type> (type: " + ", ".join(IDENTIFIER_TYPES) + ")"

COMPARISON_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")
NULL_OPS = ("is_null", "not_null")
CONTAINS_OP = "contains"
OPS = (*COMPARISON_OPS, *LIST_OPS, *NULL_OPS, CONTAINS_OP)
COMBINATORS = ("all", "any")
RULE_KEYS = ("field", "op", "value")

# Field prefixes: which input a qualified field reads. `group.` takes any attribute name.
FIELD_SOURCES = ("customer", "traits", "rfm", "group", "identifier")
FIELD_NAME = re.compile(r"^(?:(customer|traits|rfm|identifier)\.)?([A-Za-z_][A-Za-z0-9_]*)$|^group\.(\S.*)$")

# Run-date relative dates: `{days_before_run_date: 30}` is D - 30 days; `{month_start: -1}` is the
# first day of the calendar month before D's month (interface §5 "last month"), 0 = D's month.
DAYS_BEFORE_RUN_DATE = "days_before_run_date"
MONTH_START = "month_start"
RELATIVE_DATE_KEYS = (DAYS_BEFORE_RUN_DATE, MONTH_START)

SEGMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
EXPORT_DELIMITERS = ("|", ",")
# Resonate limits group names to 280 characters; `=` separates group from segment in the file.
MAX_EXPORT_GROUP_LENGTH = 280
EXPORTABLE_LEVELS = (CUSTOMER_LEVEL, f"{IDENTIFIER_LEVEL_PREFIX}email")
DEFAULT_CONSENT_VALUES = ("yes", "true", "y", "1")


# ----------------------------------------------------------------------------------------------
# The parsed condition tree
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelativeDate:
    """A date computed from the run date: never the wall clock."""

    kind: str  # DAYS_BEFORE_RUN_DATE | MONTH_START
    amount: int

    def on(self, run_date: dt.date) -> dt.date:
        if self.kind == DAYS_BEFORE_RUN_DATE:
            return run_date - dt.timedelta(days=self.amount)
        months = run_date.year * 12 + run_date.month - 1 + self.amount
        return dt.date(months // 12, months % 12 + 1, 1)


@dataclass(frozen=True)
class Rule:
    """`field op value`; `key` is the dotted config key, for errors found later at run time."""

    field: str
    op: str
    value: Any
    key: str

    @property
    def source(self) -> str | None:
        """The qualifying prefix (customer, traits, rfm, group, identifier) or None."""
        match = FIELD_NAME.match(self.field)
        return "group" if match.group(3) is not None else match.group(1)

    @property
    def name(self) -> str:
        match = FIELD_NAME.match(self.field)
        return match.group(3) if match.group(3) is not None else match.group(2)


@dataclass(frozen=True)
class Combination:
    mode: str  # all | any
    items: tuple[Node, ...]


Node = Union[Rule, Combination]


def rules_of(node: Node) -> list[Rule]:
    if isinstance(node, Rule):
        return [node]
    return [rule for item in node.items for rule in rules_of(item)]


def parse_condition(raw: Any, key: str) -> Node:
    """Parse a condition mapping; a ValueError names the dotted key of the offending part."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"'{key}' must be a rule {{field, op, value}} or an `all:`/`any:` list")
    combinators = [k for k in raw if k in COMBINATORS]
    if combinators:
        if len(raw) != 1:
            others = ", ".join(sorted(str(k) for k in raw if k != combinators[0]))
            raise ValueError(f"'{key}' has `{combinators[0]}:` and also {others}: put each in its own node")
        mode = combinators[0]
        items = raw[mode]
        if not isinstance(items, list) or not items:
            raise ValueError(f"'{key}.{mode}' must be a non-empty list of conditions")
        return Combination(mode, tuple(parse_condition(item, f"{key}.{mode}[{i}]") for i, item in enumerate(items)))
    unknown = [str(k) for k in raw if k not in RULE_KEYS]
    if unknown:
        raise ValueError(
            f"unknown key '{key}.{unknown[0]}' (a rule has field, op, value; a list of rules is all: or any:)"
        )
    for required in ("field", "op"):
        if required not in raw:
            raise ValueError(f"'{key}' needs '{required}'")
    return _parse_rule(raw, key)


def _parse_rule(raw: dict, key: str) -> Rule:
    name, op = raw["field"], raw["op"]
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise ValueError(
            f"'{key}.field' must be a column name, optionally qualified as "
            f"{', '.join(f'{s}.<name>' for s in FIELD_SOURCES)}; got {name!r}"
        )
    if op not in OPS:
        raise ValueError(f"'{key}.op' must be one of {', '.join(OPS)}; got {op!r}")
    has_value = "value" in raw
    value = raw.get("value")
    if op in NULL_OPS:
        if has_value:
            raise ValueError(f"'{key}.value' must be left out: `{op}` takes no value")
        return Rule(name, op, None, key)
    if not has_value or value is None:
        raise ValueError(f"'{key}.value' is required for `{op}` (use is_null / not_null for missing values)")
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            raise ValueError(f"'{key}.value' must be a non-empty list for `{op}`")
        return Rule(name, op, tuple(_parse_scalar(v, f"{key}.value[{i}]", op) for i, v in enumerate(value)), key)
    return Rule(name, op, _parse_scalar(value, f"{key}.value", op), key)


def _parse_scalar(value: Any, key: str, op: str) -> Any:
    if isinstance(value, dict):
        if op == CONTAINS_OP or op in LIST_OPS:
            raise ValueError(f"'{key}': a run-date relative date works with {', '.join(COMPARISON_OPS)}, not `{op}`")
        if len(value) != 1 or next(iter(value)) not in RELATIVE_DATE_KEYS:
            raise ValueError(
                f"'{key}' must be a value or one of {{days_before_run_date: N}}, {{month_start: K}}; got {value!r}"
            )
        kind, amount = next(iter(value.items()))
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError(f"'{key}.{kind}' must be a whole number, got {amount!r}")
        return RelativeDate(kind, amount)
    if isinstance(value, (list, tuple)):
        raise ValueError(f"'{key}' must be a single value; lists go with in / not_in")
    if value is None or not isinstance(value, (str, int, float, bool, dt.date)):
        raise ValueError(f"'{key}' must be text, a number, true/false or a date; got {value!r}")
    return value


def identifier_type_of(level: str) -> str | None:
    """'identifier:email' -> 'email'; None for customer and group levels."""
    return level[len(IDENTIFIER_LEVEL_PREFIX):] if level.startswith(IDENTIFIER_LEVEL_PREFIX) else None


# ----------------------------------------------------------------------------------------------
# Config dataclasses
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentExport:
    """Resonate-style differential export (interface §6): `<Group>=<Segment>` in Add / Remove."""

    enabled: bool = False
    group: str = ""
    segment: str = ""
    delimiter: str = "|"

    @property
    def label(self) -> str:
        return f"{self.group}={self.segment}"

    @property
    def extension(self) -> str:
        return "psv" if self.delimiter == "|" else "csv"

    def validate(self, key: str) -> None:
        if self.delimiter not in EXPORT_DELIMITERS:
            raise ValueError(f"'{key}.delimiter' must be '|' or ','; got {self.delimiter!r}")
        if not self.enabled:
            return
        for name in ("group", "segment"):
            text = getattr(self, name)
            if not text.strip():
                raise ValueError(f"'{key}.{name}' is required when the export is enabled")
            # Values are written unquoted: nothing in them may need quoting or be trimmed away.
            bad = next((c for c in (self.delimiter, '"', "\n", "\r") if c in text), None)
            if bad is not None or text != text.strip():
                what = "leading or trailing spaces" if bad is None else repr(bad)
                raise ValueError(f"'{key}.{name}' must not contain {what}; got {text!r}")
        if "=" in self.group:
            raise ValueError(f"'{key}.group' must not contain '=' (it separates group from segment)")
        if len(self.group) > MAX_EXPORT_GROUP_LENGTH:
            raise ValueError(f"'{key}.group' is {len(self.group)} characters; Resonate allows {MAX_EXPORT_GROUP_LENGTH}")


@dataclass(frozen=True)
class SegmentDefinition:
    name: str
    condition: dict[str, Any]
    level: str = CUSTOMER_LEVEL
    description: str = ""
    export: SegmentExport = field(default_factory=SegmentExport)

    def validate(self, key: str) -> None:
        if not SEGMENT_NAME.match(self.name):
            raise ValueError(
                f"'{key}.name' must be lower-case letters, digits, '_' or '-' (it names export folders); "
                f"got {self.name!r}"
            )
        where = f"segment '{self.name}': "
        identifier_type = identifier_type_of(self.level)
        if self.level not in (CUSTOMER_LEVEL, GROUP_LEVEL) and identifier_type not in IDENTIFIER_TYPES:
            raise ValueError(f"{where}'{key}.level' must be {LEVELS_HELP}; got {self.level!r}")
        if self.export.enabled and self.level not in EXPORTABLE_LEVELS:
            raise ValueError(
                f"{where}'{key}.export': only {' and '.join(EXPORTABLE_LEVELS)} segments can be exported "
                "(HEMSHA2 ids are people's emails)"
            )
        try:
            self.parsed_condition(f"{key}.condition")
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None

    def parsed_condition(self, key: str) -> Node:
        return parse_condition(self.condition, key)


def default_definitions() -> list[SegmentDefinition]:
    """The seed recipe's churn-risk audience, two RFM audiences and a household audience."""
    return [
        SegmentDefinition(
            name="churn_risk",
            description="no order since the start of last month, at least 10 orders, spent at least 1,000",
            condition={"all": [
                {"field": "traits.last_order_date", "op": "lt", "value": {MONTH_START: -1}},
                {"field": "traits.total_orders", "op": "gte", "value": 10},
                {"field": "traits.lifetime_value", "op": "gte", "value": 1000},
            ]},
            export=SegmentExport(enabled=True, group="Retention 2026", segment="Churn risk", delimiter="|"),
        ),
        SegmentDefinition(
            name="rfm_champions",
            description="RFM segment Champions",
            condition={"field": "rfm.rfm_segment", "op": "eq", "value": "Champions"},
            export=SegmentExport(enabled=True, group="RFM", segment="Champions", delimiter=","),
        ),
        SegmentDefinition(
            name="rfm_at_risk",
            description="RFM segment At Risk",
            condition={"field": "rfm.rfm_segment", "op": "eq", "value": "At Risk"},
        ),
        SegmentDefinition(
            name="household_champions",
            level=GROUP_LEVEL,
            description="households (groups) with at least one RFM Champion among their members",
            condition={"field": "rfm.rfm_segment", "op": "eq", "value": "Champions"},
        ),
    ]


@dataclass(frozen=True)
class SegmentSettings:
    definitions: list[SegmentDefinition] = field(default_factory=default_definitions)
    # consent column values (trimmed, case-insensitive) that allow a customer to be exported
    consent_values: list[str] = field(default_factory=lambda: list(DEFAULT_CONSENT_VALUES))
    # rows `c360 segments preview NAME` prints
    preview_rows: int = 10

    def validate(self, key: str) -> None:
        names = [d.name for d in self.definitions]
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated:
            raise ValueError(f"'{key}.definitions' defines the segment {repeated!r} twice")
        if not self.consent_values or any(not v.strip() for v in self.consent_values):
            raise ValueError(f"'{key}.consent_values' must list at least one non-empty value")
        if self.preview_rows < 1:
            raise ValueError(f"'{key}.preview_rows' must be at least 1")

    def find(self, name: str) -> tuple[int, SegmentDefinition] | None:
        return next(((i, d) for i, d in enumerate(self.definitions) if d.name == name), None)

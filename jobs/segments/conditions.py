"""Segment conditions -> Spark columns: the field catalog and the condition compiler.

A definition's condition (parsed at config load by jobs.segments.settings) is bound here to the input
tables' schemas, with no Spark job: every field must name a column of silver/customers, gold/traits,
gold/rfm, gold/groups (`group.<attr>`, or a custom group trait) or, at identifier level, the
identifier itself, and every value must fit its column's type. Mistakes are ConfigErrors naming the
file, the segment and the dotted key, raised before anything is written. The result is one boolean
Column per segment over an evaluation frame whose field columns are named by alias (jobs.segments.evaluate).

Operators are the lens's names (jobs.segments.operators, re-exported here): equals / notEquals (one
value, or a list: any / none of them), gt, gte, lt, lte, set, notSet, contains; the older eq, ne, in,
not_in, not_null, is_null are synonyms.
"""
from __future__ import annotations

import datetime as dt
import functools
import operator
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    MapType,
    NumericType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from jobs.core import tables
from jobs.core.errors import ConfigError
from jobs.segments.operators import (  # noqa: F401  (OPERATORS, SYNONYMS, canonical: re-exported)
    CONTAINS,
    EQUALS,
    GT,
    GTE,
    LT,
    LTE,
    NOT_EQUALS,
    NOT_SET,
    OPERATORS,
    SET,
    SYNONYMS,
    canonical,
)
from jobs.segments.settings import (
    Combination,
    Node,
    Rule,
    SegmentDefinition,
    SegmentSettings,
    identifier_type_of,
)
from lens.calendar import RelativeDate

# Sources of fields: customer-keyed tables, then groups and the identifier itself.
CUSTOMER_SOURCES = {"customer": tables.SILVER_CUSTOMERS, "traits": tables.TRAITS, "rfm": tables.RFM}
SOURCE_STAGES = {"customer": "stitch", "traits": "traits", "rfm": "rfm", "group": "activities",
                 "identifier": "stitch"}
GROUP_TRAITS_COLUMN = "custom_traits"
IDENTIFIER_COLUMNS = {"identifier_type": StringType(), "identifier_value": StringType()}


# ----------------------------------------------------------------------------------------------
# Inputs and field resolution
# ----------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """The tables segments read; None where a table does not exist (or is not needed)."""

    customers: DataFrame
    traits: DataFrame | None = None
    rfm: DataFrame | None = None
    groups: DataFrame | None = None
    group_members: DataFrame | None = None
    identity_map: DataFrame | None = None

    def customer_source(self, source: str) -> DataFrame | None:
        return {"customer": self.customers, "traits": self.traits, "rfm": self.rfm}[source]


@dataclass(frozen=True)
class ResolvedField:
    """A rule's field bound to an input column; `alias` names it in the evaluation frame."""

    source: str        # customer | traits | rfm | group | identifier
    column: str        # the column, or the custom trait's key when custom_trait
    data_type: DataType
    alias: str
    custom_trait: bool = False

    @property
    def label(self) -> str:
        return f"{self.source}.{self.column}"


@dataclass(frozen=True)
class CompiledSegment:
    definition: SegmentDefinition
    condition: Column
    fields: tuple[ResolvedField, ...]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def level(self) -> str:
        return self.definition.level


@dataclass
class FieldCatalog:
    """Input columns by source, from schemas only (no Spark job); hands out stable aliases."""

    schemas: dict[str, StructType]
    file: str
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def of(cls, inputs: Inputs, file: str) -> FieldCatalog:
        schemas = {s: df.schema for s in CUSTOMER_SOURCES if (df := inputs.customer_source(s)) is not None}
        if inputs.groups is not None:
            schemas["group"] = inputs.groups.schema
        return cls(schemas, file)

    def resolve(self, rule: Rule, definition: SegmentDefinition) -> ResolvedField:
        where = f"{self.file}: segment '{definition.name}': '{rule.key}.field'"
        source, name = rule.source, rule.name
        if source == "group":
            return self._group_field(name, where)
        if source == "identifier" or (source is None and name.lower() in IDENTIFIER_COLUMNS):
            if identifier_type_of(definition.level) is None:
                if source == "identifier":
                    raise ConfigError(f"{where}: identifier fields exist only at level identifier:<type>")
            else:
                return self._bind("identifier", name.lower(), IDENTIFIER_COLUMNS[name.lower()], where)
        candidates = [source] if source else list(CUSTOMER_SOURCES)
        found = []
        for candidate in candidates:
            column = self._column(candidate, name, skip_key=source is None)
            if column is not None:
                found.append((candidate, column))
        if len(found) > 1:
            options = " or ".join(f"{s}.{c.name}" for s, c in found)
            raise ConfigError(f"{where}: {rule.field!r} is a column of several inputs; write {options}")
        if not found:
            raise ConfigError(f"{where}: {rule.field!r} is not a known field; {self._known(candidates)}")
        candidate, column = found[0]
        return self._bind(candidate, column.name, column.dataType, where)

    def _column(self, source: str, name: str, *, skip_key: bool) -> StructField | None:
        schema = self.schemas.get(source)
        if schema is None or (skip_key and source != "customer" and name.lower() == "customer_id"):
            return None
        return next((f for f in schema.fields if f.name.lower() == name.lower()), None)

    def _known(self, sources: list[str]) -> str:
        parts = []
        for source in sources:
            table = CUSTOMER_SOURCES[source]
            if source in self.schemas:
                parts.append(f"{table} has {', '.join(self.schemas[source].fieldNames())}")
            else:
                parts.append(f"{table} does not exist yet (run `c360 {SOURCE_STAGES[source]}`)")
        return "; ".join(parts)

    def _group_field(self, name: str, where: str) -> ResolvedField:
        schema = self.schemas.get("group")
        if schema is None:
            raise ConfigError(f"{where}: {tables.GROUPS} does not exist yet (run `c360 {SOURCE_STAGES['group']}`)")
        column = next((f for f in schema.fields if f.name.lower() == name.lower()), None)
        if column is not None and column.name != GROUP_TRAITS_COLUMN:
            return self._bind("group", column.name, column.dataType, where)
        traits = next((f for f in schema.fields if f.name == GROUP_TRAITS_COLUMN), None)
        if traits is None or not isinstance(traits.dataType, MapType):
            raise ConfigError(f"{where}: 'group.{name}' is not a column of {tables.GROUPS} ({', '.join(schema.fieldNames())})")
        # Any other name is a custom group trait: null for groups that do not have it.
        return self._bind("group", name, traits.dataType.valueType, where, custom_trait=True)

    def _bind(self, source: str, column: str, data_type: DataType, where: str, *, custom_trait: bool = False) -> ResolvedField:
        if not isinstance(data_type, (NumericType, StringType, BooleanType, DateType, TimestampType,
                                      TimestampNTZType, ArrayType)):
            raise ConfigError(f"{where}: {source}.{column} is a {data_type.simpleString()}, which conditions cannot compare")
        alias = self.aliases.setdefault((source, column), f"_f{len(self.aliases)}")
        return ResolvedField(source, column, data_type, alias, custom_trait)


# ----------------------------------------------------------------------------------------------
# Conditions -> Spark columns
# ----------------------------------------------------------------------------------------------


COMPARE = {
    EQUALS: operator.eq, NOT_EQUALS: operator.ne, GT: operator.gt,
    GTE: operator.ge, LT: operator.lt, LTE: operator.le,
}


def _value_kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (RelativeDate, dt.date)):
        return "date"
    return "text"


def _type_kind(data_type: DataType) -> str | None:
    if isinstance(data_type, BooleanType):
        return "boolean"
    if isinstance(data_type, NumericType):
        return "number"
    return "text" if isinstance(data_type, StringType) else None


def _comparable(column: Column, data_type: DataType, values: tuple, run_date: dt.date, where: str) -> tuple[Column, list]:
    """The column and the literal values, converted so they compare the way the rule means.

    Numbers against text compare numerically (text that is no number never matches); dates against
    timestamps compare by the timestamp's UTC date; ISO text against a date column is a date.
    """
    kinds = {_value_kind(v) for v in values}
    if len(kinds) > 1:
        raise ConfigError(f"{where}: the values mix {' and '.join(sorted(kinds))}")
    kind = kinds.pop()
    is_time = isinstance(data_type, (DateType, TimestampType, TimestampNTZType))
    if kind == "text" and is_time:
        try:
            values = tuple(dt.date.fromisoformat(v) for v in values)
        except ValueError:
            raise ConfigError(f"{where}: a date field needs YYYY-MM-DD dates; got {', '.join(map(repr, values))}") from None
        kind = "date"
    if kind == "date":
        if any(isinstance(v, dt.datetime) for v in values):
            raise ConfigError(f"{where}: give dates (YYYY-MM-DD), not date-times")
        dates = [v.on(run_date) if isinstance(v, RelativeDate) else v for v in values]
        if is_time:
            return (column if isinstance(data_type, DateType) else F.to_date(column)), dates
        if isinstance(data_type, StringType):
            return column.try_cast("date"), dates
    elif kind == "number":
        if isinstance(data_type, NumericType):
            return column, list(values)
        if isinstance(data_type, StringType):
            return column.try_cast("double"), list(values)
    elif kind == "boolean" and isinstance(data_type, BooleanType):
        return column, list(values)
    elif kind == "text" and isinstance(data_type, StringType):
        return column, list(values)
    raise ConfigError(f"{where}: a {data_type.simpleString()} field cannot be compared with {kind} value(s) {', '.join(map(repr, values))}")


def rule_column(rule: Rule, resolved: ResolvedField, run_date: dt.date, where: str) -> Column:
    """One rule as a Column (null when the field is null: not a member, `notEquals` included)."""
    column = F.col(resolved.alias)
    data_type = resolved.data_type
    if rule.op == NOT_SET:
        return column.isNull()
    if rule.op == SET:
        return column.isNotNull()
    if rule.op == CONTAINS:
        element = data_type.elementType if isinstance(data_type, ArrayType) else None
        if element is not None and _value_kind(rule.value) == _type_kind(element):
            return F.array_contains(column, F.lit(rule.value).cast(element))
        if isinstance(data_type, StringType) and isinstance(rule.value, str):
            return column.contains(rule.value)
        raise ConfigError(
            f"{where}: `contains` needs a text field and text, or a list field and a value of its elements' type; "
            f"{resolved.label} is {data_type.simpleString()}, the value {rule.value!r}"
        )
    if isinstance(data_type, ArrayType):
        raise ConfigError(f"{where}: {resolved.label} is a list: use contains, set or notSet")
    # equals / notEquals take a list (any / none of them); the other operators one value
    listed = isinstance(rule.value, tuple)
    values = rule.value if listed else (rule.value,)
    target, literals = _comparable(column, data_type, values, run_date, where)
    if listed:
        matched = target.isin(*literals)
        return matched if rule.op == EQUALS else ~matched
    return COMPARE[rule.op](target, F.lit(literals[0]))


def condition_column(node: Node, bind, run_date: dt.date) -> Column:
    """`all` is AND, `any` is OR; a comparison on a null field is null, counted as not a member."""
    if isinstance(node, Combination):
        parts = [condition_column(item, bind, run_date) for item in node.items]
        return functools.reduce(operator.and_ if node.mode == "all" else operator.or_, parts)
    resolved, where = bind(node)
    return rule_column(node, resolved, run_date, where)


def parsed_condition(index: int, definition: SegmentDefinition, file: str) -> Node:
    """The condition tree (checked at config load already, but not for settings built in code)."""
    try:
        return definition.parsed_condition(f"segments.definitions[{index}].condition")
    except ValueError as exc:
        raise ConfigError(f"{file}: segment '{definition.name}': {exc}") from None


def compile_segment(index: int, definition: SegmentDefinition, catalog: FieldCatalog, run_date: dt.date) -> CompiledSegment:
    """Bind every field and value to the input schemas; ConfigError names the segment and key."""
    node = parsed_condition(index, definition, catalog.file)
    fields: dict[str, ResolvedField] = {}

    def bind(rule: Rule) -> tuple[ResolvedField, str]:
        resolved = catalog.resolve(rule, definition)
        fields[resolved.alias] = resolved
        return resolved, f"{catalog.file}: segment '{definition.name}': '{rule.key}'"

    condition = F.coalesce(condition_column(node, bind, run_date), F.lit(False))
    return CompiledSegment(definition, condition, tuple(fields.values()))


def compile_segments(settings: SegmentSettings, catalog: FieldCatalog, run_date: dt.date) -> list[CompiledSegment]:
    return [compile_segment(i, d, catalog, run_date) for i, d in enumerate(settings.definitions)]

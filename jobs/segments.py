"""`c360 segments [preview NAME]`: audiences, membership stints, daily changes, Resonate exports.

A segment (config `segments.definitions`, jobs/segment_settings.py) is a condition over a level's
members: customers, groups (households, accounts) or identifiers of one type (identifier:email).
Fields come from silver/customers, gold/traits, gold/rfm, gold/groups (`group.<attr>`) and, at
identifier level, the identifier itself. A customer in several groups qualifies when any of its
groups satisfies the condition (as in jobs.groups.with_group_attributes); a group qualifies when its own
attributes and at least one member's satisfy it together; an identifier is judged with its
customer's fields.

Each run for run date D (docs/segments.md):
1. checks every field and value against the input schemas (ConfigError before anything is written);
2. refuses D earlier than the last applied run (gold/segment_runs) unless --full, which rewinds;
   re-running D first rewinds D's own effects, so a re-run yields the same tables and files;
3. writes gold/segment_changes for D (members who entered / left since the open stints), then MERGEs
   them into gold/segment_membership: a new stint per entry, exited_on set on exit;
4. for exported segments writes the HEMSHA2 differential file exports/<segment>/<D>.<psv|csv> from
   gold/segment_exports (the log of what each export added and removed);
5. records gold/segment_runs, which marks D as applied.
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import operator
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    LongType,
    MapType,
    NumericType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from jobs import tables
from jobs.context import JobContext, StageResult
from jobs.errors import ConfigError, InputError
from jobs.identifiers import EMAIL, normalize_email, sha256_email
from jobs.segment_settings import (
    CONTAINS_OP,
    CUSTOMER_LEVEL,
    GROUP_LEVEL,
    LIST_OPS,
    Combination,
    Node,
    RelativeDate,
    Rule,
    SegmentDefinition,
    SegmentExport,
    SegmentSettings,
    identifier_type_of,
    rules_of,
)

HELP = "materialize segments: membership stints, daily changes, Resonate exports (`segments preview NAME`: count and sample, writes nothing)"
NEEDS_SPARK = True

PREVIEW = "preview"
ADD = "add"
REMOVE = "remove"
HEMSHA2 = "HEMSHA2"
EXPORT_COLUMNS = ("ID Type", "ID", "Add", "Remove")
# A usable email for export: something@domain.tld after normalization (trim, lower case).
USABLE_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

# Sources of fields: customer-keyed tables, then groups and the identifier itself.
CUSTOMER_SOURCES = {"customer": tables.SILVER_CUSTOMERS, "traits": tables.TRAITS, "rfm": tables.RFM}
SOURCE_STAGES = {"customer": "stitch", "traits": "traits", "rfm": "rfm", "group": "activities",
                 "identifier": "stitch"}
GROUP_TRAITS_COLUMN = "custom_traits"
IDENTIFIER_COLUMNS = {"identifier_type": StringType(), "identifier_value": StringType()}
# Internal columns of an evaluation frame: the member, and the customer / group it is judged by.
MEMBER = "_member_id"
CUSTOMER = "_customer_id"
GROUP = "_group_id"

MEMBERSHIP_SCHEMA = StructType([
    StructField("segment", StringType()),
    StructField("level", StringType()),
    StructField("member_id", StringType()),
    StructField("entered_on", DateType()),
    StructField("exited_on", DateType()),       # null while a member
])
CHANGES_SCHEMA = StructType([
    StructField("run_date", DateType()),
    StructField("segment", StringType()),
    StructField("level", StringType()),
    StructField("member_id", StringType()),
    StructField("change", StringType()),        # add | remove
])
EXPORT_LOG_SCHEMA = StructType([
    StructField("run_date", DateType()),
    StructField("segment", StringType()),
    StructField("label", StringType()),         # <Group>=<Segment>
    StructField("id_type", StringType()),
    StructField("id", StringType()),
    StructField("change", StringType()),
])
RUNS_SCHEMA = StructType([
    StructField("run_date", DateType()),
    StructField("segment", StringType()),
    StructField("level", StringType()),
    StructField("members", LongType()),
    StructField("adds", LongType()),
    StructField("removes", LongType()),
    StructField("export_file", StringType()),
    StructField("export_adds", LongType()),
    StructField("export_removes", LongType()),
    StructField("skipped_no_consent", LongType()),
    StructField("skipped_no_email", LongType()),
])
STATE_TABLES = {
    tables.SEGMENT_MEMBERSHIP: MEMBERSHIP_SCHEMA,
    tables.SEGMENT_CHANGES: CHANGES_SCHEMA,
    tables.SEGMENT_EXPORTS: EXPORT_LOG_SCHEMA,
    tables.SEGMENT_RUNS: RUNS_SCHEMA,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=[PREVIEW],
                        help="preview NAME: print the member count and a sample; writes nothing")
    parser.add_argument("name", nargs="?", metavar="NAME", help="the segment to preview")
    parser.add_argument("--rows", type=int, default=None,
                        help="preview: members to print (default: segments.preview_rows)")
    parser.add_argument("--full", action="store_true",
                        help="accept a run date earlier than the last applied one: rewind segment history to it")


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
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt,
    "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
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
    column = F.col(resolved.alias)
    data_type = resolved.data_type
    if rule.op == "is_null":
        return column.isNull()
    if rule.op == "not_null":
        return column.isNotNull()
    if rule.op == CONTAINS_OP:
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
        raise ConfigError(f"{where}: {resolved.label} is a list: use contains, is_null or not_null")
    values = rule.value if rule.op in LIST_OPS else (rule.value,)
    target, literals = _comparable(column, data_type, values, run_date, where)
    if rule.op == "in":
        return target.isin(*literals)
    if rule.op == "not_in":
        return ~target.isin(*literals)
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


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def level_base(inputs: Inputs, level: str) -> DataFrame:
    """One row per member (group level: per group × member customer) with its customer / group key."""
    if level == CUSTOMER_LEVEL:
        return inputs.customers.select(F.col("customer_id").alias(MEMBER), F.col("customer_id").alias(CUSTOMER))
    if level == GROUP_LEVEL:
        members = inputs.group_members.select(F.col("group_id").alias(GROUP), F.col("customer_id").alias(CUSTOMER))
        return (
            inputs.groups.select(F.col("group_id").alias(MEMBER), F.col("group_id").alias(GROUP))
            .join(members, on=GROUP, how="left")
        )
    identifiers = inputs.identity_map.filter(F.col("identifier_type") == identifier_type_of(level))
    return identifiers.select(F.col("identifier_value").alias(MEMBER), F.col("customer_id").alias(CUSTOMER),
                              "identifier_type", "identifier_value")


def evaluation_frame(inputs: Inputs, level: str, fields: list[ResolvedField]) -> DataFrame:
    """The level's members with every field the level's segments use, as columns named by alias."""
    frame = level_base(inputs, level)
    for f in fields:
        if f.source == "identifier":
            frame = frame.withColumn(f.alias, F.col(f.column))
    for source in CUSTOMER_SOURCES:
        wanted = {f.alias: f for f in fields if f.source == source}
        if wanted:
            table = inputs.customer_source(source).select(
                F.col("customer_id").alias("_key"), *[F.col(f.column).alias(a) for a, f in wanted.items()]
            )
            frame = frame.join(table, frame[CUSTOMER] == table["_key"], how="left").drop("_key")
    group_fields = {f.alias: f for f in fields if f.source == "group"}
    if group_fields:
        if level != GROUP_LEVEL:
            # one row per (member, group of its customer): any of its groups may satisfy the rule
            memberships = inputs.group_members.select(F.col("customer_id").alias(CUSTOMER), F.col("group_id").alias(GROUP))
            frame = frame.join(memberships, on=CUSTOMER, how="left")
        attributes = inputs.groups.select(F.col("group_id").alias(GROUP), *[
            (F.col(GROUP_TRAITS_COLUMN)[f.column] if f.custom_trait else F.col(f.column)).alias(a)
            for a, f in group_fields.items()
        ])
        frame = frame.join(attributes, on=GROUP, how="left")
    return frame


def current_members(inputs: Inputs, segments: list[CompiledSegment]) -> DataFrame:
    """(segment, level, member_id) of every segment, one pass over each level's members."""
    parts = []
    for level in dict.fromkeys(s.level for s in segments):
        of_level = [s for s in segments if s.level == level]
        fields = list({f.alias: f for s in of_level for f in s.fields}.values())
        hits = F.array(*[F.when(s.condition, F.lit(s.name)) for s in of_level])
        parts.append(
            evaluation_frame(inputs, level, fields)
            .filter(F.col(MEMBER).isNotNull())
            .select(F.explode(F.filter(hits, lambda name: name.isNotNull())).alias("segment"),
                    F.lit(level).alias("level"), F.col(MEMBER).alias("member_id"))
        )
    # a customer in two groups can qualify twice
    return functools.reduce(DataFrame.unionByName, parts).distinct()


def set_changes(now: DataFrame, before: DataFrame, keys: list[str], run_date: dt.date) -> DataFrame:
    """(run_date, *keys, change): `add` for keys only in `now`, `remove` for keys only in `before`."""
    change = F.when(F.col("_before").isNull(), F.lit(ADD)).when(F.col("_now").isNull(), F.lit(REMOVE))
    return (
        now.select(*keys, F.lit(True).alias("_now"))
        .join(before.select(*keys, F.lit(True).alias("_before")), on=keys, how="full_outer")
        .select(F.lit(run_date).alias("run_date"), *keys, change.alias("change"))
        .filter(F.col("change").isNotNull())
    )


def membership_changes(current: DataFrame, open_stints: DataFrame, run_date: dt.date) -> DataFrame:
    """add: a member now without an open stint; remove: an open stint of someone no longer a member."""
    return set_changes(current, open_stints, ["segment", "level", "member_id"], run_date)


# ----------------------------------------------------------------------------------------------
# State tables
# ----------------------------------------------------------------------------------------------


def last_applied(spark: SparkSession, wh: tables.Warehouse) -> dt.date | None:
    return wh.read(spark, tables.SEGMENT_RUNS).agg(F.max("run_date")).first()[0]


def rewind(spark: SparkSession, wh: tables.Warehouse, run_date: dt.date) -> None:
    """Undo membership effects of runs on or after `run_date` (the log tables are replaced on write)."""
    membership = wh.delta(spark, tables.SEGMENT_MEMBERSHIP)
    membership.delete(F.col("entered_on") >= F.lit(run_date))
    membership.update(F.col("exited_on") >= F.lit(run_date), {"exited_on": F.lit(None).cast(DateType())})


def replace_from(wh: tables.Warehouse, df: DataFrame, table: str, run_date: dt.date) -> None:
    """Replace every row of `table` dated `run_date` or later with `df` (all dated `run_date`)."""
    schema = STATE_TABLES[table]
    wh.replace_where(df.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields]), table,
                     f"run_date >= '{run_date.isoformat()}'")


def apply_changes(spark: SparkSession, wh: tables.Warehouse, changes: DataFrame, run_date: dt.date) -> None:
    """MERGE: a remove closes the member's open stint; an add opens a new stint."""
    on = (
        "t.segment = s.segment AND t.level = s.level AND t.member_id = s.member_id "
        f"AND t.exited_on IS NULL AND s.change = '{REMOVE}'"
    )
    (
        wh.delta(spark, tables.SEGMENT_MEMBERSHIP).alias("t")
        .merge(changes.alias("s"), on)
        .whenMatchedUpdate(set={"exited_on": F.lit(run_date)})
        .whenNotMatchedInsert(condition=f"s.change = '{ADD}'", values={
            "segment": "s.segment", "level": "s.level", "member_id": "s.member_id",
            "entered_on": F.lit(run_date), "exited_on": F.lit(None).cast(DateType()),
        })
        .execute()
    )


# ----------------------------------------------------------------------------------------------
# Exports (interface §6)
# ----------------------------------------------------------------------------------------------


def consent_given(consent: Column, values: list[str]) -> Column:
    return F.coalesce(F.lower(F.trim(consent)).isin(*[v.strip().lower() for v in values]), F.lit(False))


def export_candidates(members: DataFrame, inputs: Inputs, consent_values: list[str]) -> DataFrame:
    """(segment, email, consented) per member of an exported segment: a customer's own email, or
    the identifier itself at identifier:email level (with its customer's consent)."""
    customers = inputs.customers.select("customer_id", F.col("email").alias("_customer_email"), "consent")
    by_customer = members.filter(F.col("level") == CUSTOMER_LEVEL).withColumn("customer_id", F.col("member_id"))
    by_email = members.filter(F.col("level") != CUSTOMER_LEVEL)
    if inputs.identity_map is not None:
        owners = inputs.identity_map.filter(F.col("identifier_type") == EMAIL).select(
            F.col("identifier_value").alias("member_id"), "customer_id")
        by_email = by_email.join(owners, on="member_id", how="left")
    else:
        by_email = by_email.withColumn("customer_id", F.lit(None).cast(StringType()))
    return (
        by_customer.unionByName(by_email)
        .join(customers, on="customer_id", how="left")
        .select(
            "segment",
            normalize_email(F.when(F.col("level") == CUSTOMER_LEVEL, F.col("_customer_email"))
                            .otherwise(F.col("member_id"))).alias("email"),
            consent_given(F.col("consent"), consent_values).alias("consented"),
        )
    )


def previously_exported(log: DataFrame, run_date: dt.date) -> DataFrame:
    """(segment, label, id) the receiver holds after every export before `run_date`."""
    return (
        log.filter(F.col("run_date") < F.lit(run_date))
        .groupBy("segment", "label", "id_type", "id")
        .agg(F.max_by("change", "run_date").alias("last_change"))
        .filter(F.col("last_change") == ADD)
        .drop("last_change")
    )


def export_changes(eligible: DataFrame, exported_before: DataFrame, labels: DataFrame, run_date: dt.date) -> DataFrame:
    """Adds and removes that take the receiver from what it holds to `eligible` (segment, id).

    Only the current label's history counts: a renamed group or segment starts with the full list.
    """
    now = eligible.join(labels, on="segment", how="inner")
    before = exported_before.join(labels, on=["segment", "label"], how="left_semi")
    return set_changes(now, before, ["segment", "label", "id_type", "id"], run_date)


def export_rows(log_of_segment: DataFrame) -> DataFrame:
    """The file's rows, adds then removes, each by id (a deterministic order, byte-exact re-runs)."""
    label_if = lambda change: F.when(F.col("change") == change, F.col("label"))  # noqa: E731
    return (
        log_of_segment.coalesce(1)
        .sortWithinPartitions("change", "id")
        .select(F.col("id_type").alias(EXPORT_COLUMNS[0]), F.col("id").alias(EXPORT_COLUMNS[1]),
                label_if(ADD).alias(EXPORT_COLUMNS[2]), label_if(REMOVE).alias(EXPORT_COLUMNS[3]))
    )


def write_single_file(df: DataFrame, path: str, delimiter: str) -> None:
    """Write `df` (one partition) as one delimited file with a header at `path`, on any Hadoop FS.

    Only for exports: their size is bounded by the segment's size, and the receiver wants one file.
    """
    spark = df.sparkSession
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(path)
    staging = jvm.org.apache.hadoop.fs.Path(target.getParent(), f"_{target.getName()}.tmp")
    df.write.mode("overwrite").option("header", True).option("sep", delimiter).csv(str(staging.toString()))
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    parts = [s.getPath() for s in fs.listStatus(staging) if s.getPath().getName().startswith("part-")]
    if len(parts) != 1:
        raise RuntimeError(f"expected one part file in {staging.toString()}, found {len(parts)}")
    fs.delete(target, False)
    fs.rename(parts[0], target)
    # the local file system keeps a .crc beside each file; the receiver wants only the export
    fs.delete(jvm.org.apache.hadoop.fs.Path(target.getParent(), f".{target.getName()}.crc"), False)
    fs.delete(staging, True)


def export_path(wh: tables.Warehouse, name: str, export: SegmentExport, run_date: dt.date) -> str:
    return wh.path(f"{tables.EXPORTS}/{name}/{run_date.isoformat()}.{export.extension}")


def run_exports(spark: SparkSession, wh: tables.Warehouse, inputs: Inputs, settings: SegmentSettings,
                run_date: dt.date) -> tuple[dict[str, str], DataFrame]:
    """Log today's adds/removes per exported segment and write its file.

    Returns the file per segment and (segment, metric, n) rows counting members skipped for want
    of consent or of a usable email.
    """
    exported = [d for d in settings.definitions if d.export.enabled]
    members = wh.read(spark, tables.SEGMENT_MEMBERSHIP).filter(
        F.col("exited_on").isNull() & F.col("segment").isin(*[d.name for d in exported]))
    candidates = export_candidates(members, inputs, settings.consent_values).withColumn(
        "usable", F.coalesce(F.col("email").rlike(USABLE_EMAIL), F.lit(False)))
    eligible = candidates.filter(F.col("consented") & F.col("usable")).select(
        "segment", F.lit(HEMSHA2).alias("id_type"), sha256_email(F.col("email")).alias("id")).distinct()
    labels = spark.createDataFrame([(d.name, d.export.label) for d in exported], "segment string, label string")
    changes = export_changes(eligible, previously_exported(wh.read(spark, tables.SEGMENT_EXPORTS), run_date),
                             labels, run_date)
    replace_from(wh, changes, tables.SEGMENT_EXPORTS, run_date)
    todays = wh.read(spark, tables.SEGMENT_EXPORTS).filter(F.col("run_date") == F.lit(run_date))
    files = {}
    for definition in exported:
        files[definition.name] = export_path(wh, definition.name, definition.export, run_date)
        write_single_file(export_rows(todays.filter(F.col("segment") == definition.name)), files[definition.name],
                          definition.export.delimiter)
    skipped = candidates.groupBy("segment").agg(
        F.count_if(~F.col("consented")).alias("skipped_no_consent"),
        F.count_if(F.col("consented") & ~F.col("usable")).alias("skipped_no_email"),
    ).unpivot("segment", ["skipped_no_consent", "skipped_no_email"], "metric", "n")
    return files, skipped


# ----------------------------------------------------------------------------------------------
# Stage
# ----------------------------------------------------------------------------------------------


def load_inputs(spark: SparkSession, wh: tables.Warehouse, settings: SegmentSettings, names: list[str], file: str) -> Inputs:
    """Read what the named segments need; a missing required table is an InputError naming it."""
    indexed = [(i, d) for i, d in enumerate(settings.definitions) if d.name in names]
    rules = [r for i, d in indexed for r in rules_of(parsed_condition(i, d, file))]
    levels = {d.level for _, d in indexed}
    needs_groups = GROUP_LEVEL in levels or any(r.source == "group" for r in rules)
    needs_identity = any(identifier_type_of(level) for level in levels)

    def optional(table: str) -> DataFrame | None:
        # traits and RFM are read when they exist; a rule naming a missing one says which stage to run
        return wh.read(spark, table) if wh.exists(spark, table) else None

    def needed(condition: bool, table: str, made_by: str) -> DataFrame | None:
        return wh.read_required(spark, table, made_by=made_by) if condition else None

    return Inputs(
        customers=wh.read_required(spark, tables.SILVER_CUSTOMERS, made_by="stitch"),
        traits=optional(tables.TRAITS),
        rfm=optional(tables.RFM),
        groups=needed(needs_groups, tables.GROUPS, "activities"),
        group_members=needed(needs_groups, tables.GROUP_MEMBERS, "activities"),
        identity_map=needed(needs_identity, tables.IDENTITY_MAP, "stitch"),
    )


def run_counts(spark: SparkSession, wh: tables.Warehouse, names: list[str], run_date: dt.date,
               extra: DataFrame | None) -> dict[tuple[str, str], int]:
    """{(segment, metric): n} for members, adds, removes, export_adds, export_removes (+ extra rows).

    One small query: a handful of rows per segment.
    """
    today = F.col("run_date") == F.lit(run_date)
    count = F.count(F.lit(1)).alias("n")
    parts = [
        wh.read(spark, tables.SEGMENT_MEMBERSHIP).filter(F.col("exited_on").isNull() & F.col("segment").isin(*names))
        .groupBy("segment", F.lit("members").alias("metric")).agg(count),
        wh.read(spark, tables.SEGMENT_CHANGES).filter(today)
        .groupBy("segment", F.concat("change", F.lit("s")).alias("metric")).agg(count),
        wh.read(spark, tables.SEGMENT_EXPORTS).filter(today)
        .groupBy("segment", F.concat(F.lit("export_"), "change", F.lit("s")).alias("metric")).agg(count),
    ]
    if extra is not None:
        parts.append(extra.select("segment", "metric", F.col("n").cast(LongType()).alias("n")))
    rows = functools.reduce(DataFrame.unionByName, parts).collect()
    return {(r["segment"], r["metric"]): r["n"] for r in rows}


def record_run(spark: SparkSession, wh: tables.Warehouse, settings: SegmentSettings, run_date: dt.date,
               files: dict[str, str], skipped: DataFrame | None) -> list[dict]:
    """gold/segment_runs for `run_date` (written last: it marks the date as applied)."""
    counts = run_counts(spark, wh, [d.name for d in settings.definitions], run_date, skipped)
    export_metrics = RUNS_SCHEMA.fieldNames()[7:]
    rows = []
    for d in settings.definitions:
        row = {"run_date": run_date, "segment": d.name, "level": d.level, "export_file": files.get(d.name)}
        row.update({m: counts.get((d.name, m), 0) for m in ("members", "adds", "removes")})
        row.update({m: counts.get((d.name, m), 0) if d.name in files else None for m in export_metrics})
        rows.append(row)
    replace_from(wh, spark.createDataFrame(rows, RUNS_SCHEMA), tables.SEGMENT_RUNS, run_date)
    return rows


def materialize(ctx: JobContext, full: bool) -> StageResult:
    spark, wh, settings, run_date = ctx.spark, ctx.warehouse, ctx.config.segments, ctx.run_date
    if not settings.definitions:
        return StageResult(metrics={"segments": 0}, notes=["no segments.definitions configured"])
    for table, schema in STATE_TABLES.items():
        wh.ensure(spark, table, schema)
    last = last_applied(spark, wh)
    if last is not None and run_date < last and not full:
        raise InputError(
            f"run date {run_date} is earlier than the last applied segments run {last} ({wh.path(tables.SEGMENT_RUNS)}): "
            f"segment history is applied in date order; run {last} or later, or pass --full to rewind it to {run_date}"
        )
    inputs = load_inputs(spark, wh, settings, [d.name for d in settings.definitions], ctx.config.source)
    segments = compile_segments(settings, FieldCatalog.of(inputs, ctx.config.source), run_date)
    if last is not None and run_date <= last:
        rewind(spark, wh, run_date)
    names = [s.name for s in segments]
    open_stints = wh.read(spark, tables.SEGMENT_MEMBERSHIP).filter(F.col("exited_on").isNull() & F.col("segment").isin(*names))
    replace_from(wh, membership_changes(current_members(inputs, segments), open_stints, run_date),
                 tables.SEGMENT_CHANGES, run_date)
    todays_changes = wh.read(spark, tables.SEGMENT_CHANGES).filter(F.col("run_date") == F.lit(run_date))
    apply_changes(spark, wh, todays_changes, run_date)
    if any(s.definition.export.enabled for s in segments):
        files, skipped = run_exports(spark, wh, inputs, settings, run_date)
    else:
        # still clear the export log from this date on (a rewound run may have exported)
        replace_from(wh, spark.createDataFrame([], EXPORT_LOG_SCHEMA), tables.SEGMENT_EXPORTS, run_date)
        files, skipped = {}, None
    rows = record_run(spark, wh, settings, run_date, files, skipped)
    return summarize(rows)


def summarize(rows: list[dict]) -> StageResult:
    total = lambda key: sum(r[key] or 0 for r in rows)  # noqa: E731
    metrics = {"segments": len(rows), "members": total("members"), "adds": total("adds"), "removes": total("removes"),
               "export_files": sum(1 for r in rows if r["export_file"]), "export_adds": total("export_adds"),
               "export_removes": total("export_removes"), "skipped_no_consent": total("skipped_no_consent"),
               "skipped_no_email": total("skipped_no_email")}
    notes = []
    for r in rows:
        line = f"{r['segment']} ({r['level']}): {r['members']:,} members, +{r['adds']:,} -{r['removes']:,}"
        if r["export_file"]:
            line += (f"; export {r['export_file']}: +{r['export_adds']:,} -{r['export_removes']:,} "
                     f"(skipped: {r['skipped_no_consent']:,} without consent, {r['skipped_no_email']:,} without a usable email)")
        notes.append(line)
    return StageResult(metrics=metrics, notes=notes)


def preview(ctx: JobContext, name: str | None, rows: int | None) -> None:
    """Print the segment's member count and a sample as of the run date; writes nothing."""
    settings = ctx.config.segments
    found = settings.find(name) if name else None
    if found is None:
        known = ", ".join(d.name for d in settings.definitions) or "none"
        raise ConfigError(f"{ctx.config.source}: no segment named {name!r} to preview (configured: {known})"
                          if name else "`c360 segments preview` needs the NAME of a segment")
    index, definition = found
    spark, wh = ctx.spark, ctx.warehouse
    inputs = load_inputs(spark, wh, settings, [definition.name], ctx.config.source)
    segment = compile_segment(index, definition, FieldCatalog.of(inputs, ctx.config.source), ctx.run_date)
    matching = evaluation_frame(inputs, definition.level, list(segment.fields)).filter(
        F.col(MEMBER).isNotNull() & segment.condition)
    count = matching.select(MEMBER).distinct().count()
    shown = [MEMBER, *[f.alias for f in segment.fields]]
    limit = rows or settings.preview_rows
    sample = matching.select(*shown).distinct().orderBy(*shown).limit(limit).collect()  # at most `limit` rows
    print(format_preview(definition, ctx.run_date, count, [f.label for f in segment.fields], sample))


def format_preview(definition: SegmentDefinition, run_date: dt.date, count: int, labels: list[str], sample) -> str:
    header = ["member_id", *labels]
    cells = [["null" if v is None else str(v) for v in row] for row in sample]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = lambda values: "  " + "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    out = [f"segment {definition.name} ({definition.level}) as of {run_date}: {count:,} members"]
    if cells:
        out += [line(header), *(line(c) for c in cells),
                f"  (first {len(cells)} of {count:,} by member_id; nothing was written)"]
    else:
        out.append("  (no members; nothing was written)")
    return "\n".join(out)


def run(ctx: JobContext, args: argparse.Namespace) -> StageResult | None:
    if getattr(args, "action", None) == PREVIEW:
        return preview(ctx, getattr(args, "name", None), getattr(args, "rows", None))
    if getattr(args, "name", None):
        raise ConfigError(f"unexpected {args.name!r}: use `c360 segments` or `c360 segments preview NAME`")
    return materialize(ctx, full=getattr(args, "full", False))

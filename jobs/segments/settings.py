"""The `segments:` config section: audience definitions, their condition language, their exports.

Kept out of jobs/core/config.py (which imports it) so the segments stage owns its schema; this module
must not import jobs.core.config or pyspark. Validated at load by `jobs.core.config.build_section`: an unknown
key or a bad value is a ConfigError naming the file, the segment and the dotted key. Whether a field
exists, and whether a value fits its column's type, is known only once the input tables are read:
jobs.segments.conditions checks that at the start of a run, before anything is written (docs/segments.md).

Condition language (structured, so no user text ever reaches Spark SQL):

    condition:                       # a node is one rule, or `all:` / `any:` over a list of nodes
      all:
        - {field: traits.last_order_date, op: lt, value: {unit: month, offset: -1}}
        - {field: traits.total_orders, op: gte, value: 10}
        - any:
            - {field: group.income_band, op: equals, value: [high, very high]}
            - {field: state, op: equals, value: CA}

Fields: `<column>` of silver/customers, gold/traits or gold/rfm (qualify as customer.x, traits.x,
rfm.x when the name is in more than one), `group.<attribute>` (gold/groups column or custom trait),
`identifier.identifier_value` at identifier level. Ops: the lens's names (jobs.segments.operators:
equals, notEquals, gt, gte, lt, lte, set, notSet, contains), the older eq, ne, in, not_in, not_null,
is_null as synonyms. Values: text, numbers, booleans, ISO dates, lists (equals / notEquals, in /
not_in) and run-date relative dates (lens.calendar.RelativeDate: `{unit: U, offset: K}`, also
`{days_before_run_date: N}` / `{month_start: K}`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import string
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from jobs.activities.settings import IDENTIFIER_TYPES
from jobs.segments.operators import (
    DATE_COMPARISONS,
    EQUALS,
    GTE,
    LIST,
    LT,
    NONE,
    ONE,
    canonical,
    operators_help,
    value_shape,
)
from lens.calendar import RelativeDate, parse_relative_date

CUSTOMER_LEVEL = "customer"
GROUP_LEVEL = "group"
IDENTIFIER_LEVEL_PREFIX = "identifier:"
LEVELS_HELP = "customer, group or identifier:<type> (type: " + ", ".join(IDENTIFIER_TYPES) + ")"

COMBINATORS = ("all", "any")
RULE_KEYS = ("field", "op", "value")

# Field prefixes: which input a qualified field reads. `group.` takes any attribute name.
FIELD_SOURCES = ("customer", "traits", "rfm", "group", "identifier")
FIELD_NAME = re.compile(r"^(?:(customer|traits|rfm|identifier)\.)?([A-Za-z_][A-Za-z0-9_]*)$|^group\.(\S.*)$")

SEGMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
EXPORT_DELIMITERS = ("|", ",")
# Resonate limits group names to 280 characters; `=` separates group from segment in the file.
MAX_EXPORT_GROUP_LENGTH = 280
# A group segment exports its members' emails (a household's people).
EXPORTABLE_LEVELS = (CUSTOMER_LEVEL, GROUP_LEVEL, f"{IDENTIFIER_LEVEL_PREFIX}email")
DEFAULT_CONSENT_VALUES = ("yes", "true", "y", "1")
# export.file_name: a file's path under exports/, its extension added. Fields: the segment's name,
# the export group (each run of FILE_NAME_UNSAFE characters becomes one '_'), the run date as
# YYYY-MM-DD or YYYYMMDD, and the sequence number of the segment's file (1 for its first file sent).
FILE_NAME_FIELDS = ("segment", "group", "date", "yyyymmdd", "sequence")
DEFAULT_FILE_NAME = "{segment}/{date}"
FILE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# The run date and sequence a file name template is tried with at config load.
SAMPLE_RUN_DATE, SAMPLE_SEQUENCE = dt.date(2026, 1, 31), 1


# ----------------------------------------------------------------------------------------------
# The parsed condition tree
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """`field op value`; `op` is the canonical operator (jobs.segments.operators), `value` a tuple for a
    list; `key` is the dotted config key and `written` the operator as written, for errors."""

    field: str
    op: str
    value: Any
    key: str = dataclasses.field(default="", compare=False)
    written: str = dataclasses.field(default="", compare=False)

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
    name, written = raw["field"], raw["op"]
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise ValueError(
            f"'{key}.field' must be a column name, optionally qualified as "
            f"{', '.join(f'{s}.<name>' for s in FIELD_SOURCES)}; got {name!r}"
        )
    op = canonical(written) if isinstance(written, str) else None
    if op is None:
        raise ValueError(f"'{key}.op' must be one of {operators_help()}; got {written!r}")
    shape = value_shape(written)
    has_value = "value" in raw
    value = raw.get("value")
    if shape == NONE:
        if has_value:
            raise ValueError(f"'{key}.value' must be left out: `{written}` takes no value")
        return Rule(name, op, None, key, written)
    if not has_value or value is None:
        raise ValueError(f"'{key}.value' is required for `{written}` (use notSet / set for missing values)")
    if shape == LIST or (shape != ONE and isinstance(value, list)):
        if not isinstance(value, list) or not value:
            raise ValueError(f"'{key}.value' must be a non-empty list for `{written}`")
        return Rule(name, op, tuple(_parse_scalar(v, f"{key}.value[{i}]", written, in_list=True)
                                    for i, v in enumerate(value)), key, written)
    return Rule(name, op, _parse_scalar(value, f"{key}.value", written, in_list=False), key, written)


def _parse_scalar(value: Any, key: str, written: str, *, in_list: bool) -> Any:
    if isinstance(value, dict):
        if in_list or canonical(written) not in DATE_COMPARISONS:
            where = "in a list" if in_list else f"`{written}`"
            raise ValueError(
                f"'{key}': a run-date relative date works as the one value of {', '.join(DATE_COMPARISONS)} "
                f"(or eq, ne), not {where}"
            )
        return parse_relative_date(value, key)
    if isinstance(value, (list, tuple)):
        raise ValueError(f"'{key}' must be a single value for `{written}`; lists go with equals / notEquals (or in / not_in)")
    if value is None or not isinstance(value, (str, int, float, bool, dt.date)):
        raise ValueError(f"'{key}' must be text, a number, true/false or a date; got {value!r}")
    return value


def identifier_type_of(level: str) -> str | None:
    """'identifier:email' -> 'email'; None for customer and group levels."""
    return level[len(IDENTIFIER_LEVEL_PREFIX):] if level.startswith(IDENTIFIER_LEVEL_PREFIX) else None


# ----------------------------------------------------------------------------------------------
# Config dataclasses
# ----------------------------------------------------------------------------------------------


# export.segment_from: a field of the customer level (jobs.segments.conditions.CUSTOMER_SOURCES)
SEGMENT_FROM = re.compile(r"^(customer|traits|rfm)\.[A-Za-z_][A-Za-z0-9_]*$")
DAILY, WEEKLY, MONTHLY = "daily", "weekly", "monthly"
CADENCES = (DAILY, WEEKLY, MONTHLY)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")  # date.weekday() order
MAX_MONTH_DAY = 28


@dataclass(frozen=True)
class SegmentExport:
    """Resonate-style differential export (interface §6): `<Group>=<Segment>` in Add / Remove."""

    enabled: bool = False
    group: str = ""
    segment: str = ""
    delimiter: str = "|"
    # When a file is sent: every run (daily), on one weekday (weekly), or on one day of the month
    # (monthly, 1-28 so every month has it). Between export days membership is still kept every
    # run; the next file carries every add and remove since the last one sent.
    cadence: Literal[CADENCES] = DAILY       # Literal of a tuple: one allowed value per element
    weekday: Literal[WEEKDAYS] | None = None
    month_day: int | None = None
    # A Resonate static segment: ids are only ever added (a one-time upload per id), never removed.
    static: bool = False
    # Every file is the complete list of ids at that point (Add only), which Resonate processes like a
    # new segment, instead of the adds and removes since the last file. `--resend NAME` does this for
    # one run (a full refresh on demand).
    full_list: bool = False
    # A segment group: each member's segment is its value of this customer field (`rfm.rfm_segment`,
    # `traits.<name>`, `customer.<column>`) instead of the fixed `segment`: one file for the whole
    # group, and a member whose value changes is one row, <group>=<new> added and <group>=<old> removed.
    segment_from: str | None = None
    # The file's path under exports/ without its extension (FILE_NAME_FIELDS), e.g.
    # "{group}_{yyyymmdd}_{sequence:04d}" for an onboarding upload's flat folder.
    file_name: str = DEFAULT_FILE_NAME

    def file_path(self, segment: str, run_date: dt.date, sequence: int) -> str:
        """The file's path under exports/ for the segment's `sequence`-th file, sent on `run_date`."""
        name = self.file_name.format(segment=segment, group=FILE_NAME_UNSAFE.sub("_", self.group).strip("_"),
                                     date=run_date.isoformat(), yyyymmdd=run_date.strftime("%Y%m%d"),
                                     sequence=sequence)
        return f"{name}.{self.extension}"

    def _validate_file_name(self, key: str) -> None:
        try:
            # plain field names only: no {group.attribute} or {group[0]}
            unknown = next((f for _, f, _, _ in string.Formatter().parse(self.file_name)
                            if f is not None and f not in FILE_NAME_FIELDS), None)
            path = None if unknown is not None else self.file_path("segment", SAMPLE_RUN_DATE, SAMPLE_SEQUENCE)
        except ValueError as exc:
            raise ValueError(f"'{key}.file_name' is not a file name template ({exc}); got {self.file_name!r}") from None
        if path is None:
            raise ValueError(f"'{key}.file_name' names an unknown field {{{unknown}}} "
                             f"(fields: {', '.join(FILE_NAME_FIELDS)}); got {self.file_name!r}")
        fields = {f for _, f, _, _ in string.Formatter().parse(self.file_name) if f}
        if "sequence" in fields and not fields & {"date", "yyyymmdd"}:
            # a --full rewind numbers the rewound dates' files again: the date keeps a later file
            # from taking the name of one already delivered
            raise ValueError(f"'{key}.file_name' with {{sequence}} needs {{date}} or {{yyyymmdd}} too; got {self.file_name!r}")
        parts = path.split("/")
        # under exports/, and no part Hadoop's listing would hide (_x, .x)
        if any(not part or part == ".." or part[0] in "._" for part in parts) or path.startswith("/"):
            raise ValueError(f"'{key}.file_name' must be a relative path whose parts are not empty and do not "
                             f"start with '.' or '_'; got {self.file_name!r}")

    def due(self, run_date: dt.date) -> bool:
        """Whether a run on `run_date` sends a file."""
        if self.cadence == WEEKLY:
            return WEEKDAYS[run_date.weekday()] == self.weekday
        if self.cadence == MONTHLY:
            return run_date.day == self.month_day
        return True

    @property
    def label(self) -> str:
        """`<group>=<segment>`; for a segment group (segment_from), the `<group>` its labels start with."""
        return self.group if self.segment_from else f"{self.group}={self.segment}"

    @property
    def extension(self) -> str:
        return "psv" if self.delimiter == "|" else "csv"

    def validate(self, key: str) -> None:
        if self.delimiter not in EXPORT_DELIMITERS:
            raise ValueError(f"'{key}.delimiter' must be '|' or ','; got {self.delimiter!r}")
        if (self.cadence == WEEKLY) != (self.weekday is not None):
            raise ValueError(f"'{key}.weekday' names the day of a weekly export (cadence: weekly) and only then")
        if (self.cadence == MONTHLY) != (self.month_day is not None):
            raise ValueError(f"'{key}.month_day' names the day of a monthly export (cadence: monthly) and only then")
        if self.month_day is not None and not 1 <= self.month_day <= MAX_MONTH_DAY:
            raise ValueError(f"'{key}.month_day' must be 1 to {MAX_MONTH_DAY} (a day every month has); "
                             f"got {self.month_day}")
        if self.static and self.full_list:
            # a static segment's list is every id ever added: sent whole, it would re-send members who
            # withdrew consent since
            raise ValueError(f"'{key}.full_list' does not apply to a static segment (its ids are only ever added)")
        if not self.enabled:
            return
        if self.segment_from is not None:
            if not SEGMENT_FROM.match(self.segment_from):
                raise ValueError(f"'{key}.segment_from' must be a customer field: customer.<column>, traits.<name> "
                                 f"or rfm.<column>; got {self.segment_from!r}")
            if self.segment:
                raise ValueError(f"'{key}': give either segment (one segment) or segment_from (a segment per value)")
        for name in ("group",) if self.segment_from else ("group", "segment"):
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
        self._validate_file_name(key)


@dataclass(frozen=True, eq=False)
class SegmentDefinition:
    """One audience. Definitions compare by what they mean: a condition written with synonyms (eq,
    {month_start: -1}) equals the same condition in the canonical spelling (equals, {unit: month, offset: -1})."""

    name: str
    condition: dict[str, Any]
    level: str = CUSTOMER_LEVEL
    description: str = ""
    export: SegmentExport = field(default_factory=SegmentExport)

    def _identity(self) -> tuple:
        try:
            condition = parse_condition(self.condition, "condition")
        except ValueError:
            condition = self.condition
        return self.name, condition, self.level, self.description, self.export

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SegmentDefinition):
            return NotImplemented
        return self._identity() == other._identity()

    __hash__ = None  # the condition is a mapping

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
        if self.export.segment_from and self.level != CUSTOMER_LEVEL:
            raise ValueError(f"{where}'{key}.export.segment_from' needs level customer (the value is a customer's)")
        if self.export.enabled and self.level not in EXPORTABLE_LEVELS:
            raise ValueError(
                f"{where}'{key}.export': only {', '.join(EXPORTABLE_LEVELS)} segments can be exported "
                "(HEMSHA2 ids are people's emails)"
            )
        try:
            self.parsed_condition(f"{key}.condition")
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None

    def parsed_condition(self, key: str) -> Node:
        return parse_condition(self.condition, key)


# interface §5 "last month": its first day, as of the run date
LAST_MONTH_START = RelativeDate("month", -1)
# The seed recipe's "no purchase in the past month", as written: none in the 30 days ending on the run
# date D (D included), i.e. the last order was before D - 29 days. A rolling window, unlike "since
# the start of last month" (LAST_MONTH_START), which moves by whole calendar months.
PAST_30_DAYS_START = RelativeDate("day", -29)
# The recipe's other two rules: a customer with a history worth keeping.
_LOYAL_SPENDER = [
    {"field": "traits.total_orders", "op": GTE, "value": 10},
    {"field": "traits.lifetime_value", "op": GTE, "value": 1000},
]


def default_definitions() -> list[SegmentDefinition]:
    """The seed recipe's churn-risk audience (its rolling past month, and the calendar-month variant),
    two RFM audiences and a household audience."""
    return [
        SegmentDefinition(
            name="churn_risk",
            description="no order in the 30 days ending on the run date, at least 10 orders, spent at least 1,000",
            condition={"all": [
                {"field": "traits.last_order_date", "op": LT, "value": PAST_30_DAYS_START.to_config()},
                *_LOYAL_SPENDER,
            ]},
            export=SegmentExport(enabled=True, group="Retention 2026", segment="Churn risk", delimiter="|"),
        ),
        SegmentDefinition(
            name="churn_risk_since_last_month",
            description="no order since the first day of last month, at least 10 orders, spent at least 1,000",
            condition={"all": [
                {"field": "traits.last_order_date", "op": LT, "value": LAST_MONTH_START.to_config()},
                *_LOYAL_SPENDER,
            ]},
        ),
        SegmentDefinition(
            name="rfm_champions",
            description="RFM segment Champions",
            condition={"field": "rfm.rfm_segment", "op": EQUALS, "value": "Champions"},
            export=SegmentExport(enabled=True, group="RFM", segment="Champions", delimiter=","),
        ),
        SegmentDefinition(
            name="rfm_at_risk",
            description="RFM segment At Risk",
            condition={"field": "rfm.rfm_segment", "op": EQUALS, "value": "At Risk"},
        ),
        SegmentDefinition(
            name="household_champions",
            level=GROUP_LEVEL,
            description="households (groups) with at least one RFM Champion among their members",
            condition={"field": "rfm.rfm_segment", "op": EQUALS, "value": "Champions"},
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
        # two exports writing one path would overwrite each other's file on every run
        paths: dict[str, int] = {}
        for i, d in enumerate(self.definitions):
            if not d.export.enabled:
                continue
            path = d.export.file_path(d.name, SAMPLE_RUN_DATE, SAMPLE_SEQUENCE)
            if path in paths:
                raise ValueError(f"'{key}.definitions[{i}].export.file_name': segment {d.name!r} would write the "
                                 f"file of segment {self.definitions[paths[path]].name!r} ({path}); name the files "
                                 "apart with {segment} or {group}")
            paths[path] = i

    def resend_mistake(self, names: tuple[str, ...]) -> str | None:
        """What is wrong with `--resend` naming `names` (None: nothing): a name that is not an exported
        segment, or a static one (its list would re-send ids whose consent was withdrawn)."""
        exported = {d.name: d for d in self.definitions if d.export.enabled}
        for name in names:
            if name not in exported:
                return f"--resend {name}: not an exported segment (exported: {', '.join(exported) or 'none'})"
            if exported[name].export.static:
                return f"--resend {name}: a static segment is never re-sent (its ids are only ever added)"
        return None

    def find(self, name: str) -> tuple[int, SegmentDefinition] | None:
        return next(((i, d) for i, d in enumerate(self.definitions) if d.name == name), None)

"""The `traits:` config section: the computed traits `c360 traits` writes to gold/traits (docs/traits.md).

Kept out of jobs/core/config.py (which imports it), so this module must not import jobs.core.config.
Validated at load by `jobs.core.config.build_section`: every error names the file and the dotted key,
e.g. `traits.computed[2].of`, and the trait.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import astuple, dataclass, field, fields
from typing import Literal

from jobs.activities.settings import FEATURE_SLOTS, SNAKE_CASE
from jobs.metric_names import DERIVED_VALUE_NAMES as DERIVED_VALUES, ORDER_INVOICED, ORDER_NO, ORDER_PLACED, ORDER_REJECTED
from lens.calendar import FixedPeriod, Window, parse_window

TraitKind = Literal[
    "last", "first", "count", "count_distinct", "sum", "avg", "min", "max", "days_since_last", "percentage",
    "members", "not_followed_by",
]
# Group traits only (traits.group): how many members have a matching activity.
MEMBERS_KIND = "members"
# Customer traits only: how many of the customer's `activity` events no `followed_by` activity
# followed within `within` (a sequence: "added to cart and no purchase within 4 hours").
SEQUENCE_KIND = "not_followed_by"
# gold/groups' columns: a group trait is read beside them (`group.<name>` in segments), so it may not
# take one of their names (jobs.core.catalog, tests/jobs/test_traits.py checks the list).
GROUP_COLUMNS = ("group_id", "email", "phone", "first_name", "last_name", "name", "custom_traits", "updated_at")
NUMERIC_KINDS = ("sum", "avg", "min", "max")
# kinds whose `of` is required / optional; the others take no `of`
KINDS_NEEDING_OF = (*NUMERIC_KINDS, "count_distinct")
KINDS_WITH_OPTIONAL_OF = ("last", "first")
MONTHLY_AVERAGE_KINDS = ("count", "count_distinct", "sum")
# What `of` may name: numbers for NUMERIC_KINDS; any of VALUE_SOURCES for count_distinct, last, first.
# order_no and order_id are derived from feature1 as interface §5 defines them (jobs.metrics).
NUMERIC_SOURCES = ("revenue_impact", *FEATURE_SLOTS)
VALUE_SOURCES = (*DERIVED_VALUES, "activity", *NUMERIC_SOURCES)
RESERVED_NAMES = ("customer_id",)


@dataclass(frozen=True, eq=False)
class TraitWindow:
    """Which activities a trait sees, as of the run date D: a `lens.calendar.Window` as written in config.

    Canonical: `{unit, start, end}`, the units start..end relative to D's unit (0 = the unit that
    contains D, cut at D; -1 = the one before). Also accepted, as before: `{days: N}` (the N days ending
    on D, D included) and `{calendar_months: N}` (the N whole calendar months before D's month).
    A window that does not move with D: `{first_day, last_day}` (lens.calendar.FixedPeriod).
    Windows compare by what they mean: TraitWindow(days=30) == TraitWindow(unit="day", start=-29, end=0).
    """

    unit: str | None = None
    start: int | None = None
    end: int | None = None
    days: int | None = None
    calendar_months: int | None = None
    first_day: dt.date | None = None
    last_day: dt.date | None = None

    def spelling(self) -> dict[str, int | str]:
        """The keys written (non-null)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def canonical(self) -> Window | FixedPeriod:
        return parse_window(self.spelling())

    def validate(self, key: str) -> None:
        parse_window(self.spelling(), key)

    def _identity(self) -> object:
        try:
            return self.canonical
        except ValueError:
            return astuple(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraitWindow):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


@dataclass(frozen=True)
class Within:
    """How soon the follow-up must come for kind not_followed_by: exactly one of minutes, hours, days."""

    minutes: int | None = None
    hours: int | None = None
    days: int | None = None

    def validate(self, key: str) -> None:
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if len(given) != 1:
            raise ValueError(f"'{key}' needs exactly one of minutes, hours, days (e.g. {{hours: 4}})")
        (unit, count), = given.items()
        if count < 1:
            raise ValueError(f"'{key}.{unit}' must be at least 1, got {count}")

    @property
    def duration(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.minutes or 0, hours=self.hours or 0, days=self.days or 0)


@dataclass(frozen=True)
class TraitDefinition:
    """One computed trait: a column of gold/traits."""

    name: str = ""
    kind: TraitKind | None = None
    # only activities of this kind (snake_case, e.g. order_placed); none = every activity
    activity: str | None = None
    # the value aggregated (see VALUE_SOURCES / NUMERIC_SOURCES)
    of: str | None = None
    window: TraitWindow | None = None
    # divide by the window's number of calendar months (a monthly average over e.g. the last year)
    monthly_average: bool = False
    # percentage = 100 × numerator ÷ denominator, both names of other (non-percentage) traits
    numerator: str | None = None
    denominator: str | None = None
    # kind not_followed_by: the activity that must not follow `activity`, and how soon
    followed_by: str | None = None
    within: Within | None = None

    def validate(self, key: str) -> None:
        if not self.name:
            raise ValueError(f"'{key}.name' is required")
        if not SNAKE_CASE.match(self.name) or self.name in RESERVED_NAMES:
            raise ValueError(f"'{key}.name' must be a snake_case column name other than customer_id, got {self.name!r}")
        what = f"(trait {self.name!r})"
        if self.kind is None:
            raise ValueError(f"'{key}.kind' is required {what}")
        if self.activity is not None and not SNAKE_CASE.match(self.activity):
            raise ValueError(f"'{key}.activity' must be a snake_case activity name {what}, got {self.activity!r}")
        if self.kind == "percentage":
            self._validate_percentage(key, what)
        else:
            for name in ("numerator", "denominator"):
                if getattr(self, name) is not None:
                    raise ValueError(f"'{key}.{name}' only applies to kind percentage {what}")
        self._validate_sequence(key, what)
        self._validate_of(key, what)
        if self.monthly_average:
            if self.kind not in MONTHLY_AVERAGE_KINDS:
                raise ValueError(
                    f"'{key}.monthly_average' applies to kinds {', '.join(MONTHLY_AVERAGE_KINDS)} {what}, not {self.kind}"
                )
            if self.window is None or self.window.canonical.calendar_months is None:
                raise ValueError(
                    f"'{key}.monthly_average' needs window.calendar_months {what} "
                    "(or a window of whole months, quarters or years before the run date's, or a fixed "
                    "period from a month's first day to a month's last day)"
                )

    def _validate_percentage(self, key: str, what: str) -> None:
        for name in ("numerator", "denominator"):
            if not getattr(self, name):
                raise ValueError(f"'{key}.{name}' is required for kind percentage {what}")
        for name in ("activity", "window"):
            if getattr(self, name) is not None:
                raise ValueError(f"'{key}.{name}' does not apply to kind percentage {what}: set it on the numerator and denominator traits")

    def _validate_sequence(self, key: str, what: str) -> None:
        if self.kind != SEQUENCE_KIND:
            for name in ("followed_by", "within"):
                if getattr(self, name) is not None:
                    raise ValueError(f"'{key}.{name}' only applies to kind {SEQUENCE_KIND} {what}")
            return
        for name in ("activity", "followed_by", "within"):
            if getattr(self, name) is None:
                raise ValueError(f"'{key}.{name}' is required for kind {SEQUENCE_KIND} {what}")
        if not SNAKE_CASE.match(self.followed_by):
            raise ValueError(f"'{key}.followed_by' must be a snake_case activity name {what}, got {self.followed_by!r}")
        if self.followed_by == self.activity:
            raise ValueError(f"'{key}.followed_by' must be another activity than '{key}.activity' {what}")

    def _validate_of(self, key: str, what: str) -> None:
        if self.kind in (MEMBERS_KIND, SEQUENCE_KIND):
            if self.of is not None:
                raise ValueError(f"'{key}.of' does not apply to kind {self.kind} {what}")
            return
        if self.kind in NUMERIC_KINDS:
            allowed = NUMERIC_SOURCES
        elif self.kind in KINDS_NEEDING_OF or self.kind in KINDS_WITH_OPTIONAL_OF:
            allowed = VALUE_SOURCES
        else:
            if self.of is not None:
                raise ValueError(f"'{key}.of' does not apply to kind {self.kind} {what}")
            return
        if self.of is None:
            if self.kind in KINDS_NEEDING_OF:
                raise ValueError(f"'{key}.of' is required for kind {self.kind} {what}: one of {', '.join(allowed)}")
        elif self.of not in allowed:
            raise ValueError(f"'{key}.of' for kind {self.kind} must be one of {', '.join(allowed)} {what}, got {self.of!r}")


def default_traits() -> list[TraitDefinition]:
    """The seed recipe's traits (last order date, number of orders, lifetime value) and interface §5's."""
    last_month = TraitWindow(calendar_months=1)
    last_year = TraitWindow(calendar_months=12)
    return [
        TraitDefinition("last_order_date", "last", activity=ORDER_PLACED),
        TraitDefinition("total_orders", "count_distinct", activity=ORDER_PLACED, of=ORDER_NO),
        TraitDefinition("lifetime_value", "sum", activity=ORDER_PLACED, of="revenue_impact"),
        TraitDefinition("orders_last_30_days", "count_distinct", activity=ORDER_PLACED, of=ORDER_NO,
                        window=TraitWindow(days=30)),
        TraitDefinition("days_since_last_order", "days_since_last", activity=ORDER_PLACED),
        TraitDefinition("rejected_orders", "count_distinct", activity=ORDER_REJECTED, of=ORDER_NO),
        TraitDefinition("invoiced_orders", "count_distinct", activity=ORDER_INVOICED, of=ORDER_NO),
        TraitDefinition("rejected_orders_last_month", "count_distinct", activity=ORDER_REJECTED, of=ORDER_NO,
                        window=last_month),
        TraitDefinition("rejected_orders_monthly_average", "count_distinct", activity=ORDER_REJECTED,
                        of=ORDER_NO, window=last_year, monthly_average=True),
        TraitDefinition("percentage_orders_rejected", "percentage", numerator="rejected_orders",
                        denominator="total_orders"),
        TraitDefinition("percentage_orders_invoiced", "percentage", numerator="invoiced_orders",
                        denominator="total_orders"),
    ]


def default_group_traits() -> list[TraitDefinition]:
    """A household's (an account's) measures: its last order, its orders and spend (each event once per
    group, however many members it reached) and how many members ordered in the last 30 days."""
    return [
        TraitDefinition("household_last_order_date", "last", activity=ORDER_PLACED),
        TraitDefinition("household_orders", "count_distinct", activity=ORDER_PLACED, of=ORDER_NO),
        TraitDefinition("household_lifetime_value", "sum", activity=ORDER_PLACED, of="revenue_impact"),
        TraitDefinition("members_ordered_last_30_days", MEMBERS_KIND, activity=ORDER_PLACED, window=TraitWindow(days=30)),
    ]


def _validate_list(traits: list[TraitDefinition], key: str) -> None:
    index = {}
    for i, trait in enumerate(traits):
        if trait.name in index:
            raise ValueError(f"'{key}[{i}].name': trait {trait.name!r} is already defined at {key}[{index[trait.name]}]")
        index[trait.name] = i
    for i, trait in enumerate(traits):
        for name in ("numerator", "denominator"):
            ref = getattr(trait, name)
            if ref is None:
                continue
            if ref not in index:
                raise ValueError(f"'{key}[{i}].{name}' (trait {trait.name!r}) names no trait: {ref!r}")
            if traits[index[ref]].kind == "percentage":
                raise ValueError(
                    f"'{key}[{i}].{name}' (trait {trait.name!r}) must name a trait that is not a percentage, got {ref!r}"
                )


@dataclass(frozen=True)
class TraitSettings:
    """`computed` replaces the defaults as a whole: list every trait you want in gold/traits; `group`
    likewise for gold/group_traits (one row per group of gold/groups)."""

    computed: list[TraitDefinition] = field(default_factory=default_traits)
    group: list[TraitDefinition] = field(default_factory=default_group_traits)

    def validate(self, key: str) -> None:
        _validate_list(self.computed, f"{key}.computed")
        _validate_list(self.group, f"{key}.group")
        for i, trait in enumerate(self.computed):
            if trait.kind == MEMBERS_KIND:
                raise ValueError(f"'{key}.computed[{i}].kind': {MEMBERS_KIND} counts a group's members; it is a "
                                 f"group trait (traits.group) (trait {trait.name!r})")
        for i, trait in enumerate(self.group):
            if trait.kind == SEQUENCE_KIND:
                raise ValueError(f"'{key}.group[{i}].kind': {SEQUENCE_KIND} follows one customer's activities in "
                                 f"time; it is a customer trait (traits.computed) (trait {trait.name!r})")
            if trait.name in GROUP_COLUMNS:
                raise ValueError(f"'{key}.group[{i}].name': {trait.name!r} is a column of gold/groups; "
                                 "a group trait is read beside them (group.<name>) and needs another name")

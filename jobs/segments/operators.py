"""The operators of the segments condition language: the lens's names, with the older segment names
as synonyms. Pure Python (imported at config load by jobs.segments.settings; re-exported by
jobs.segments.conditions, which compiles them).

The canonical names are the lens filter operators' (lens/query_format.py `OPERATORS`, Cube's
vocabulary), so a condition reads the same in a segment and in a lens query. The names segments
used before stay accepted, each with the value shape it always had:

    canonical    values              synonyms (value shape)
    equals       one, or a list      eq (one value), in (a non-empty list)
    notEquals    one, or a list      ne (one value), not_in (a non-empty list)
    gt gte lt lte  one               -
    set          none                not_null
    notSet       none                is_null
    contains     one                 -

Segments keep their own null rule: a rule on a missing value is false, notEquals included (the
lens's notEquals / notContains keep NULLs). docs/segments.md.
"""
from __future__ import annotations

EQUALS = "equals"
NOT_EQUALS = "notEquals"
GT, GTE, LT, LTE = "gt", "gte", "lt", "lte"
SET = "set"
NOT_SET = "notSet"
CONTAINS = "contains"

# Canonical operators, in the order documentation and errors list them.
OPERATORS = (EQUALS, NOT_EQUALS, GT, GTE, LT, LTE, SET, NOT_SET, CONTAINS)
COMPARISONS = (GT, GTE, LT, LTE)
EQUALITIES = (EQUALS, NOT_EQUALS)
NULL_CHECKS = (SET, NOT_SET)
# Operators a run-date relative date (one value) may be compared with.
DATE_COMPARISONS = (*EQUALITIES, *COMPARISONS)

# The value an operator takes, by the name written.
ONE = "one value"
LIST = "a non-empty list"
ONE_OR_LIST = "one value or a non-empty list"
NONE = "no value"

# The segment names used before the lens vocabulary: name -> canonical operator.
SYNONYMS: dict[str, str] = {
    "eq": EQUALS, "ne": NOT_EQUALS, "in": EQUALS, "not_in": NOT_EQUALS, "is_null": NOT_SET, "not_null": SET,
}
_SHAPES: dict[str, str] = {
    EQUALS: ONE_OR_LIST, NOT_EQUALS: ONE_OR_LIST,
    GT: ONE, GTE: ONE, LT: ONE, LTE: ONE,
    SET: NONE, NOT_SET: NONE, CONTAINS: ONE,
    "eq": ONE, "ne": ONE, "in": LIST, "not_in": LIST, "not_null": NONE, "is_null": NONE,
}
ACCEPTED = (*OPERATORS, *SYNONYMS)


def canonical(name: str) -> str | None:
    """The canonical operator a name (canonical or synonym) stands for; None for an unknown name."""
    if name in OPERATORS:
        return name
    return SYNONYMS.get(name)


def value_shape(name: str) -> str:
    """ONE, LIST, ONE_OR_LIST or NONE: what the operator takes when written `name`."""
    return _SHAPES[name]


def operators_help() -> str:
    return f"{', '.join(OPERATORS)} (or the older {', '.join(SYNONYMS)})"

"""Query filters as SQL conditions: typed literals, string/number/date operators. Pure Python.

A filter value only ever enters SQL as a literal node built here; a value that does not fit its
member's type is a LensError.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Callable

from sqlglot import exp

from lens import sql
from lens.errors import LensError
from lens.query_format import DATE_OPERATORS, Filter, FilterGroup, parse_moment, resolve_date_range

NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
TRUTH = {"true": True, "false": False}

# A filter's member -> (its value as SQL, its value type)
Resolve = Callable[[Filter], tuple[exp.Expression, str]]


def zoned(value: exp.Expression, timezone: str | None) -> exp.Expression:
    """A UTC time in the query's time zone (unchanged without one)."""
    if not timezone:
        return value
    return exp.Anonymous(this="FROM_UTC_TIMESTAMP", expressions=[value, sql.string_literal(timezone)])


def literal(value: str, value_type: str, where: str) -> exp.Expression:
    if value_type == "number":
        if not NUMBER.match(value.strip()):
            raise LensError(f"{where}: {value!r} is not a number")
        text = value.strip()
        return exp.Neg(this=exp.Literal.number(text[1:])) if text.startswith("-") else exp.Literal.number(text)
    if value_type == "boolean":
        if value.lower() not in TRUTH:
            raise LensError(f"{where}: {value!r} is not true or false")
        return exp.Boolean(this=TRUTH[value.lower()])
    if value_type in ("date", "time"):
        moment, whole_day = parse_moment(value, where)
        return sql.date_literal(moment.date()) if whole_day else sql.timestamp_literal(moment)
    return sql.string_literal(value)


def condition(node: Filter | FilterGroup, resolve: Resolve, *, where: str, run_date: dt.date,
              timezone: str | None) -> exp.Expression:
    """The filter (or group of filters) as one boolean expression; `where` prefixes error messages."""
    if isinstance(node, FilterGroup):
        parts = [condition(item, resolve, where=where, run_date=run_date, timezone=timezone) for item in node.items]
        joined = exp.and_(*parts, copy=False) if node.connective == "and" else exp.or_(*parts, copy=False)
        return exp.Paren(this=joined)
    value, value_type = resolve(node)
    where = f"{where}: filter {node.member} {node.operator}"
    op, values = node.operator, node.values
    if op in DATE_OPERATORS:
        return date_condition(zoned(value, timezone), op, values, where, run_date)
    if op == "set":
        return exp.not_(exp.Is(this=value, expression=exp.Null()))
    if op == "notSet":
        return exp.Is(this=value, expression=exp.Null())
    if op in ("contains", "notContains", "startsWith", "endsWith"):
        prefix = "" if op == "startsWith" else "%"
        suffix = "" if op == "endsWith" else "%"
        matches = [exp.ILike(this=value.copy(), expression=sql.like_pattern(v, prefix=prefix, suffix=suffix))
                   for v in values]
        found = exp.Paren(this=exp.or_(*matches, copy=False))
        return or_null(exp.not_(found), value) if op == "notContains" else found
    literals = [literal(v, value_type, where) for v in values]
    if op in ("equals", "notEquals"):
        equal = (exp.EQ(this=value, expression=literals[0]) if len(literals) == 1
                 else exp.In(this=value, expressions=literals))
        return or_null(exp.not_(equal), value) if op == "notEquals" else equal
    comparison = {"gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}[op]
    return comparison(this=value, expression=literals[0])


def or_null(negated: exp.Expression, value: exp.Expression) -> exp.Expression:
    """Negative filters keep NULLs (a missing value is not equal to / does not contain v)."""
    return exp.Paren(this=exp.or_(negated, exp.Is(this=value.copy(), expression=exp.Null()), copy=False))


def date_condition(value: exp.Expression, op: str, values: tuple[str, ...], where: str,
                   run_date: dt.date) -> exp.Expression:
    if op in ("inDateRange", "notInDateRange"):
        start, stop = resolve_date_range(values, run_date, where)
        low, high = sql.timestamp_literal(start), sql.timestamp_literal(stop)
        if op == "inDateRange":
            return exp.Paren(this=exp.and_(exp.GTE(this=value, expression=low),
                                           exp.LT(this=value.copy(), expression=high), copy=False))
        return exp.Paren(this=exp.or_(exp.LT(this=value, expression=low),
                                      exp.GTE(this=value.copy(), expression=high), copy=False))
    moment, whole_day = parse_moment(values[0], where)
    if op == "beforeDate":
        return exp.LT(this=value, expression=sql.timestamp_literal(moment))
    if whole_day:  # after the whole day
        return exp.GTE(this=value, expression=sql.timestamp_literal(moment + dt.timedelta(days=1)))
    return exp.GT(this=value, expression=sql.timestamp_literal(moment))

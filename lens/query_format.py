"""The lens query format (Cube-like), query files with variants, `--filter` arguments, date ranges.

A query names members as `entity.member`:

    measures: [order_placed.frequency]
    dimensions: [customer.state]
    timeDimensions: [{dimension: order_placed.activity_ts, granularity: month, dateRange: last 12 months}]
    filters: [{member: customer.state, operator: equals, values: [CA, NY]},
              {or: [{member: ..., operator: ..., values: [...]}, {and: [...]}]}]
    order: {order_placed.frequency: desc}      # or [[member, desc], ...]
    limit: 100
    timezone: America/New_York                  # default UTC

A query file may add `variants: {name: {<keys that replace the base query's>}}` (lens/README.md).
Everything here is plain Python: values stay text until the planner turns them into literal nodes.
"""
from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from lens.calendar import UNITS, Window
from lens.errors import LensError

GRANULARITIES = UNITS
DIRECTIONS = ("asc", "desc")
# operator -> (fewest values, most values); None = no upper bound
OPERATORS: dict[str, tuple[int, int | None]] = {
    "equals": (1, None), "notEquals": (1, None),
    "contains": (1, None), "notContains": (1, None),
    "startsWith": (1, None), "endsWith": (1, None),
    "gt": (1, 1), "gte": (1, 1), "lt": (1, 1), "lte": (1, 1),
    "set": (0, 0), "notSet": (0, 0),
    "inDateRange": (1, 2), "notInDateRange": (1, 2),
    "beforeDate": (1, 1), "afterDate": (1, 1),
}
DATE_OPERATORS = frozenset({"inDateRange", "notInDateRange", "beforeDate", "afterDate"})
QUERY_KEYS = ("measures", "dimensions", "timeDimensions", "filters", "order", "limit", "timezone")
FILE_KEYS = (*QUERY_KEYS, "name", "description", "variants")
MEMBER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Filter:
    member: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilterGroup:
    connective: str  # "and" | "or"
    items: tuple["Filter | FilterGroup", ...]


@dataclass(frozen=True)
class TimeDimension:
    member: str
    granularity: str | None = None
    date_range: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.member}.{self.granularity}" if self.granularity else self.member


@dataclass(frozen=True)
class Query:
    measures: tuple[str, ...] = ()
    dimensions: tuple[str, ...] = ()
    time_dimensions: tuple[TimeDimension, ...] = ()
    filters: tuple[Filter | FilterGroup, ...] = ()
    order: tuple[tuple[str, str], ...] = ()
    limit: int | None = None
    timezone: str | None = None


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float, dt.date)):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    raise LensError(f"{where}: expected a text value, got {type(value).__name__}")


def _member(value: Any, where: str) -> str:
    if not isinstance(value, str) or not MEMBER.match(value.strip()):
        raise LensError(f"{where}: {value!r} is not a member name (write entity.member)")
    return value.strip()


def _members(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise LensError(f"{where}: expected a list of entity.member names")
    return tuple(_member(v, f"{where}[{i}]") for i, v in enumerate(value))


def parse_filter(data: Any, where: str) -> Filter | FilterGroup:
    """One filter ({member, operator, values}) or group ({and: [...]} / {or: [...]})."""
    if not isinstance(data, Mapping):
        raise LensError(f"{where}: a filter is a mapping with member/operator/values, or and/or")
    keys = set(data) - {"__line__"}
    for connective in ("and", "or"):
        if connective in keys:
            if keys != {connective}:
                raise LensError(f"{where}: '{connective}' must be the only key of its filter group")
            items = data[connective]
            if not isinstance(items, list) or not items:
                raise LensError(f"{where}.{connective}: expected a non-empty list of filters")
            return FilterGroup(connective, tuple(parse_filter(f, f"{where}.{connective}[{i}]")
                                                 for i, f in enumerate(items)))
    unknown = keys - {"member", "dimension", "operator", "values"}
    if unknown:
        raise LensError(f"{where}: unknown filter key {sorted(unknown)[0]!r} (member, operator, values, and, or)")
    member = _member(data.get("member", data.get("dimension")), f"{where}.member")
    operator = data.get("operator")
    if operator not in OPERATORS:
        raise LensError(f"{where}.operator: {operator!r} is not an operator ({', '.join(OPERATORS)})")
    raw = data.get("values", [])
    raw = [raw] if not isinstance(raw, list) else raw
    values = tuple(_text(v, f"{where}.values") for v in raw)
    return Filter(member, operator, check_arity(operator, values, where))


def check_arity(operator: str, values: tuple[str, ...], where: str) -> tuple[str, ...]:
    fewest, most = OPERATORS[operator]
    if len(values) < fewest or (most is not None and len(values) > most):
        wanted = "no values" if most == 0 else (f"{fewest} value" if fewest == most else
                                                 f"{fewest} to {most} values" if most else f"at least {fewest} value")
        raise LensError(f"{where}: operator {operator} takes {wanted}, got {len(values)}")
    return values


def _time_dimension(data: Any, where: str) -> TimeDimension:
    if not isinstance(data, Mapping):
        raise LensError(f"{where}: expected {{dimension, granularity, dateRange}}")
    unknown = set(data) - {"dimension", "granularity", "dateRange", "__line__"}
    if unknown:
        raise LensError(f"{where}: unknown key {sorted(unknown)[0]!r} (dimension, granularity, dateRange)")
    granularity = data.get("granularity")
    if granularity is not None and granularity not in GRANULARITIES:
        raise LensError(f"{where}.granularity: {granularity!r} is not one of {', '.join(GRANULARITIES)}")
    raw = data.get("dateRange")
    values = () if raw is None else tuple(_text(v, f"{where}.dateRange") for v in (raw if isinstance(raw, list) else [raw]))
    if values:
        check_arity("inDateRange", values, f"{where}.dateRange")
    if granularity is None and not values:
        raise LensError(f"{where}: a time dimension needs a granularity, a dateRange or both")
    return TimeDimension(_member(data.get("dimension"), f"{where}.dimension"), granularity, values)


def _order(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    pairs = list(value.items()) if isinstance(value, Mapping) else value
    if not isinstance(pairs, list):
        raise LensError(f"{where}: expected {{member: asc|desc}} or [[member, asc|desc], ...]")
    out = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, str):
            pair = (pair, "asc")
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise LensError(f"{where}[{i}]: expected [member, asc|desc]")
        member, direction = pair
        if member == "__line__":
            continue
        if str(direction).lower() not in DIRECTIONS:
            raise LensError(f"{where}.{member}: direction must be asc or desc, got {direction!r}")
        out.append((_member(member, f"{where}[{i}]"), str(direction).lower()))
    return tuple(out)


def check_timezone(name: str | None, where: str) -> str | None:
    if name is None:
        return None
    try:
        zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise LensError(f"{where}: unknown time zone {name!r} (an IANA name such as UTC or America/New_York)") from None
    return str(name)


def parse_query(data: Any, where: str = "query") -> Query:
    if not isinstance(data, Mapping):
        raise LensError(f"{where}: a query is a mapping (measures, dimensions, filters, ...)")
    unknown = set(data) - set(FILE_KEYS) - {"__line__"}
    if unknown:
        raise LensError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(QUERY_KEYS)})")
    filters = data.get("filters") or []
    if not isinstance(filters, list):
        raise LensError(f"{where}.filters: expected a list")
    time_dims = data.get("timeDimensions") or []
    if not isinstance(time_dims, list):
        raise LensError(f"{where}.timeDimensions: expected a list")
    limit = data.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise LensError(f"{where}.limit: expected a positive whole number, got {limit!r}")
    query = Query(
        measures=_members(data.get("measures"), f"{where}.measures"),
        dimensions=_members(data.get("dimensions"), f"{where}.dimensions"),
        time_dimensions=tuple(_time_dimension(t, f"{where}.timeDimensions[{i}]") for i, t in enumerate(time_dims)),
        filters=tuple(parse_filter(f, f"{where}.filters[{i}]") for i, f in enumerate(filters)),
        order=_order(data.get("order"), f"{where}.order"),
        limit=limit,
        timezone=check_timezone(data.get("timezone"), f"{where}.timezone"),
    )
    if not (query.measures or query.dimensions or any(t.granularity for t in query.time_dimensions)):
        raise LensError(f"{where}: ask for at least one measure or dimension")
    return query


def read_query_file(path: str | Path) -> dict:
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise LensError(f"query file {file}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise LensError(f"query file {file}: not valid YAML/JSON{where}") from None
    if not isinstance(data, dict):
        raise LensError(f"query file {file}: the top level must be a mapping")
    return data


def variant_names(path: str | Path) -> list[str]:
    variants = read_query_file(path).get("variants") or {}
    return list(variants) if isinstance(variants, dict) else []


def load_query(path: str | Path, variant: str | None = None) -> Query:
    """A query file (YAML or JSON); `variant` applies one of its `variants` over the base query."""
    data = read_query_file(path)
    variants = data.pop("variants", None) or {}
    if not isinstance(variants, dict):
        raise LensError(f"query file {path}: 'variants' must be a mapping of name -> query keys")
    if variant is not None:
        if variant not in variants:
            known = ", ".join(variants) or "none"
            raise LensError(f"query file {path}: no variant {variant!r} (variants: {known})")
        override = variants[variant] or {}
        if not isinstance(override, dict):
            raise LensError(f"query file {path}: variant {variant!r} must be a mapping")
        data = {**data, **override}
    label = f"query file {path}" + (f" (variant {variant})" if variant else "")
    return parse_query(data, label)


def parse_filter_arg(text: str) -> Filter:
    """`--filter MEMBER:OPERATOR[:V1,V2,...]`; a comma inside a value is written `\\,`."""
    parts = text.split(":", 2)
    if len(parts) < 2:
        raise LensError(f"--filter {text!r}: expected MEMBER:OPERATOR[:VALUE,...] (e.g. customer.state:equals:CA)")
    member = _member(parts[0], f"--filter {text!r}")
    operator = parts[1].strip()
    if operator not in OPERATORS:
        raise LensError(f"--filter {text!r}: {operator!r} is not an operator ({', '.join(OPERATORS)})")
    values = tuple(v.replace("\\,", ",") for v in re.split(r"(?<!\\),", parts[2])) if len(parts) == 3 else ()
    return Filter(member, operator, check_arity(operator, values, f"--filter {text!r}"))


def parse_time_dimension_arg(text: str) -> TimeDimension:
    """`--time-dimension MEMBER[:GRANULARITY][:RANGE]`, RANGE = `FROM,TO` or a relative range."""
    member, _, rest = text.partition(":")
    granularity, _, date_range = rest.partition(":") if rest.split(":")[0] in GRANULARITIES else ("", "", rest)
    values = [v for v in date_range.split(",") if v] if date_range else []
    data = {"dimension": member, "granularity": granularity or None, "dateRange": values or None}
    return _time_dimension(data, f"--time-dimension {text!r}")


# ----------------------------------------------------------------------------------------------
# Date ranges, resolved against the run date (never the wall clock)
# ----------------------------------------------------------------------------------------------


def parse_moment(text: str, where: str) -> tuple[dt.datetime, bool]:
    """(moment, is_whole_day): `YYYY-MM-DD` or an ISO datetime without offset (read in the query's zone)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time()), True
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise LensError(f"{where}: {text!r} is not a date (YYYY-MM-DD) or datetime (YYYY-MM-DDTHH:MM:SS)") from None
    if moment.tzinfo is not None:
        raise LensError(f"{where}: {text!r} has a UTC offset; give local times and set the query's timezone")
    return moment, False


def resolve_date_range(values: tuple[str, ...], run_date: dt.date, where: str) -> tuple[dt.datetime, dt.datetime]:
    """A half-open [start, stop) in the query's zone. Relative ranges end with the run date:
    `this month` = 1st of the run date's month .. the run date; `last month` = the calendar month
    before; `last N months` = the N calendar months before the run date's month (likewise days,
    weeks, quarters, years); `today`, `yesterday` (lens.calendar.Window.from_phrase)."""
    midnight = lambda d: dt.datetime.combine(d, dt.time())  # noqa: E731
    if len(values) == 2:
        start, _ = parse_moment(values[0], where)
        end, whole_day = parse_moment(values[1], where)
        stop = end + (dt.timedelta(days=1) if whole_day else dt.timedelta(microseconds=1))
        if stop <= start:
            raise LensError(f"{where}: the range {values[0]} .. {values[1]} is empty")
        return start, stop
    try:
        window = Window.from_phrase(values[0])
    except ValueError:
        raise LensError(f"{where}: {values[0]!r} covers no time") from None
    if window is None:
        start, whole_day = parse_moment(values[0], where)
        if not whole_day:
            raise LensError(f"{where}: a one-value range is a date or a relative range such as 'last month'")
        return start, start + dt.timedelta(days=1)
    start, stop = window.half_open(run_date)
    return midnight(start), midnight(stop)

"""The logical plan of a lens query: small frozen dataclasses, one per relational step. Pure Python.

lens.planner builds a plan from a model and a query; lens.passes rewrites it (each pass a function
plan -> plan); lens.render turns it into one Spark SQL statement, each step a CTE:

  AsOf            lens_t_<view>   a catalog table with a time column, only its rows before the day
                                  after the run date (interface §5); entity queries read it instead
  Scan            lens_e_<entity> an entity's sql.query, its tables pointed at registered views
  Join                            rows joined to an entity's rows (LEFT along N:1 / 1:1 relationships)
  DistinctKeys    lens_k_<entity> an entity's primary keys, distinct per dimension combination (a
                                  dimension or filter across a 1:N hop: each entity row counts once)
  Aggregate       lens_a_<entity> measures aggregated at the entity's own grain, grouped by the
                                  query's dimensions (d0, d1, ...; measures m0, m1, ...)
  SharedScan      lens_s_<entity> one read of a table for several entities' rows, each row flagged
                                  (in0, in1, ...) or tagged (lens_tag) with the entities it belongs to
  UnionAll        lens_u_<entity> shared-scan rows read in groups by the joins they use, joined columns
                                  carried on the rows
  DistinctValues  lens_v_<entity> one row per (dimensions, value) with a flag per distinct count
  CountFlags      lens_a_<entity> the distinct counts, COUNT_IF over those flags
  Combine         lens_r          the aggregates joined on the dimension values; derived measures
  DimensionValues lens_r          a query without measures: the distinct dimension values
  Final                           requested columns, measure filters (HAVING), ORDER BY, LIMIT

Scalar expressions inside the plan (dimension values, filters, measure values) are sqlglot ASTs over
the aliases of the step's rows, already in Spark semantics. A plan is never changed in place: passes
build new nodes, and rendering copies every expression it puts in the SQL.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator, Union

from sqlglot import exp

from lens import sql

SCAN = "lens_scan"   # alias of a shared scan's rows in the steps that read them
TAG = "lens_tag"     # which entity a shared-scan row stands for, when the entities group it differently
KEYS = "keys"        # alias of an entity's distinct keys (DistinctKeys)
RESULT = "lens_r"

# A sum of a floating-point value (the seed casts its text amounts to double) is added up in this
# DECIMAL and returned as a double, so it comes out as the stored decimals would (5373.64, not
# 5373.639999999999) and does not depend on the order Spark adds the rows in. The same scale as
# gold/rfm's monetary (jobs.metrics.EXACT_DECIMAL imports it), so the two agree to the last digit.
SUM_DECIMAL_PRECISION, SUM_DECIMAL_SCALE = 38, 9
SUM_DECIMAL = f"DECIMAL({SUM_DECIMAL_PRECISION}, {SUM_DECIMAL_SCALE})"


@dataclass(frozen=True)
class AsOf:
    """`view` as of the run date: its rows with `column` < `end` (the next day's midnight, UTC)."""

    name: str
    view: str
    column: str
    end: dt.datetime


@dataclass(frozen=True)
class Scan:
    """An entity's rows: its sql.query (read from registered views) as the CTE lens_e_<entity>."""

    entity: str
    query: exp.Query
    tables: tuple[str, ...]   # the catalog tables (model names) its query reads

    @property
    def name(self) -> str:
        return f"lens_e_{self.entity}"


@dataclass(frozen=True)
class Join:
    """`left`'s rows joined to an entity's rows (`right`, named `alias`) on `on`."""

    left: "Rows"
    right: Scan
    alias: str
    on: exp.Expression
    kind: str = "left"


@dataclass(frozen=True)
class DistinctKeys:
    """`name`: the distinct (dimension values d_i, primary key k_i) of `source`'s rows that pass `filters`."""

    name: str
    source: "Rows"
    dimensions: tuple[exp.Expression, ...]
    keys: tuple[exp.Expression, ...]
    filters: tuple[exp.Expression, ...] = ()


@dataclass(frozen=True)
class SharedScan:
    """`name`: one read of `table` with the columns several entities need (c0, c1, ...).

    `entities` are all the entities sharing the scan (entity i has predicate i, None: every row);
    this read is for those in `reads`. Untagged, a row carries a flag in<i> per entity; tagged, it
    is repeated once per entity it belongs to, with the entity's number in lens_tag."""

    name: str
    table: exp.Table
    columns: tuple[exp.Expression, ...]
    entities: tuple[str, ...]
    predicates: tuple[exp.Expression | None, ...]
    reads: tuple[int, ...]
    tagged: bool
    tables: tuple[str, ...] = ()   # the catalog tables (model names) `table` stands for


@dataclass(frozen=True)
class Branch:
    """Some of a shared scan's rows through the joins they use (`rows`: joins over a SharedScan),
    with `carried` joined columns (alias, column) named <alias>__<column>, NULL where not joined."""

    rows: "Rows"
    carried: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class UnionAll:
    """`name`: the branches' rows, UNION ALL."""

    name: str
    branches: tuple[Branch, ...]


Rows = Union[Scan, Join, DistinctKeys, SharedScan, UnionAll]


@dataclass(frozen=True)
class Measure:
    """A measure's aggregate: `kind` (count, sum, ...) of `value` over the rows where every one of
    `conditions` holds. A `number` measure's `value` is its whole aggregate expression. `exact`: a
    sum of doubles, added up as SUM_DECIMAL and returned as a double."""

    key: str
    kind: str
    value: exp.Expression | None
    conditions: tuple[exp.Expression, ...] = ()
    exact: bool = False


@dataclass(frozen=True)
class Aggregate:
    """`name`: `measures` (m0, m1, ...) of `source`'s rows that pass `filters`, grouped by `group_by` (d0, ...)."""

    name: str
    entities: tuple[str, ...]   # whose measures these are
    source: Rows
    group_by: tuple[exp.Expression, ...]
    measures: tuple[Measure, ...]
    filters: tuple[exp.Expression, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.measures)


@dataclass(frozen=True)
class DistinctValues:
    """`name`: one row per (group_by values d_i, `value` v) of `source`'s rows that pass `filters`,
    with a flag f_i per condition: was it true on any of those rows."""

    name: str
    source: Rows
    group_by: tuple[exp.Expression, ...]
    value: exp.Expression
    conditions: tuple[exp.Expression, ...]
    filters: tuple[exp.Expression, ...] = ()


@dataclass(frozen=True)
class CountFlags:
    """`name`: per dimension values, how many non-NULL values have flag f_i set -- the distinct
    count `keys[i]` (m_i)."""

    name: str
    entities: tuple[str, ...]
    source: DistinctValues
    keys: tuple[str, ...]


Aggregated = Union[Aggregate, CountFlags]


@dataclass(frozen=True)
class Combine:
    """lens_r: the inputs joined on their dimension values (FULL OUTER JOIN, null-safe; CROSS JOIN
    without dimensions). A count of a group an input has no rows for is 0 (`counts`: the count
    measures). `derived` measures (key, expression over the base measures, in the model's
    `dialect`) are computed from the combined values with the run date bound."""

    inputs: tuple[Aggregated, ...]
    dimensions: tuple[str, ...]   # output names of d0, d1, ...
    measures: tuple[str, ...]     # output measures, in order: requested, then those only filters use
    counts: tuple[str, ...]
    derived: tuple[tuple[str, exp.Expression], ...]
    dialect: str
    run_date: dt.date


@dataclass(frozen=True)
class DimensionValues:
    """lens_r of a query without measures: the distinct dimension values of `source`'s rows that pass `filters`."""

    source: Rows
    dimensions: tuple[tuple[str, exp.Expression], ...]
    filters: tuple[exp.Expression, ...] = ()


@dataclass(frozen=True)
class Final:
    """The answer: `columns` of lens_r, rows passing `having` (measure filters), ordered, limited.
    `as_of`: the tables read as of the run date (their CTEs come first)."""

    source: Combine | DimensionValues
    columns: tuple[str, ...]
    having: tuple[exp.Expression, ...] = ()
    order: tuple[tuple[str, str], ...] = ()   # (column, asc | desc)
    limit: int | None = None
    as_of: tuple[AsOf, ...] = ()


Plan = Union[Final, Combine, DimensionValues, Aggregate, CountFlags, DistinctValues, Rows]


# ----------------------------------------------------------------------------------------------
# Helpers the planner, the passes and the renderer share
# ----------------------------------------------------------------------------------------------


def and_(conditions: list[exp.Expression]) -> exp.Expression | None:
    return exp.and_(*conditions, copy=False) if conditions else None


def aggregate_expression(measure: Measure) -> exp.Expression:
    """The measure as one aggregate expression: COUNT(DISTINCT CASE WHEN c THEN v END), ... (a new AST)."""
    if measure.kind == "number":
        return measure.value.copy()
    value = measure.value.copy() if measure.value is not None else None
    if measure.exact:
        value = exp.cast(value, exp.DataType.build(SUM_DECIMAL, dialect=sql.TARGET_DIALECT))
    conditions = [c.copy() for c in measure.conditions]
    if conditions:
        then = value if value is not None else exp.Literal.number(1)
        value = exp.Case().when(and_(conditions), then, copy=False)
    if measure.kind == "count":
        return exp.Count(this=value if value is not None else exp.Star())
    if measure.kind == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[value]))
    if measure.kind == "count_distinct_approx":
        return exp.ApproxDistinct(this=value)
    if measure.exact:
        return exp.cast(exp.Sum(this=value), exp.DataType.build("double"))
    return {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[measure.kind](this=value)


def carried(alias: str, name: str) -> str:
    """The name a joined column has on the shared-scan rows that carry it (UnionAll)."""
    return f"{alias}__{name}"


def chain(rows: Rows) -> tuple[Rows, list[Join]]:
    """A left-deep join chain as its first rows and its joins, in join order."""
    joins: list[Join] = []
    while isinstance(rows, Join):
        joins.append(rows)
        rows = rows.left
    return rows, joins[::-1]


def walk(node: Plan) -> Iterator[Plan]:
    """Every node of the plan, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: Plan) -> tuple[Plan, ...]:
    if isinstance(node, Final):
        return (node.source,)
    if isinstance(node, Combine):
        return node.inputs
    if isinstance(node, (DimensionValues, Aggregate, DistinctValues, CountFlags, DistinctKeys)):
        return (node.source,)
    if isinstance(node, Join):
        return node.left, node.right
    if isinstance(node, UnionAll):
        return tuple(b.rows for b in node.branches)
    return ()


# ----------------------------------------------------------------------------------------------
# Printing
# ----------------------------------------------------------------------------------------------


def text(tree: exp.Expression | None) -> str:
    return "TRUE" if tree is None else sql.render(tree, pretty=False)


def _all(conditions: tuple[exp.Expression, ...]) -> str:
    return " AND ".join(text(c) for c in conditions)


def describe(node: Plan) -> tuple[str, list[str]]:
    """A node's one-line heading and its detail lines (not its children)."""
    if isinstance(node, Final):
        lines = [f"columns: {', '.join(node.columns)}"]
        lines += [f"as of: {a.name} = {a.view} where {a.column} < {a.end:%Y-%m-%d %H:%M:%S}" for a in node.as_of]
        lines += [f"having: {_all(node.having)}"] if node.having else []
        lines += [f"order by: {', '.join(f'{k} {d}' for k, d in node.order)}"] if node.order else []
        lines += [f"limit: {node.limit}"] if node.limit else []
        return "Final", lines
    if isinstance(node, Combine):
        how = "full outer join on the dimensions, null-safe" if node.dimensions else "cross join"
        lines = [f"d{i} = {d}" for i, d in enumerate(node.dimensions)]
        lines += [f"measures: {', '.join(node.measures)}"]
        lines += [f"derived {key} = {text(tree)}" for key, tree in node.derived]
        inputs = f"{len(node.inputs)} inputs, {how}" if len(node.inputs) > 1 else "1 input"
        return f"Combine {RESULT} ({inputs})", lines
    if isinstance(node, DimensionValues):
        lines = [f"{key} = {text(v)}" for key, v in node.dimensions]
        lines += [f"where: {_all(node.filters)}"] if node.filters else []
        return f"DimensionValues {RESULT} (distinct)", lines
    if isinstance(node, Aggregate):
        lines = [f"d{i} = {text(v)}" for i, v in enumerate(node.group_by)]
        lines += [f"where: {_all(node.filters)}"] if node.filters else []
        lines += [f"m{i} {m.key} = {text(aggregate_expression(m))}" for i, m in enumerate(node.measures)]
        return f"Aggregate {node.name} (measures of {', '.join(node.entities)})", lines
    if isinstance(node, CountFlags):
        lines = [f"m{i} {key} = COUNT_IF(f{i} AND v IS NOT NULL)" for i, key in enumerate(node.keys)]
        return f"CountFlags {node.name} (distinct counts of {', '.join(node.entities)})", lines
    if isinstance(node, DistinctValues):
        lines = [f"d{i} = {text(v)}" for i, v in enumerate(node.group_by)]
        lines += [f"v = {text(node.value)}"]
        lines += [f"f{i} = any({text(c)})" for i, c in enumerate(node.conditions)]
        lines += [f"where: {_all(node.filters)}"] if node.filters else []
        return f"DistinctValues {node.name} (one row per dimensions and value)", lines
    if isinstance(node, DistinctKeys):
        lines = [f"d{i} = {text(v)}" for i, v in enumerate(node.dimensions)]
        lines += [f"k{i} = {text(v)}" for i, v in enumerate(node.keys)]
        lines += [f"where: {_all(node.filters)}"] if node.filters else []
        return f"DistinctKeys {node.name} AS {KEYS}", lines
    if isinstance(node, Join):
        return f"Join {node.kind} {node.right.name} AS {node.alias} ON {text(node.on)}", []
    if isinstance(node, Scan):
        return f"Scan {node.name} AS {node.entity} (entity {node.entity}; reads {', '.join(node.tables)})", []
    if isinstance(node, SharedScan):
        rows = "tagged rows (lens_tag)" if node.tagged else "flagged rows (in<i>)"
        lines = [f"{'tag' if node.tagged else 'in'}{i} {node.entities[i]}: {text(node.predicates[i])}"
                 for i in node.reads]
        return (f"SharedScan {node.name} AS {SCAN} of {text(node.table)} "
                f"(reads {', '.join(node.tables)}; {len(node.columns)} columns, {rows})", lines)
    if isinstance(node, UnionAll):
        lines = [f"branch {i} carries {', '.join(f'{a}.{c}' for a, c in b.carried) or 'nothing'}"
                 for i, b in enumerate(node.branches)]
        return f"UnionAll {node.name} AS {SCAN} ({len(node.branches)} branches)", lines
    raise TypeError(f"not a plan node: {node!r}")


def format_plan(node: Plan, indent: str = "") -> str:
    """The plan as an indented tree: each node's heading, its details (`|`), then its children."""
    return "\n".join(_lines(node, indent))


def _lines(node: Plan, indent: str) -> Iterator[str]:
    heading, details = describe(node)
    yield indent + heading
    for line in details:
        yield f"{indent}  | {line}"
    for child in children(node):
        yield from _lines(child, indent + "  ")

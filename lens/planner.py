"""Query planning: a lens query -> one deterministic Spark SQL statement. Pure Python, no Spark.

Shape of the SQL (all CTEs):
  lens_t_<view>     a catalog table with a time column (the activity stream), as of the run date D:
                    only its rows with time < D+1 00:00 UTC (interface §5: "as of D" ignores later
                    activities); entity queries read it in place of the table
  lens_e_<entity>   the entity's sql.query, tables pointed at registered views
  lens_a_<entity>   for each entity that owns a requested measure: its measures aggregated at its
                    own grain, grouped by the query's dimensions, reached from it along relationships
                    (LEFT JOINs that never fan out). When a dimension or filter sits across a 1:N
                    hop, the entity's primary keys are first de-duplicated per dimension combination
                    (lens_k_<entity>), so each entity row is counted once per group.
  lens_s_<entity>   a shared scan: when several measure entities are filtered projections of one table
                    (activity-schema entities), the table is read once for all of them, each row
                    flagged (or, when they group differently, tagged) with the entities it belongs to;
                    their lens_a_ is then one aggregate whose measures are gated by those flags.
                    Entities that need a join the others do not are read in groups by the joins
                    they use (lens_s_<entity>_<k>) and put together again (lens_u_<entity>).
  lens_v_<entity>   several distinct counts of one value: one row per (dimensions, value) with a
                    flag per count, which lens_a_ then counts with COUNT_IF.
  lens_r            the aggregates combined: FULL OUTER JOIN on the dimension values (null-safe), or
                    a CROSS JOIN of single rows without dimensions; derived measures computed here.
then the final SELECT: requested members, measure filters (HAVING), ORDER BY, LIMIT.

Because every measure is aggregated before anything is joined to it, customer measures mixed with
order measures (fan-out) or two sibling 1:N entities (chasm trap) never double count.
"""
from __future__ import annotations

import datetime as dt
import heapq
import re
from dataclasses import dataclass
from typing import Callable, Mapping

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from lens import sql
from lens.errors import LensError
from lens.model import COUNT_TYPES, Edge, Member, Model
from lens.query_format import DATE_OPERATORS, Filter, FilterGroup, Query, parse_moment, resolve_date_range
from lens.shared_scan import ScanShape, scan_shape

NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
TRUTH = {"true": True, "false": False}
GRANULARITY_UNITS = {"day": "DAY", "week": "WEEK", "month": "MONTH", "quarter": "QUARTER", "year": "YEAR"}
RESULT = "lens_r"
SCAN = "lens_scan"   # alias of a shared scan in its aggregate
TAG = "lens_tag"     # which entity a shared-scan row stands for, when the entities group it differently


# A sum of a floating-point value (the seed casts its text amounts to double) is added up in this
# DECIMAL and returned as a double, so it comes out as the stored decimals would (5373.64, not
# 5373.639999999999) and does not depend on the order Spark adds the rows in. The same scale as
# gold/rfm's monetary (jobs.measures.EXACT_DECIMAL), so the two agree to the last digit.
SUM_DECIMAL = "DECIMAL(38, 9)"
FLOAT_TYPES = (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT)


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    columns: tuple[str, ...]   # output column names, `entity.member` (time dimensions: `.granularity`)
    tables: tuple[str, ...]    # catalog tables the SQL reads (model names): read off the SQL itself


@dataclass(frozen=True)
class _Dimension:
    key: str
    member: Member
    granularity: str | None = None


def compile_query(model: Model, query: Query, *, run_date: dt.date, views: Mapping[str, str],
                  as_of: Mapping[str, str] | None = None) -> CompiledQuery:
    """Compile `query` against `model`; `views` maps each catalog table name to a registered view.

    `as_of` maps catalog tables to their time column (the activity stream: activity_ts): the query
    reads only their rows before the day after the run date (lens_t_<view>)."""
    return _Planner(model, query, run_date, views, as_of or {}).compile()


def tables_read(sql_text: str, views: Mapping[str, str]) -> tuple[str, ...]:
    """The catalog tables (model names) whose views `sql_text` reads, in order of first reading."""
    by_view: dict[str, list[str]] = {}
    for table, view in views.items():
        by_view.setdefault(view.lower(), []).append(table)
    read = sql.table_names(sql.parse_spark(sql_text))
    unknown = [name for name in read if name not in by_view]
    if unknown:  # a planner bug, never a user mistake: every table is rewritten to a view
        raise AssertionError(f"compiled SQL reads {', '.join(unknown)}, which is neither a CTE nor a catalog view")
    return tuple(dict.fromkeys(t for name in read for t in by_view[name]))


def _and(conditions: list[exp.Expression]) -> exp.Expression | None:
    return exp.and_(*conditions, copy=False) if conditions else None


def _table(name: str, alias: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name), alias=exp.TableAlias(this=sql.quoted(alias)))


def _distinct_counts_of_one_value(aggregates: list[exp.Expression]) -> tuple[exp.Expression, list[exp.Expression]] | None:
    """(v, [c_1, c_2, ...]) when every aggregate is COUNT(DISTINCT [CASE WHEN c_i THEN] v [END]), at least
    two of them, all of the same v; else None."""
    if len(aggregates) < 2:
        return None
    value, conditions = None, []
    for aggregate in aggregates:
        distinct = aggregate.this if isinstance(aggregate, exp.Count) else None
        if not isinstance(distinct, exp.Distinct) or len(distinct.expressions) != 1:
            return None
        counted, condition = distinct.expressions[0], exp.true()
        if isinstance(counted, exp.Case):
            if counted.this is not None or counted.args.get("default") is not None or len(counted.args["ifs"]) != 1:
                return None
            condition, counted = counted.args["ifs"][0].this, counted.args["ifs"][0].args["true"]
        if value is not None and sql.render(counted, pretty=False) != sql.render(value, pretty=False):
            return None
        value = counted
        conditions.append(condition.copy())
    return value.copy(), conditions


def _carried(alias: str, name: str) -> str:
    """The name a joined column has on the rows that carry it (lens_u_)."""
    return f"{alias}__{name}"


def _moved_to_scan(aliases: list[str]) -> Callable[[exp.Expression], exp.Expression]:
    """References to a gated join's columns -> the same columns carried on the rows (lens_u_)."""
    def move(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.table in aliases:
            return sql.column(_carried(node.table, node.name), SCAN)
        return node

    return lambda tree: tree.transform(move)


def _ref(key: str) -> exp.Column:
    return exp.Column(this=sql.quoted(key))


class _Planner:
    def __init__(self, model: Model, query: Query, run_date: dt.date, views: Mapping[str, str],
                 as_of: Mapping[str, str]):
        self.model = model
        self.query = query
        self.run_date = run_date
        self.views = views
        self.where = f"query on {model.source}"
        self.ctes: list[tuple[str, exp.Expression]] = []
        self.entity_ctes: set[str] = set()
        self.shapes: dict[str, ScanShape | None] = {}
        self.column_types: dict[str, dict[str, exp.DataType]] = {}
        # catalog table -> what entity queries read instead: its view, or the view as of D (lens_t_)
        self.sources: dict[str, str] = dict(views)
        self.as_of_ctes: dict[str, exp.Select] = {}
        self.as_of_used: list[str] = []
        taken = {v.lower() for v in views.values()}
        for table, column in sorted(as_of.items()):
            if table not in views:
                continue
            name = f"lens_t_{re.sub(r'^lens_', '', views[table])}"
            while name.lower() in taken - set(self.as_of_ctes):
                name += "_"
            if name not in self.as_of_ctes:
                self.as_of_ctes[name] = self._as_of_scan(views[table], column)
            self.sources[table] = name

    def _as_of_scan(self, view: str, column: str) -> exp.Select:
        """The view's rows as of the run date: time < the next day's midnight (UTC)."""
        end = sql.timestamp_literal(dt.datetime.combine(self.run_date + dt.timedelta(days=1), dt.time()))
        return (exp.Select().select(exp.Star(), copy=False)
                .from_(exp.Table(this=exp.to_identifier(view, quoted=True)), copy=False)
                .where(exp.LT(this=sql.column(column), expression=end), copy=False))

    # ------------------------------------------------------------------ members and expressions

    def _member(self, key: str) -> Member:
        try:
            return self.model.member(key)
        except LensError as exc:
            raise LensError(f"{self.where}: {str(exc).split(': ', 1)[-1]}") from None

    def _spark(self, tree: exp.Expression) -> exp.Expression:
        return sql.with_spark_semantics(tree, dialect=self.model.dialect, run_date=self.run_date)

    def _value(self, member: Member) -> exp.Expression:
        """A field's or dimension's value, qualified by its entity's alias."""
        return self._spark(self.model.expression(member.key))

    def _zoned(self, value: exp.Expression) -> exp.Expression:
        if not self.query.timezone:
            return value
        return exp.Anonymous(this="FROM_UTC_TIMESTAMP", expressions=[value, sql.string_literal(self.query.timezone)])

    def _dimension_value(self, dim: _Dimension) -> exp.Expression:
        value = self._value(dim.member)
        if dim.granularity is None:
            return value
        unit = exp.var(GRANULARITY_UNITS[dim.granularity])
        return exp.cast(exp.TimestampTrunc(this=self._zoned(value), unit=unit), exp.DataType.build("date"))

    # ------------------------------------------------------------------ filters

    def _literal(self, value: str, value_type: str, where: str) -> exp.Expression:
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

    def _condition(self, node: Filter | FilterGroup,
                   resolve: Callable[[Filter], tuple[exp.Expression, str]]) -> exp.Expression:
        if isinstance(node, FilterGroup):
            parts = [self._condition(item, resolve) for item in node.items]
            joined = exp.and_(*parts, copy=False) if node.connective == "and" else exp.or_(*parts, copy=False)
            return exp.Paren(this=joined)
        value, value_type = resolve(node)
        where = f"{self.where}: filter {node.member} {node.operator}"
        op, values = node.operator, node.values
        if op in DATE_OPERATORS:
            return self._date_condition(self._zoned(value), op, values, where)
        if op == "set":
            return exp.not_(exp.Is(this=value, expression=exp.Null()))
        if op == "notSet":
            return exp.Is(this=value, expression=exp.Null())
        if op in ("contains", "notContains", "startsWith", "endsWith"):
            prefix = "" if op == "startsWith" else "%"
            suffix = "" if op == "endsWith" else "%"
            matches = [exp.ILike(this=value.copy(), expression=sql.like_pattern(v, prefix=prefix, suffix=suffix))
                       for v in values]
            condition = exp.Paren(this=exp.or_(*matches, copy=False))
            return self._or_null(exp.not_(condition), value) if op == "notContains" else condition
        literals = [self._literal(v, value_type, where) for v in values]
        if op in ("equals", "notEquals"):
            condition = (exp.EQ(this=value, expression=literals[0]) if len(literals) == 1
                         else exp.In(this=value, expressions=literals))
            return self._or_null(exp.not_(condition), value) if op == "notEquals" else condition
        comparison = {"gt": exp.GT, "gte": exp.GTE, "lt": exp.LT, "lte": exp.LTE}[op]
        return comparison(this=value, expression=literals[0])

    @staticmethod
    def _or_null(condition: exp.Expression, value: exp.Expression) -> exp.Expression:
        """Negative filters keep NULLs (a missing value is not equal to / does not contain v)."""
        return exp.Paren(this=exp.or_(condition, exp.Is(this=value.copy(), expression=exp.Null()), copy=False))

    def _date_condition(self, value: exp.Expression, op: str, values: tuple[str, ...], where: str) -> exp.Expression:
        if op in ("inDateRange", "notInDateRange"):
            start, stop = resolve_date_range(values, self.run_date, where)
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

    def _filter_members(self, node: Filter | FilterGroup) -> list[Member]:
        if isinstance(node, Filter):
            return [self._member(node.member)]
        return [m for item in node.items for m in self._filter_members(item)]

    def _dimension_resolver(self, entity: str | None = None) -> Callable[[Filter], tuple[exp.Expression, str]]:
        def resolve(node: Filter) -> tuple[exp.Expression, str]:
            member = self._member(node.member)
            if entity is not None and member.entity != entity:
                raise LensError(f"{self.where}: filter on {node.member}: expected a member of '{entity}'")
            return self._value(member), member.type

        return resolve

    # ------------------------------------------------------------------ measures

    def _columns_typed(self, entity: str) -> dict[str, exp.DataType]:
        """The entity's output columns whose type its sql.query shows (casts, literals, arithmetic)."""
        if entity not in self.column_types:
            query = self._entity_query(entity)
            known = {}
            for projection in query.selects if isinstance(query, exp.Select) else ():
                kind = projection.type
                if projection.alias_or_name and kind is not None and not kind.is_type(exp.DataType.Type.UNKNOWN):
                    known[projection.alias_or_name] = kind
            self.column_types[entity] = known
        return self.column_types[entity]

    def _is_float(self, entity: str, value: exp.Expression) -> bool:
        """Is `value` (over the entity's columns) a DOUBLE/FLOAT? Unknown column types: no."""
        known = self._columns_typed(entity)
        unknown = False

        def typed(node: exp.Expression) -> exp.Expression:
            nonlocal unknown
            if isinstance(node, exp.Column):
                if node.table != entity or node.name not in known:
                    unknown = True
                    return node
                return exp.cast(exp.Null(), known[node.name].copy())
            return node

        probe = value.copy().transform(typed)
        if unknown:
            return False
        kind = annotate_types(probe, dialect=sql.TARGET_DIALECT).type
        return kind is not None and kind.this in FLOAT_TYPES

    def _aggregate(self, member: Member, gate: exp.Expression | None = None) -> exp.Expression:
        """The measure's aggregate; `gate` restricts it to some rows (a shared scan's entity flag)."""
        tree = self.model.expression(member.key)
        if member.type == "number":
            return self._spark(tree)
        value = self._spark(tree) if tree is not None else None
        exact = member.type == "sum" and value is not None and self._is_float(member.entity, value)
        if exact:
            value = exp.cast(value, exp.DataType.build(SUM_DECIMAL, dialect=sql.TARGET_DIALECT))
        conditions = [self._spark(c.copy()) for c in self.model.filter_expressions.get(member.key, ())]
        conditions += [self._condition(f.structured, self._dimension_resolver(member.entity))
                       for f in member.filters if f.structured is not None]
        if gate is not None:
            conditions.append(gate)
        if conditions:
            then = value if value is not None else exp.Literal.number(1)
            value = exp.Case().when(_and(conditions), then, copy=False)
        if member.type == "count":
            return exp.Count(this=value if value is not None else exp.Star())
        if member.type == "count_distinct":
            return exp.Count(this=exp.Distinct(expressions=[value]))
        if member.type == "count_distinct_approx":
            return exp.ApproxDistinct(this=value)
        if exact:
            return exp.cast(exp.Sum(this=value), exp.DataType.build("double"))
        return {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[member.type](this=value)

    # ------------------------------------------------------------------ joins

    def _join_tree(self, root: str, needed: set[str]) -> list[Edge]:
        """Edges from `root` to every needed entity: fewest fan-out hops, then fewest hops, then by name."""
        best: dict[str, tuple[int, int, tuple[str, ...]]] = {root: (0, 0, (root,))}
        parent: dict[str, Edge] = {}
        heap = [(0, 0, (root,), root)]
        while heap:
            fans, hops, path, node = heapq.heappop(heap)
            if best.get(node) != (fans, hops, path):
                continue
            for edge in self.model.edges[node]:
                cost = (fans + edge.fans_out, hops + 1, (*path, edge.target))
                if edge.target not in best or cost < best[edge.target]:
                    best[edge.target] = cost
                    parent[edge.target] = edge
                    heapq.heappush(heap, (*cost, edge.target))
        edges: dict[str, Edge] = {}
        for target in sorted(needed - {root}):
            if target not in best:
                raise LensError(f"{self.where}: entity '{target}' cannot be reached from '{root}' "
                                "along relationships")
            node = target
            while node != root:
                edges[node] = parent[node]
                node = parent[node].source
        return sorted(edges.values(), key=lambda e: (best[e.target][1], e.target))

    def _entity_query(self, entity: str) -> exp.Expression:
        definition = self.model.entities[entity]
        for table in definition.tables:
            if table not in self.views:
                raise LensError(f"{self.model.where(entity=entity)}: sql.query reads table {table}, which "
                                "has no catalog mapping (lens.catalog in the configuration)")
            if self.sources[table] in self.as_of_ctes and self.sources[table] not in self.as_of_used:
                self.as_of_used.append(self.sources[table])
        return self._spark(sql.rewrite_tables(definition.query, self.sources))

    def _entity_cte(self, entity: str) -> str:
        name = f"lens_e_{entity}"
        if entity not in self.entity_ctes:
            self.ctes.append((name, self._entity_query(entity)))
            self.entity_ctes.add(entity)
        return name

    def _from(self, root: str, edges: list[Edge]) -> exp.Select:
        select = exp.Select().from_(_table(self._entity_cte(root), root), copy=False)
        for edge in edges:
            source = self._value(self.model.entities[edge.source].members[edge.source_member])
            target = self._value(self.model.entities[edge.target].members[edge.target_member])
            select = select.join(_table(self._entity_cte(edge.target), edge.target),
                                 on=exp.EQ(this=source, expression=target), join_type="left", copy=False)
        return select

    # ------------------------------------------------------------------ the query

    def _validate(self) -> tuple[list[_Dimension], list[Member], list, list]:
        q = self.query
        measures = [self._member(k) for k in q.measures]
        for m in measures:
            if m.kind != "measure":
                raise LensError(f"{self.where}: {m.key} is a {m.kind}; list it under dimensions")
        dims = []
        for key in q.dimensions:
            member = self._member(key)
            if member.kind == "measure":
                raise LensError(f"{self.where}: {key} is a measure; list it under measures")
            dims.append(_Dimension(key, member))
        dim_filters: list = []
        for td in q.time_dimensions:
            member = self._member(td.member)
            if member.kind == "measure" or member.type not in ("date", "time"):
                raise LensError(f"{self.where}: time dimension {td.member} must be a date or time field/dimension")
            if td.granularity:
                dims.append(_Dimension(td.key, member, td.granularity))
            if td.date_range:
                dim_filters.append(Filter(td.member, "inDateRange", td.date_range))
        keys = [d.key for d in dims] + [m.key for m in measures]
        repeated = next((k for k in keys if keys.count(k) > 1), None)
        if repeated:
            raise LensError(f"{self.where}: {repeated} is asked for twice")
        measure_filters = []
        for node in q.filters:
            kinds = {m.kind == "measure" for m in self._filter_members(node)}
            if kinds == {True, False}:
                raise LensError(f"{self.where}: a filter group mixes measures and dimensions "
                                "(measure filters apply after aggregation; split the group)")
            (measure_filters if kinds == {True} else dim_filters).append(node)
        for member, _ in q.order:
            if member not in keys:
                raise LensError(f"{self.where}: order by {member}: only members the query returns can order it")
        return dims, measures, dim_filters, measure_filters

    def compile(self) -> CompiledQuery:
        dims, measures, dim_filters, measure_filters = self._validate()
        filter_measures = [m for node in measure_filters for m in self._filter_members(node)]
        wanted = list(dict.fromkeys([m.key for m in measures] + [m.key for m in filter_measures]))
        bases = list(dict.fromkeys(b for k in wanted for b in self.model.derived.get(k, (k,))))
        groups: dict[str, list[str]] = {}
        for key in bases:
            groups.setdefault(key.split(".")[0], []).append(key)
        filter_entities = {m.entity for node in dim_filters for m in self._filter_members(node)}
        needed = {d.member.entity for d in dims} | filter_entities
        conditions = [self._condition(node, self._dimension_resolver()) for node in dim_filters]
        if groups:
            result = self._combine(dims, groups, needed, conditions, wanted)
        else:
            root = dims[0].member.entity if dims else sorted(filter_entities)[0]
            select = self._from(root, self._join_tree(root, needed | {root}))
            values = [self._dimension_value(d) for d in dims]
            select = select.select(*[exp.alias_(v, d.key, quoted=True) for v, d in zip(values, dims)], copy=False)
            result = select.where(_and(conditions), copy=False) if conditions else select
            result = result.group_by(*[v.copy() for v in values], copy=False)
        self.ctes.append((RESULT, result))
        return self._final(dims, measures, measure_filters)

    def _group(self, entity: str, dims: list[_Dimension], needed: set[str], conditions: list[exp.Expression],
               keys: list[str]) -> str:
        """lens_a_<entity>: the entity's measures at its own grain, grouped by the query's dimensions."""
        edges = self._join_tree(entity, needed | {entity})
        values = [self._dimension_value(d) for d in dims]
        name = f"lens_a_{entity}"
        if not any(e.fans_out for e in edges):
            where = _and([c.copy() for c in conditions]) if conditions else None
            return self._aggregate_cte(name, self._from(entity, edges), values,
                                       [self._aggregate(self._member(k)) for k in keys], where)
        primary = self.model.entities[entity].primary_key()
        if not primary:
            raise LensError(f"{self.model.where(entity=entity)}: its measures are asked across a one-to-many "
                            "relationship, which needs a primary key on the entity (a field with primary: true) "
                            "to count each row once")
        keyset = self._from(entity, edges).select(
            *[exp.alias_(v, f"d{i}", quoted=True) for i, v in enumerate(values)],
            *[exp.alias_(self._value(p), f"k{i}", quoted=True) for i, p in enumerate(primary)], copy=False,
        ).distinct(copy=False)
        if conditions:
            keyset = keyset.where(_and([c.copy() for c in conditions]), copy=False)
        keys_name = f"lens_k_{entity}"
        self.ctes.append((keys_name, keyset))
        on = _and([exp.EQ(this=sql.column(f"k{i}", "keys"), expression=self._value(p)) for i, p in enumerate(primary)])
        select = exp.Select().from_(_table(keys_name, "keys"), copy=False).join(
            _table(self._entity_cte(entity), entity), on=on, join_type="inner", copy=False)
        dim_refs = [sql.column(f"d{i}", "keys") for i in range(len(values))]
        return self._aggregate_cte(name, select, dim_refs, [self._aggregate(self._member(k)) for k in keys], None)

    # ------------------------------------------------------------------ shared scans

    def _shape(self, entity: str) -> ScanShape | None:
        if entity not in self.shapes:  # asked when batching and again when building the batch
            self.shapes[entity] = scan_shape(self._entity_query(entity))
        return self.shapes[entity]

    def _scan_batches(self, groups: dict[str, list[str]], needed: set[str]) -> list[list[str]]:
        """The measure entities in batches that can share one scan (in first-asked order).

        A batch holds entities that are filtered projections of the same table, whose measures are
        plain aggregations (a `number` measure is a whole expression of aggregates that cannot be
        gated row by row) and whose dimensions are reached without a one-to-many hop.
        """
        sources: dict[str, str] = {}
        for entity, keys in groups.items():
            if any(self._member(k).type == "number" for k in keys):
                continue
            if any(e.fans_out for e in self._join_tree(entity, needed | {entity})):
                continue
            shape = self._shape(entity)
            if shape is not None:
                sources[entity] = shape.source
        batches: list[list[str]] = []
        for entity in groups:
            if any(entity in b for b in batches):
                continue
            source = sources.get(entity)
            batches.append([e for e in groups if source is not None and sources.get(e) == source] or [entity])
        return batches

    def _shared_group(self, batch: list[str], groups: dict[str, list[str]], dims: list[_Dimension],
                      needed: set[str], conditions: list[exp.Expression]) -> str | None:
        """One scan and one aggregate for the batch's measures (lens_s_/lens_a_ of its first entity).

        Each entity is a context: its members are the scan's columns, the entities it reaches are
        joins (shared when two contexts join the same way). When every context has the same
        dimensions, filters and joins, a row counts for each entity whose predicate it meets (flags);
        otherwise each row is repeated once per entity it belongs to (a tag) and the dimensions and
        filters are chosen by the tag. A join only some contexts need is made on their rows alone
        (read apart, see _rows_with_joins), so that no context sees a row another context's join
        multiplied. None when an expression cannot be placed on the scan (an unqualified column):
        the caller then aggregates the entities apart.
        """
        shapes = [self._shape(entity) for entity in batch]
        scan_columns: dict[str, str] = {}           # expression SQL -> scan column
        projections: list[exp.Expression] = []
        contexts: list[dict[str, str]] = []         # per entity: its column name -> scan column
        for shape in shapes:
            names = {}
            for name, value in shape.columns.items():
                text = sql.render(value, pretty=False)
                if text not in scan_columns:
                    scan_columns[text] = f"c{len(scan_columns)}"
                    projections.append(exp.alias_(value.copy(), scan_columns[text], quoted=True))
                names[name] = scan_columns[text]
            contexts.append(names)

        joins: dict[tuple[str, str, str], tuple[str, str, exp.Expression]] = {}  # key -> alias, target, ON
        users: dict[str, set[int]] = {}
        placed: list[Callable[[exp.Expression], exp.Expression | None]] = []
        for i, entity in enumerate(batch):
            aliases = {entity: SCAN}
            place = self._placer(entity, contexts[i], aliases)
            for edge in self._join_tree(entity, needed | {entity}):
                source = place(self._value(self.model.entities[edge.source].members[edge.source_member]))
                if source is None:
                    return None
                target = self._value(self.model.entities[edge.target].members[edge.target_member])
                key = (sql.render(source, pretty=False), edge.target, sql.render(target, pretty=False))
                if key not in joins:
                    alias = f"lens_j{len(joins)}"
                    target = target.transform(lambda n, a=alias, t=edge.target: sql.column(n.name, a)
                                              if isinstance(n, exp.Column) and n.table == t else n)
                    joins[key] = (alias, edge.target, exp.EQ(this=source, expression=target))
                aliases[edge.target] = joins[key][0]
                users.setdefault(joins[key][0], set()).add(i)
            placed.append(place)

        dim_values = [[place(self._dimension_value(d)) for d in dims] for place in placed]
        filters = [[place(c.copy()) for c in conditions] for place in placed]
        if any(v is None for values in dim_values + filters for v in values):
            return None
        as_text = [tuple(sql.render(v, pretty=False) for v in values + conds)
                   for values, conds in zip(dim_values, filters)]
        tagged = len(set(as_text)) > 1 or any(len(u) < len(batch) for u in users.values())
        if tagged:
            gates = [exp.EQ(this=sql.column(TAG, SCAN), expression=exp.Literal.number(i)) for i in range(len(batch))]
        else:
            gates = [sql.column(f"in{i}", SCAN) for i in range(len(batch))]
        aggregates = [placed[i](self._aggregate(self._member(key), gates[i]))
                      for i, entity in enumerate(batch) for key in groups[entity]]
        if any(a is None for a in aggregates):
            return None

        predicates = [s.predicate.copy() if s.predicate is not None else exp.true() for s in shapes]

        def scan_of(entities: list[int]) -> exp.Select:
            """One read of the table for these entities' rows, flagged or tagged with them."""
            scan = exp.Select().from_(shapes[0].table.copy(), copy=False).select(*[p.copy() for p in projections],
                                                                                copy=False)
            if tagged and len(entities) == 1:
                scan = scan.select(exp.alias_(exp.Literal.number(entities[0]), TAG, quoted=True), copy=False)
            elif tagged:
                members = [exp.If(this=predicates[i].copy(), true=exp.Literal.number(i), false=exp.Null()) for i in entities]
                tags = exp.Explode(this=exp.Anonymous(this="ARRAY_COMPACT", expressions=[exp.Array(expressions=members)]))
                scan = scan.select(exp.alias_(tags, TAG, quoted=True), copy=False)
            else:
                scan = scan.select(*[exp.alias_(exp.Coalesce(this=predicates[i].copy(), expressions=[exp.false()]),
                                                f"in{i}", quoted=True) for i in entities], copy=False)
            if all(shapes[i].predicate is not None for i in entities):
                scan = scan.where(exp.or_(*[predicates[i].copy() for i in entities], copy=False), copy=False)
            return scan

        def by_tag(values: list[exp.Expression]) -> exp.Expression:
            if len({sql.render(v, pretty=False) for v in values}) == 1:
                return values[0].copy()
            case = exp.Case(this=sql.column(TAG, SCAN))
            for i, v in enumerate(values):
                case = case.when(exp.Literal.number(i), v.copy(), copy=False)
            return case

        group_values = [by_tag([values[d] for values in dim_values]) for d in range(len(dims))]
        where = by_tag([_and(conds) for conds in filters]) if conditions else None
        by_alias = {alias: (target, on) for alias, target, on in joins.values()}
        gated = [alias for alias in by_alias if len(users[alias]) < len(batch)]
        # Joins from the scan itself that only some entities need are made on those entities' rows
        # alone (lens_u_); any other join is made after, a gated one gated in its ON clause.
        on_scan = [a for a in gated if all(c.table == SCAN for c in by_alias[a][1].this.find_all(exp.Column))]
        after = [a for a in by_alias if a not in on_scan]
        if on_scan:
            later = [by_alias[a][1] for a in after]
            rows = self._rows_with_joins(batch[0], scan_of, len(batch), by_alias, users, on_scan,
                                         [*group_values, *aggregates, *([where] if where else []), *later])
            moved = _moved_to_scan(on_scan)
            group_values, aggregates = [moved(v) for v in group_values], [moved(a) for a in aggregates]
            where = moved(where) if where is not None else None
            by_alias.update({a: (by_alias[a][0], moved(by_alias[a][1])) for a in after})
        else:
            rows = f"lens_s_{batch[0]}"
            self.ctes.append((rows, scan_of(list(range(len(batch))))))
        select = exp.Select().from_(_table(rows, SCAN), copy=False)
        for alias in after:
            target, on = by_alias[alias]
            if alias in gated:
                used_by = exp.In(this=sql.column(TAG, SCAN), expressions=[exp.Literal.number(i) for i in sorted(users[alias])])
                on = exp.and_(used_by, on.copy(), copy=False)
            select = select.join(_table(self._entity_cte(target), alias), on=on.copy(), join_type="left", copy=False)
        return self._aggregate_cte(f"lens_a_{batch[0]}", select, group_values, aggregates, where)

    def _rows_with_joins(self, first: str, scan_of: Callable[[list[int]], exp.Select], entities: int,
                         by_alias: dict, users: dict[str, set[int]], aliases: list[str],
                         expressions: list[exp.Expression]) -> str:
        """The rows of the scan with the columns the aggregate reads from `aliases`, joins from the
        scan that only some entities need. The entities are read in groups by the joins they use
        (one read of the table per group, UNION ALL), and each group goes through its joins and no
        other: a row is never shuffled for a join its entity does not use."""
        columns = sorted({(c.table, c.name) for e in expressions for c in e.find_all(exp.Column) if c.table in aliases})
        by_joins: dict[tuple[str, ...], list[int]] = {}
        for tag in range(entities):
            by_joins.setdefault(tuple(a for a in aliases if tag in users[a]), []).append(tag)
        union = None
        for k, (used, tags) in enumerate(by_joins.items()):
            scan_name = f"lens_s_{first}_{k}"
            self.ctes.append((scan_name, scan_of(tags)))
            branch = exp.Select().from_(_table(scan_name, SCAN), copy=False).select(
                exp.Column(this=exp.Star(), table=sql.quoted(SCAN)), copy=False)
            for alias in used:
                target, on = by_alias[alias]
                branch = branch.join(_table(self._entity_cte(target), alias), on=on.copy(), join_type="left", copy=False)
            branch = branch.select(*[exp.alias_(sql.column(name, alias) if alias in used else exp.Null(),
                                                _carried(alias, name), quoted=True) for alias, name in columns], copy=False)
            union = branch if union is None else exp.union(union, branch, distinct=False, copy=False)
        name = f"lens_u_{first}"
        self.ctes.append((name, union))
        return name

    def _aggregate_cte(self, name: str, source: exp.Select, values: list[exp.Expression],
                       aggregates: list[exp.Expression], where: exp.Expression | None) -> str:
        """`name` := the aggregates (m0, m1, ...) of `source`'s rows, grouped by `values` (d0, d1, ...).

        Several COUNT(DISTINCT CASE WHEN c_i THEN v END) of one value v (orders placed / rejected /
        invoiced, orders this month / this year) make Spark copy every row once per count (Expand).
        They are counted in two steps instead: one row per (dimensions, v) with a flag per count
        (was c_i true on any of its rows), then COUNT_IF per flag over the non-NULL v -- one pass
        over the rows.
        """
        dims = [exp.alias_(v, f"d{i}", quoted=True) for i, v in enumerate(values)]
        split = _distinct_counts_of_one_value(aggregates)
        if split is None:
            select = source.select(*dims, *[exp.alias_(a, f"m{i}", quoted=True) for i, a in enumerate(aggregates)],
                                   copy=False)
        else:
            value, conditions = split
            flags = [c if c == exp.true() else exp.Max(this=exp.Coalesce(this=c, expressions=[exp.false()]))
                     for c in conditions]
            select = source.select(*dims, exp.alias_(value, "v", quoted=True),
                                   *[exp.alias_(f, f"f{i}", quoted=True) for i, f in enumerate(flags)], copy=False)
            values = [*values, value]
        if where is not None:
            select = select.where(where, copy=False)
        if values:
            select = select.group_by(*[v.copy() for v in values], copy=False)
        if split is None:
            self.ctes.append((name, select))
            return name
        per_value = name.replace("lens_a_", "lens_v_", 1)
        counted = exp.not_(exp.Is(this=sql.column("v"), expression=exp.Null()))  # COUNT(DISTINCT) skips NULL
        self.ctes.append((per_value, select))
        counts = exp.Select().from_(per_value, copy=False).select(
            *[sql.column(f"d{i}") for i in range(len(dims))],
            *[exp.alias_(exp.CountIf(this=exp.and_(sql.column(f"f{i}"), counted.copy(), copy=False)), f"m{i}",
                         quoted=True) for i in range(len(flags))],
            copy=False)
        if dims:
            counts = counts.group_by(*[sql.column(f"d{i}") for i in range(len(dims))], copy=False)
        self.ctes.append((name, counts))
        return name

    @staticmethod
    def _placer(root: str, columns: dict[str, str],
                aliases: dict[str, str]) -> Callable[[exp.Expression], exp.Expression | None]:
        """Moves an expression over entities onto a shared scan: `root`'s members become scan columns,
        joined entities their join aliases (filled in as the joins are made); None if a column has no place."""
        def place(tree: exp.Expression) -> exp.Expression | None:
            lost = False

            def move(node: exp.Expression) -> exp.Expression:
                nonlocal lost
                if not isinstance(node, exp.Column):
                    return node
                if node.table == root and node.name in columns:
                    return sql.column(columns[node.name], SCAN)
                if node.table in aliases and node.table != root:
                    return sql.column(node.name, aliases[node.table])
                if node.table != SCAN:
                    lost = True
                return node

            moved = tree.transform(move)
            return None if lost else moved

        return place

    def _combine(self, dims: list[_Dimension], groups: dict[str, list[str]], needed: set[str],
                 conditions: list[exp.Expression], wanted: list[str]) -> exp.Select:
        names = []   # (aggregate CTE, the entities whose measures it holds)
        for batch in self._scan_batches(groups, needed):
            shared = self._shared_group(batch, groups, dims, needed, conditions) if len(batch) > 1 else None
            if shared is not None:
                names.append((shared, batch))
            else:
                names += [(self._group(entity, dims, needed, conditions, groups[entity]), [entity]) for entity in batch]
        combined = len(names) > 1
        aliases = [f"a{i}" for i in range(len(names))]
        select = exp.Select().from_(_table(names[0][0], aliases[0]), copy=False)
        for j in range(1, len(names)):
            if not dims:
                select = select.join(_table(names[j][0], aliases[j]), join_type="cross", copy=False)
                continue
            on = _and([exp.NullSafeEQ(this=self._coalesced(aliases[:j], f"d{i}"), expression=sql.column(f"d{i}", aliases[j]))
                       for i in range(len(dims))])
            select = select.join(_table(names[j][0], aliases[j]), on=on, join_type="full outer", copy=False)
        outputs: dict[str, exp.Expression] = {}
        for alias, (_, batch) in zip(aliases, names):
            for i, key in enumerate(k for entity in batch for k in groups[entity]):
                value: exp.Expression = sql.column(f"m{i}", alias)
                if combined and self._member(key).type in COUNT_TYPES:
                    # a group one entity has no rows for counts zero of it, not NULL
                    value = exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
                outputs[key] = value
        for key in wanted:
            if key in self.model.derived:
                outputs[key] = self._derived(key, outputs)
        projections = [exp.alias_(self._coalesced(aliases, f"d{i}"), d.key, quoted=True) for i, d in enumerate(dims)]
        projections += [exp.alias_(outputs[k], k, quoted=True) for k in wanted]
        return select.select(*projections, copy=False)

    def _derived(self, key: str, outputs: dict[str, exp.Expression]) -> exp.Expression:
        def replace(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Column) and not node.table and node.name in outputs:
                value = outputs[node.name].copy()
                if self._member(node.name).type in COUNT_TYPES:
                    # typed, so that sqlglot keeps Trino's integer division of counts
                    value = exp.cast(value, exp.DataType.build("bigint"))
                return value
            return node

        return self._spark(self.model.expression(key).transform(replace))

    @staticmethod
    def _coalesced(aliases: list[str], column: str) -> exp.Expression:
        refs = [sql.column(column, a) for a in aliases]
        return refs[0] if len(refs) == 1 else exp.Coalesce(this=refs[0], expressions=refs[1:])

    def _final(self, dims: list[_Dimension], measures: list[Member], measure_filters: list) -> CompiledQuery:
        columns = [d.key for d in dims] + [m.key for m in measures]
        select = exp.Select().select(*[_ref(c) for c in columns], copy=False).from_(RESULT, copy=False)
        having = [self._condition(node, lambda f: (_ref(f.member), "number")) for node in measure_filters]
        if having:
            select = select.where(_and(having), copy=False)
        order = list(self.query.order)
        if order or self.query.limit:
            # ties broken by the remaining dimensions, so a limited result is the same on every run
            order += [(d.key, "asc") for d in dims if d.key not in dict(order)]
        if order:
            select = select.order_by(*[exp.Ordered(this=_ref(k), desc=d == "desc") for k, d in order], copy=False)
        if self.query.limit:
            select = select.limit(self.query.limit, copy=False)
        # the as-of reads first: every entity query and shared scan reads them
        for name, body in [*((n, self.as_of_ctes[n]) for n in self.as_of_used), *self.ctes]:
            select = select.with_(name, as_=body, copy=False)
        text = sql.render(select)
        return CompiledQuery(sql=text, columns=tuple(columns), tables=tables_read(text, self.views))

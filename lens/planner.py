"""Query planning: a lens query -> a logical plan -> optimisation passes -> one Spark SQL statement.

    plan_query(model, query, ...)  -> lens.plan.Final   the logical plan (lens.plan lists its steps)
    lens.passes.optimise(plan, passes)                   shared_scan, distinct_split (each switchable)
    lens.render.render(plan)       -> str                Spark SQL, every step a CTE

`compile_query` does all three; `explain(compiled)` (also `compiled.explain`) prints the plan after
the passes and what each pass did. Pure Python, no Spark.

The plan aggregates every measure at its own entity's grain before anything is joined to it
(lens_a_<entity>), grouped by the query's dimensions reached along relationships (LEFT JOINs that
never fan out; across a 1:N hop the entity's primary keys are first made distinct per dimension
combination, lens_k_<entity>), then combines the aggregates (lens_r). So customer measures mixed
with order measures (fan-out) or two sibling 1:N entities (chasm trap) never double count.
"""
from __future__ import annotations

import datetime as dt
import heapq
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from lens import conditions, sql
from lens.errors import LensError
from lens.model import COUNT_TYPES, Edge, Member, Model
from lens.passes import DEFAULT_PASSES, PASSES, REGISTRY, Fired, check_passes, optimise
from lens.plan import (KEYS, SUM_DECIMAL, Aggregate, AsOf, Combine, DimensionValues, DistinctKeys, Final,  # noqa: F401
                       Join, Measure, Rows, Scan, and_, format_plan)
from lens.query_format import Filter, FilterGroup, Query
from lens.render import render

GRANULARITY_UNITS = {"day": "DAY", "week": "WEEK", "month": "MONTH", "quarter": "QUARTER", "year": "YEAR"}
FLOAT_TYPES = (exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT)


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    columns: tuple[str, ...]   # output column names, `entity.member` (time dimensions: `.granularity`)
    tables: tuple[str, ...]    # catalog tables the SQL reads (model names): read off the SQL itself
    plan: Final | None = field(default=None, repr=False, compare=False)   # the logical plan after the passes
    passes: tuple[str, ...] = ()   # the passes that were on, in the order they ran
    fired: tuple[Fired, ...] = ()  # what each pass that fired did

    @property
    def explain(self) -> str:
        """The plan after the passes and which passes fired, as text (see `explain`)."""
        return explain(self)


def plan_query(model: Model, query: Query, *, run_date: dt.date, views: Mapping[str, str],
               as_of: Mapping[str, str] | None = None) -> Final:
    """The logical plan of `query` against `model`, before any optimisation pass."""
    return _Builder(model, query, run_date, views, as_of or {}).plan()


def compile_query(model: Model, query: Query, *, run_date: dt.date, views: Mapping[str, str],
                  as_of: Mapping[str, str] | None = None, passes: Iterable[str] = DEFAULT_PASSES) -> CompiledQuery:
    """Compile `query` against `model`; `views` maps each catalog table name to a registered view.

    `as_of` maps catalog tables to their time column (the activity stream: activity_ts): the query
    reads only their rows before the day after the run date (lens_t_<view>). `passes` names the
    optimisation passes to run (default: all of lens.passes.PASSES; `()` for the plain plan)."""
    enabled = check_passes(passes)
    plan, fired = optimise(plan_query(model, query, run_date=run_date, views=views, as_of=as_of), enabled)
    text = render(plan)
    return CompiledQuery(sql=text, columns=plan.columns, tables=tables_read(text, views), plan=plan,
                         passes=enabled, fired=fired)


def explain(compiled: CompiledQuery) -> str:
    """Which passes fired (and what they did), then the logical plan after the passes, as text."""
    lines = ["passes:"]
    for name in PASSES:
        notes = [f.detail for f in compiled.fired if f.name == name]
        if name not in compiled.passes:
            lines.append(f"  {name}: off")
        elif notes:
            lines += [f"  {name}: {note}" for note in notes]
        else:
            lines.append(f"  {name}: did not fire ({REGISTRY[name].idle})")
    lines.append("plan after the passes:")
    lines.append(format_plan(compiled.plan, "  ") if compiled.plan is not None else "  (not recorded)")
    return "\n".join(lines)


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


@dataclass(frozen=True)
class _Dimension:
    key: str
    member: Member
    granularity: str | None = None


def _ref(key: str) -> exp.Column:
    return exp.Column(this=sql.quoted(key))


class _Builder:
    """Builds the logical plan of one query: members resolved, filters typed, joins chosen."""

    def __init__(self, model: Model, query: Query, run_date: dt.date, views: Mapping[str, str],
                 as_of: Mapping[str, str]):
        self.model = model
        self.query = query
        self.run_date = run_date
        self.views = views
        self.where = f"query on {model.source}"
        self.scans: dict[str, Scan] = {}
        self.column_types: dict[str, dict[str, exp.DataType]] = {}
        # catalog table -> what entity queries read instead: its view, or the view as of D (lens_t_)
        self.sources: dict[str, str] = dict(views)
        self.as_of_reads: dict[str, AsOf] = {}
        self.as_of_used: list[str] = []
        end = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
        taken = {v.lower() for v in views.values()}
        for table, column in sorted(as_of.items()):
            if table not in views:
                continue
            name = f"lens_t_{re.sub(r'^lens_', '', views[table])}"
            while name.lower() in taken - set(self.as_of_reads):
                name += "_"
            if name not in self.as_of_reads:
                self.as_of_reads[name] = AsOf(name=name, view=views[table], column=column, end=end)
            self.sources[table] = name

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

    def _dimension_value(self, dim: _Dimension) -> exp.Expression:
        value = self._value(dim.member)
        if dim.granularity is None:
            return value
        unit = exp.var(GRANULARITY_UNITS[dim.granularity])
        zoned = conditions.zoned(value, self.query.timezone)
        return exp.cast(exp.TimestampTrunc(this=zoned, unit=unit), exp.DataType.build("date"))

    def _condition(self, node: Filter | FilterGroup, resolve: conditions.Resolve) -> exp.Expression:
        return conditions.condition(node, resolve, where=self.where, run_date=self.run_date,
                                    timezone=self.query.timezone)

    def _filter_members(self, node: Filter | FilterGroup) -> list[Member]:
        if isinstance(node, Filter):
            return [self._member(node.member)]
        return [m for item in node.items for m in self._filter_members(item)]

    def _dimension_resolver(self, entity: str | None = None) -> conditions.Resolve:
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
            query = self._scan(entity).query
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

    def _measure(self, member: Member) -> Measure:
        """The measure's aggregate over its entity's rows (qualified by the entity's name)."""
        tree = self.model.expression(member.key)
        if member.type == "number":
            return Measure(key=member.key, kind="number", value=self._spark(tree))
        value = self._spark(tree) if tree is not None else None
        exact = member.type == "sum" and value is not None and self._is_float(member.entity, value)
        filters = [self._spark(c.copy()) for c in self.model.filter_expressions.get(member.key, ())]
        filters += [self._condition(f.structured, self._dimension_resolver(member.entity))
                    for f in member.filters if f.structured is not None]
        return Measure(key=member.key, kind=member.type, value=value, conditions=tuple(filters), exact=exact)

    # ------------------------------------------------------------------ entities and joins

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

    def _scan(self, entity: str) -> Scan:
        """The entity's rows: its sql.query with each catalog table pointed at its view (or as-of read)."""
        if entity not in self.scans:
            definition = self.model.entities[entity]
            for table in definition.tables:
                if table not in self.views:
                    raise LensError(f"{self.model.where(entity=entity)}: sql.query reads table {table}, which "
                                    "has no catalog mapping (lens.catalog in the configuration)")
                if self.sources[table] in self.as_of_reads and self.sources[table] not in self.as_of_used:
                    self.as_of_used.append(self.sources[table])
            query = self._spark(sql.rewrite_tables(definition.query, self.sources))
            self.scans[entity] = Scan(entity=entity, query=query, tables=tuple(definition.tables))
        return self.scans[entity]

    def _rows(self, root: str, edges: list[Edge]) -> Rows:
        """The root entity's rows LEFT JOINed along `edges`, each entity under its own name."""
        rows: Rows = self._scan(root)
        for edge in edges:
            source = self._value(self.model.entities[edge.source].members[edge.source_member])
            target = self._value(self.model.entities[edge.target].members[edge.target_member])
            rows = Join(left=rows, right=self._scan(edge.target), alias=edge.target,
                        on=exp.EQ(this=source, expression=target))
        return rows

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

    def plan(self) -> Final:
        dims, measures, dim_filters, measure_filters = self._validate()
        filter_measures = [m for node in measure_filters for m in self._filter_members(node)]
        wanted = list(dict.fromkeys([m.key for m in measures] + [m.key for m in filter_measures]))
        bases = list(dict.fromkeys(b for k in wanted for b in self.model.derived.get(k, (k,))))
        groups: dict[str, list[str]] = {}
        for key in bases:
            groups.setdefault(key.split(".")[0], []).append(key)
        filter_entities = {m.entity for node in dim_filters for m in self._filter_members(node)}
        needed = {d.member.entity for d in dims} | filter_entities
        where = tuple(self._condition(node, self._dimension_resolver()) for node in dim_filters)
        result: Combine | DimensionValues
        if groups:
            inputs = tuple(self._aggregate(entity, dims, needed, where, keys) for entity, keys in groups.items())
            result = Combine(inputs=inputs, dimensions=tuple(d.key for d in dims), measures=tuple(wanted),
                             counts=tuple(k for k in bases if self._member(k).type in COUNT_TYPES),
                             derived=tuple((k, self.model.expression(k)) for k in wanted if k in self.model.derived),
                             dialect=self.model.dialect, run_date=self.run_date)
        else:
            root = dims[0].member.entity if dims else sorted(filter_entities)[0]
            rows = self._rows(root, self._join_tree(root, needed | {root}))
            result = DimensionValues(source=rows, dimensions=tuple((d.key, self._dimension_value(d)) for d in dims),
                                     filters=where)
        having = tuple(self._condition(node, lambda f: (_ref(f.member), "number")) for node in measure_filters)
        order = list(self.query.order)
        if order or self.query.limit:
            # ties broken by the remaining dimensions, so a limited result is the same on every run
            order += [(d.key, "asc") for d in dims if d.key not in dict(order)]
        return Final(source=result, columns=tuple([d.key for d in dims] + [m.key for m in measures]), having=having,
                     order=tuple(order), limit=self.query.limit,
                     as_of=tuple(self.as_of_reads[name] for name in self.as_of_used))

    def _aggregate(self, entity: str, dims: list[_Dimension], needed: set[str], where: tuple[exp.Expression, ...],
                   keys: list[str]) -> Aggregate:
        """lens_a_<entity>: the entity's measures at its own grain, grouped by the query's dimensions."""
        edges = self._join_tree(entity, needed | {entity})
        values = tuple(self._dimension_value(d) for d in dims)
        name = f"lens_a_{entity}"
        if not any(e.fans_out for e in edges):
            rows = self._rows(entity, edges)
            return Aggregate(name=name, entities=(entity,), source=rows, group_by=values,
                             measures=tuple(self._measure(self._member(k)) for k in keys), filters=where)
        primary = self.model.entities[entity].primary_key()
        if not primary:
            raise LensError(f"{self.model.where(entity=entity)}: its measures are asked across a one-to-many "
                            "relationship, which needs a primary key on the entity (a field with primary: true) "
                            "to count each row once")
        keyset = DistinctKeys(name=f"lens_k_{entity}", source=self._rows(entity, edges), dimensions=values,
                              keys=tuple(self._value(p) for p in primary), filters=where)
        on = and_([exp.EQ(this=sql.column(f"k{i}", KEYS), expression=self._value(p)) for i, p in enumerate(primary)])
        rows = Join(left=keyset, right=self._scan(entity), alias=entity, on=on, kind="inner")
        return Aggregate(name=name, entities=(entity,), source=rows,
                         group_by=tuple(sql.column(f"d{i}", KEYS) for i in range(len(values))),
                         measures=tuple(self._measure(self._member(k)) for k in keys))

"""A logical plan (lens.plan) as one Spark SQL statement, with sqlglot. Pure Python, no Spark.

Every step becomes a CTE, defined the first time a step that reads it is rendered (so each CTE comes
after the CTEs it reads); the as-of reads come first, as every entity query and shared scan reads
them. Plan expressions are copied into the SQL, never moved: a plan can be rendered any number of times.
"""
from __future__ import annotations

from typing import Callable

from sqlglot import exp

from lens import sql
from lens.plan import (KEYS, RESULT, SCAN, TAG, Aggregate, AsOf, Branch, Combine, CountFlags, DimensionValues,
                       DistinctKeys, DistinctValues, Final, Rows, Scan, SharedScan, UnionAll,
                       aggregate_expression, and_, carried, chain)


def render(plan: Final) -> str:
    """The plan's Spark SQL text (pretty-printed, deterministic)."""
    return sql.render(_Renderer().final(plan))


def _table(name: str, alias: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name), alias=exp.TableAlias(this=sql.quoted(alias)))


def _ref(key: str) -> exp.Column:
    return exp.Column(this=sql.quoted(key))


def _coalesced(aliases: list[str], column: str) -> exp.Expression:
    refs = [sql.column(column, a) for a in aliases]
    return refs[0] if len(refs) == 1 else exp.Coalesce(this=refs[0], expressions=refs[1:])


def _copies(trees: tuple[exp.Expression, ...]) -> list[exp.Expression]:
    return [t.copy() for t in trees]


def as_of_scan(read: AsOf) -> exp.Select:
    """The view's rows as of the run date: time < the next day's midnight (UTC)."""
    return (exp.Select().select(exp.Star(), copy=False)
            .from_(exp.Table(this=exp.to_identifier(read.view, quoted=True)), copy=False)
            .where(exp.LT(this=sql.column(read.column), expression=sql.timestamp_literal(read.end)), copy=False))


class _Renderer:
    def __init__(self) -> None:
        self.ctes: dict[str, exp.Expression] = {}

    def _cte(self, name: str, build: Callable[[], exp.Expression]) -> str:
        """`name`, defined by `build()` unless it already is (CTEs `build` reads are defined first)."""
        if name not in self.ctes:
            body = build()
            self.ctes[name] = body
        return name

    # ------------------------------------------------------------------ rows

    def rows(self, rows: Rows) -> exp.Select:
        """SELECT-less FROM ... JOIN ... of a join chain."""
        first, joins = chain(rows)
        select = exp.Select().from_(self._first(first), copy=False)
        for join in joins:
            select = select.join(_table(self.scan(join.right), join.alias), on=join.on.copy(), join_type=join.kind,
                                 copy=False)
        return select

    def _first(self, rows: Rows) -> exp.Table:
        if isinstance(rows, Scan):
            return _table(self.scan(rows), rows.entity)
        if isinstance(rows, DistinctKeys):
            return _table(self._cte(rows.name, lambda: self._distinct_keys(rows)), KEYS)
        if isinstance(rows, SharedScan):
            return _table(self._cte(rows.name, lambda: self._shared_scan(rows)), SCAN)
        if isinstance(rows, UnionAll):
            return _table(self._cte(rows.name, lambda: self._union(rows)), SCAN)
        raise TypeError(f"not rows: {rows!r}")

    def scan(self, scan: Scan) -> str:
        return self._cte(scan.name, lambda: scan.query.copy())

    def _distinct_keys(self, node: DistinctKeys) -> exp.Select:
        keyset = self.rows(node.source).select(
            *[exp.alias_(v, f"d{i}", quoted=True) for i, v in enumerate(node.dimensions)],
            *[exp.alias_(k, f"k{i}", quoted=True) for i, k in enumerate(node.keys)], copy=False,
        ).distinct(copy=False)
        if node.filters:
            keyset = keyset.where(and_(_copies(node.filters)), copy=False)
        return keyset

    def _shared_scan(self, node: SharedScan) -> exp.Select:
        """One read of the table for these entities' rows, flagged or tagged with them."""
        predicates = [p.copy() if p is not None else exp.true() for p in node.predicates]
        scan = exp.Select().from_(node.table.copy(), copy=False).select(
            *[exp.alias_(c, f"c{i}", quoted=True) for i, c in enumerate(node.columns)], copy=False)
        if node.tagged and len(node.reads) == 1:
            scan = scan.select(exp.alias_(exp.Literal.number(node.reads[0]), TAG, quoted=True), copy=False)
        elif node.tagged:
            members = [exp.If(this=predicates[i].copy(), true=exp.Literal.number(i), false=exp.Null())
                       for i in node.reads]
            tags = exp.Explode(this=exp.Anonymous(this="ARRAY_COMPACT", expressions=[exp.Array(expressions=members)]))
            scan = scan.select(exp.alias_(tags, TAG, quoted=True), copy=False)
        else:
            scan = scan.select(*[exp.alias_(exp.Coalesce(this=predicates[i].copy(), expressions=[exp.false()]),
                                            f"in{i}", quoted=True) for i in node.reads], copy=False)
        if all(node.predicates[i] is not None for i in node.reads):
            scan = scan.where(exp.or_(*[predicates[i].copy() for i in node.reads], copy=False), copy=False)
        return scan

    def _union(self, node: UnionAll) -> exp.Expression:
        union = None
        for branch in node.branches:
            select = self._branch(branch)
            union = select if union is None else exp.union(union, select, distinct=False, copy=False)
        return union

    def _branch(self, branch: Branch) -> exp.Select:
        used = {join.alias for join in chain(branch.rows)[1]}
        select = self.rows(branch.rows).select(exp.Column(this=exp.Star(), table=sql.quoted(SCAN)), copy=False)
        return select.select(*[exp.alias_(sql.column(name, alias) if alias in used else exp.Null(),
                                          carried(alias, name), quoted=True) for alias, name in branch.carried],
                             copy=False)

    # ------------------------------------------------------------------ aggregates

    def aggregated(self, node: Aggregate | CountFlags) -> str:
        if isinstance(node, CountFlags):
            return self._cte(node.name, lambda: self._count_flags(node))
        return self._cte(node.name, lambda: self._aggregate(node))

    def _grouped(self, source: Rows, values: list[exp.Expression], outputs: list[exp.Expression],
                 filters: tuple[exp.Expression, ...]) -> exp.Select:
        select = self.rows(source).select(*[exp.alias_(v, f"d{i}", quoted=True) for i, v in enumerate(values)],
                                          *outputs, copy=False)
        if filters:
            select = select.where(and_(_copies(filters)), copy=False)
        if values:
            select = select.group_by(*[v.copy() for v in values], copy=False)
        return select

    def _aggregate(self, node: Aggregate) -> exp.Select:
        measures = [exp.alias_(aggregate_expression(m), f"m{i}", quoted=True) for i, m in enumerate(node.measures)]
        return self._grouped(node.source, list(node.group_by), measures, node.filters)

    def _distinct_values(self, node: DistinctValues) -> exp.Select:
        flags = [c if c == exp.true() else exp.Max(this=exp.Coalesce(this=c, expressions=[exp.false()]))
                 for c in _copies(node.conditions)]
        outputs = [exp.alias_(node.value, "v", quoted=True),
                   *[exp.alias_(f, f"f{i}", quoted=True) for i, f in enumerate(flags)]]
        select = self.rows(node.source).select(
            *[exp.alias_(v, f"d{i}", quoted=True) for i, v in enumerate(node.group_by)], *outputs, copy=False)
        if node.filters:
            select = select.where(and_(_copies(node.filters)), copy=False)
        return select.group_by(*[v.copy() for v in (*node.group_by, node.value)], copy=False)

    def _count_flags(self, node: CountFlags) -> exp.Select:
        per_value = self._cte(node.source.name, lambda: self._distinct_values(node.source))
        dims = len(node.source.group_by)
        counted = exp.not_(exp.Is(this=sql.column("v"), expression=exp.Null()))  # COUNT(DISTINCT) skips NULL
        counts = exp.Select().from_(per_value, copy=False).select(
            *[sql.column(f"d{i}") for i in range(dims)],
            *[exp.alias_(exp.CountIf(this=exp.and_(sql.column(f"f{i}"), counted.copy(), copy=False)), f"m{i}",
                         quoted=True) for i in range(len(node.keys))],
            copy=False)
        if dims:
            counts = counts.group_by(*[sql.column(f"d{i}") for i in range(dims)], copy=False)
        return counts

    # ------------------------------------------------------------------ the result

    def _combine(self, node: Combine) -> exp.Select:
        names = [self.aggregated(i) for i in node.inputs]
        combined = len(names) > 1
        aliases = [f"a{i}" for i in range(len(names))]
        dims = len(node.dimensions)
        select = exp.Select().from_(_table(names[0], aliases[0]), copy=False)
        for j in range(1, len(names)):
            if not dims:
                select = select.join(_table(names[j], aliases[j]), join_type="cross", copy=False)
                continue
            on = and_([exp.NullSafeEQ(this=_coalesced(aliases[:j], f"d{i}"), expression=sql.column(f"d{i}", aliases[j]))
                       for i in range(dims)])
            select = select.join(_table(names[j], aliases[j]), on=on, join_type="full outer", copy=False)
        outputs: dict[str, exp.Expression] = {}
        for alias, aggregated in zip(aliases, node.inputs):
            for i, key in enumerate(aggregated.keys):
                value: exp.Expression = sql.column(f"m{i}", alias)
                if combined and key in node.counts:
                    # a group one input has no rows for counts zero of it, not NULL
                    value = exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
                outputs[key] = value
        derived = dict(node.derived)
        for key in node.measures:
            if key in derived:
                outputs[key] = self._derived(node, derived[key], outputs)
        projections = [exp.alias_(_coalesced(aliases, f"d{i}"), d, quoted=True) for i, d in enumerate(node.dimensions)]
        projections += [exp.alias_(outputs[k], k, quoted=True) for k in node.measures]
        return select.select(*projections, copy=False)

    @staticmethod
    def _derived(node: Combine, template: exp.Expression, outputs: dict[str, exp.Expression]) -> exp.Expression:
        def replace(tree: exp.Expression) -> exp.Expression:
            if isinstance(tree, exp.Column) and not tree.table and tree.name in outputs:
                value = outputs[tree.name].copy()
                if tree.name in node.counts:
                    # typed, so that sqlglot keeps Trino's integer division of counts
                    value = exp.cast(value, exp.DataType.build("bigint"))
                return value
            return tree

        return sql.with_spark_semantics(template.copy().transform(replace), dialect=node.dialect,
                                        run_date=node.run_date)

    def _dimension_values(self, node: DimensionValues) -> exp.Select:
        select = self.rows(node.source).select(*[exp.alias_(v, key, quoted=True) for key, v in node.dimensions],
                                               copy=False)
        if node.filters:
            select = select.where(and_(_copies(node.filters)), copy=False)
        return select.group_by(*[v.copy() for _, v in node.dimensions], copy=False)

    def final(self, node: Final) -> exp.Select:
        result = node.source
        self._cte(RESULT, lambda: self._combine(result) if isinstance(result, Combine)
                  else self._dimension_values(result))
        select = exp.Select().select(*[_ref(c) for c in node.columns], copy=False).from_(RESULT, copy=False)
        if node.having:
            select = select.where(and_(_copies(node.having)), copy=False)
        if node.order:
            select = select.order_by(*[exp.Ordered(this=_ref(k), desc=d == "desc") for k, d in node.order], copy=False)
        if node.limit:
            select = select.limit(node.limit, copy=False)
        read = {t.name for body in self.ctes.values() for t in body.find_all(exp.Table)}
        as_of = [(a.name, as_of_scan(a)) for a in node.as_of if a.name in read]
        for name, body in [*as_of, *self.ctes.items()]:
            select = select.with_(name, as_=body, copy=False)
        return select

"""Optimisation passes over a logical plan (lens.plan): each a function plan -> plan that keeps the answer.

- `shared_scan`: measure entities that are filtered projections of one table (activity-schema
  entities: `SELECT ... FROM activity_stream WHERE activity = 'order_placed'`) are read in one scan
  and aggregated together, each measure gated by its entity's flag (or tag). A person writing the
  SQL by hand reads the table once, not once per entity.
- `distinct_split`: several COUNT(DISTINCT [CASE WHEN c_i THEN] v [END]) of one value v in one
  aggregate make Spark copy every row once per count (Expand); they are counted in two steps
  instead: one row per (dimensions, v) with a flag per count, then COUNT_IF per flag.

`optimise(plan, passes)` runs the named passes in the order of PASSES and says what each one did.
A pass that finds nothing to do returns the very plan it was given.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable

from sqlglot import exp

from lens import sql
from lens.errors import LensError
from lens.plan import (SCAN, TAG, Aggregate, Branch, Combine, CountFlags, DistinctValues, Final, Join, Measure,
                       Rows, Scan, SharedScan, UnionAll, aggregate_expression, and_, carried, chain, text,
                       walk)
from lens.shared_scan import ScanShape, scan_shape

Placer = Callable[[exp.Expression], "exp.Expression | None"]


@dataclass(frozen=True)
class Fired:
    """What one pass did to the plan, in words."""

    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Final], Final]
    notes: Callable[[Final], list[str]]   # what it did, read off the plan it returned
    idle: str                              # what it looks for, when it finds nothing


# ----------------------------------------------------------------------------------------------
# shared_scan
# ----------------------------------------------------------------------------------------------


def shared_scan(plan: Final) -> Final:
    """Aggregates of entities that are filtered projections of one table -> one aggregate over one
    shared scan of it (in the place of the first of them)."""
    combine = plan.source
    if not isinstance(combine, Combine):
        return plan
    inputs = combine.inputs
    shapes = [_shareable(node) for node in inputs]
    batches: list[list[int]] = []
    for i, shape in enumerate(shapes):
        if any(i in batch for batch in batches):
            continue
        batches.append([j for j, other in enumerate(shapes)
                        if shape is not None and other is not None and other.source == shape.source] or [i])
    merged: dict[int, Aggregate] = {}
    done: set[int] = set()
    for batch in batches:
        node = _merge([inputs[j] for j in batch], [shapes[j] for j in batch]) if len(batch) > 1 else None
        if node is not None:
            merged[batch[0]] = node
            done.update(batch)
    if not merged:
        return plan
    out = [merged.get(i, node) for i, node in enumerate(inputs) if i in merged or i not in done]
    return replace(plan, source=replace(combine, inputs=tuple(out)))


def _shareable(node) -> ScanShape | None:
    """The shape of the aggregate's entity when it can share a scan: plain aggregations (a `number`
    measure is a whole expression of aggregates that cannot be gated row by row) of an entity that
    is a filtered projection of one table, with dimensions reached without a one-to-many hop
    (LEFT joins along relationships; a fan-out aggregate reads distinct keys instead)."""
    if not isinstance(node, Aggregate) or any(m.kind == "number" for m in node.measures):
        return None
    first, joins = chain(node.source)
    if not isinstance(first, Scan) or any(j.kind != "left" or not isinstance(j.on, exp.EQ) for j in joins):
        return None
    return scan_shape(first.query)


def _placer(root: str, columns: dict[str, str], aliases: dict[str, str]) -> Placer:
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


def _measure_on(measure: Measure, move: Placer, gate: exp.Expression | None = None) -> Measure | None:
    """The measure with its expressions moved (None if one cannot be), and gated to some rows."""
    value = move(measure.value) if measure.value is not None else None
    conditions = [move(c) for c in measure.conditions]
    if (measure.value is not None and value is None) or any(c is None for c in conditions):
        return None
    return replace(measure, value=value, conditions=tuple(conditions) + ((gate,) if gate is not None else ()))


def _moved_to_scan(aliases: list[str]) -> Placer:
    """References to a gated join's columns -> the same columns carried on the rows (UnionAll)."""
    def move(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.table in aliases:
            return sql.column(carried(node.table, node.name), SCAN)
        return node

    return lambda tree: tree.transform(move)


def _merge(aggregates: list[Aggregate], shapes: list[ScanShape]) -> Aggregate | None:
    """One scan and one aggregate for the entities' measures (named after the first entity).

    Each entity is a context: its members are the scan's columns, the entities it reaches are
    joins (shared when two contexts join the same way). When every context has the same
    dimensions, filters and joins, a row counts for each entity whose predicate it meets (flags);
    otherwise each row is repeated once per entity it belongs to (a tag) and the dimensions and
    filters are chosen by the tag. A join only some contexts need is made on their rows alone
    (read apart, see _union), so that no context sees a row another context's join multiplied.
    None when an expression cannot be placed on the scan: the entities are then aggregated apart.
    """
    batch = [chain(a.source)[0].entity for a in aggregates]
    scan_columns: dict[str, str] = {}           # expression SQL -> scan column
    projections: list[exp.Expression] = []
    contexts: list[dict[str, str]] = []         # per entity: its column name -> scan column
    for shape in shapes:
        names = {}
        for name, value in shape.columns.items():
            key = sql.render(value, pretty=False)
            if key not in scan_columns:
                scan_columns[key] = f"c{len(scan_columns)}"
                projections.append(value.copy())
            names[name] = scan_columns[key]
        contexts.append(names)

    joins: dict[tuple[str, str, str], tuple[str, Scan, exp.Expression]] = {}  # key -> alias, target, ON
    users: dict[str, set[int]] = {}
    placed: list[Placer] = []
    for i, aggregate in enumerate(aggregates):
        aliases = {batch[i]: SCAN}
        place = _placer(batch[i], contexts[i], aliases)
        for join in chain(aggregate.source)[1]:
            source = place(join.on.this)
            if source is None:
                return None
            target = join.on.expression
            key = (sql.render(source, pretty=False), join.right.entity, sql.render(target, pretty=False))
            if key not in joins:
                alias = f"lens_j{len(joins)}"
                target = target.transform(lambda n, a=alias, t=join.alias: sql.column(n.name, a)
                                          if isinstance(n, exp.Column) and n.table == t else n)
                joins[key] = (alias, join.right, exp.EQ(this=source, expression=target))
            aliases[join.alias] = joins[key][0]
            users.setdefault(joins[key][0], set()).add(i)
        placed.append(place)

    dim_values = [[place(v) for v in a.group_by] for place, a in zip(placed, aggregates)]
    filters = [[place(c) for c in a.filters] for place, a in zip(placed, aggregates)]
    if any(v is None for values in dim_values + filters for v in values):
        return None
    as_text = [tuple(sql.render(v, pretty=False) for v in values + conds)
               for values, conds in zip(dim_values, filters)]
    tagged = len(set(as_text)) > 1 or any(len(u) < len(batch) for u in users.values())
    if tagged:
        gates = [exp.EQ(this=sql.column(TAG, SCAN), expression=exp.Literal.number(i)) for i in range(len(batch))]
    else:
        gates = [sql.column(f"in{i}", SCAN) for i in range(len(batch))]
    measures = [_measure_on(m, placed[i], gates[i]) for i, a in enumerate(aggregates) for m in a.measures]
    if any(m is None for m in measures):
        return None

    first_scan = chain(aggregates[0].source)[0]

    def scan_of(reads: list[int], name: str) -> SharedScan:
        return SharedScan(name=name, table=shapes[0].table.copy(), columns=tuple(projections), entities=tuple(batch),
                          predicates=tuple(s.predicate.copy() if s.predicate is not None else None for s in shapes),
                          reads=tuple(reads), tagged=tagged, tables=first_scan.tables)

    def by_tag(values: list[exp.Expression]) -> exp.Expression:
        if len({sql.render(v, pretty=False) for v in values}) == 1:
            return values[0].copy()
        case = exp.Case(this=sql.column(TAG, SCAN))
        for i, v in enumerate(values):
            case = case.when(exp.Literal.number(i), v.copy(), copy=False)
        return case

    group_values = [by_tag([values[d] for values in dim_values]) for d in range(len(aggregates[0].group_by))]
    where = by_tag([and_(conds) for conds in filters]) if aggregates[0].filters else None
    by_alias = {alias: (target, on) for alias, target, on in joins.values()}
    gated = [alias for alias in by_alias if len(users[alias]) < len(batch)]
    # Joins from the scan itself that only some entities need are made on those entities' rows
    # alone (UnionAll); any other join is made after, a gated one gated in its ON clause.
    on_scan = [a for a in gated if all(c.table == SCAN for c in by_alias[a][1].this.find_all(exp.Column))]
    after = [a for a in by_alias if a not in on_scan]
    rows: Rows
    if on_scan:
        later = [by_alias[a][1] for a in after]
        expressions = [*group_values, *[aggregate_expression(m) for m in measures], *([where] if where else []), *later]
        rows = _union(batch[0], scan_of, len(batch), by_alias, users, on_scan, expressions)
        moved = _moved_to_scan(on_scan)
        group_values, measures = [moved(v) for v in group_values], [_measure_on(m, moved) for m in measures]
        where = moved(where) if where is not None else None
        by_alias.update({a: (by_alias[a][0], moved(by_alias[a][1])) for a in after})
    else:
        rows = scan_of(list(range(len(batch))), f"lens_s_{batch[0]}")
    for alias in after:
        target, on = by_alias[alias]
        if alias in gated:
            used_by = exp.In(this=sql.column(TAG, SCAN), expressions=[exp.Literal.number(i) for i in sorted(users[alias])])
            on = exp.and_(used_by, on.copy(), copy=False)
        rows = Join(left=rows, right=target, alias=alias, on=on)
    return Aggregate(name=f"lens_a_{batch[0]}", entities=tuple(batch), source=rows, group_by=tuple(group_values),
                     measures=tuple(measures), filters=(where,) if where is not None else ())


def _union(first: str, scan_of: Callable[[list[int], str], SharedScan], entities: int,
           by_alias: dict[str, tuple[Scan, exp.Expression]], users: dict[str, set[int]], aliases: list[str],
           expressions: list[exp.Expression]) -> UnionAll:
    """The rows of the scan with the columns the aggregate reads from `aliases`, joins from the
    scan that only some entities need. The entities are read in groups by the joins they use
    (one read of the table per group, UNION ALL), and each group goes through its joins and no
    other: a row is never shuffled for a join its entity does not use."""
    columns = sorted({(c.table, c.name) for e in expressions for c in e.find_all(exp.Column) if c.table in aliases})
    by_joins: dict[tuple[str, ...], list[int]] = {}
    for tag in range(entities):
        by_joins.setdefault(tuple(a for a in aliases if tag in users[a]), []).append(tag)
    branches = []
    for k, (used, tags) in enumerate(by_joins.items()):
        rows: Rows = scan_of(tags, f"lens_s_{first}_{k}")
        for alias in used:
            target, on = by_alias[alias]
            rows = Join(left=rows, right=target, alias=alias, on=on)
        branches.append(Branch(rows=rows, carried=tuple(columns)))
    return UnionAll(name=f"lens_u_{first}", branches=tuple(branches))


def _shared_scan_notes(plan: Final) -> list[str]:
    notes = []
    for node in walk(plan):
        if not isinstance(node, Aggregate):
            continue
        rows = chain(node.source)[0]
        if not isinstance(rows, (SharedScan, UnionAll)):
            continue
        scans = [chain(b.rows)[0] for b in rows.branches] if isinstance(rows, UnionAll) else [rows]
        scan = scans[0]
        table = ", ".join(scan.tables) or text(scan.table)
        how = ("rows tagged with the entity they stand for (the entities group or join differently)" if scan.tagged
               else "each row flagged with the entities it belongs to")
        if isinstance(rows, UnionAll):
            groups = "; ".join(f"{s.name}: {', '.join(s.entities[i] for i in s.reads)}" for s in scans)
            reads = f"read in {len(scans)} groups by the joins they use ({groups}), put together in {rows.name}"
        else:
            reads = f"one read, {scan.name}"
        notes.append(f"merged {', '.join(node.entities)} into one scan of {table} and one aggregate "
                     f"{node.name}: {reads}; {how}")
    return notes


# ----------------------------------------------------------------------------------------------
# distinct_split
# ----------------------------------------------------------------------------------------------


def distinct_split(plan: Final) -> Final:
    """Aggregates that are only distinct counts of one value -> DistinctValues + CountFlags."""
    combine = plan.source
    if not isinstance(combine, Combine):
        return plan
    inputs = tuple(_split(node) if isinstance(node, Aggregate) else node for node in combine.inputs)
    if all(a is b for a, b in zip(inputs, combine.inputs)):
        return plan
    return replace(plan, source=replace(combine, inputs=inputs))


def _split(node: Aggregate) -> Aggregate | CountFlags:
    found = distinct_counts_of_one_value([aggregate_expression(m) for m in node.measures])
    if found is None:
        return node
    value, conditions = found
    per_value = DistinctValues(name=node.name.replace("lens_a_", "lens_v_", 1), source=node.source,
                               group_by=node.group_by, value=value, conditions=tuple(conditions), filters=node.filters)
    return CountFlags(name=node.name, entities=node.entities, source=per_value, keys=node.keys)


def distinct_counts_of_one_value(aggregates: list[exp.Expression]) -> tuple[exp.Expression, list[exp.Expression]] | None:
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


def _distinct_split_notes(plan: Final) -> list[str]:
    return [f"{', '.join(node.keys)}: {len(node.keys)} distinct counts of {text(node.source.value)} counted in two "
            f"steps ({node.source.name}: one row per dimensions and value with a flag per count; then COUNT_IF "
            f"in {node.name})" for node in walk(plan) if isinstance(node, CountFlags)]


# ----------------------------------------------------------------------------------------------
# The passes
# ----------------------------------------------------------------------------------------------


REGISTRY: dict[str, Pass] = {p.name: p for p in (
    Pass("shared_scan", shared_scan, _shared_scan_notes,
         "no two measure entities are filtered projections of one table with plain measures"),
    Pass("distinct_split", distinct_split, _distinct_split_notes,
         "no aggregate is two or more distinct counts of one value"),
)}
PASSES: tuple[str, ...] = tuple(REGISTRY)   # the order they run in
DEFAULT_PASSES = PASSES


def check_passes(passes: Iterable[str]) -> tuple[str, ...]:
    """The named passes, in the order they run; an unknown name is a LensError."""
    if isinstance(passes, str):
        raise TypeError(f"passes is a collection of pass names, e.g. ({passes!r},), not one string")
    names = tuple(passes)
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise LensError(f"unknown optimisation pass {unknown[0]!r} (known: {', '.join(PASSES)})")
    return tuple(name for name in PASSES if name in names)


def optimise(plan: Final, passes: Iterable[str] = DEFAULT_PASSES) -> tuple[Final, tuple[Fired, ...]]:
    """The plan after the named passes (run in the order of PASSES), and what each pass that fired did."""
    fired: list[Fired] = []
    for name in check_passes(passes):
        after = REGISTRY[name].run(plan)
        if after is not plan:
            fired += [Fired(name, note) for note in REGISTRY[name].notes(after)]
        plan = after
    return plan, tuple(fired)

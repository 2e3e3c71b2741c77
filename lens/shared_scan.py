"""Which entities can share one scan of their table. Pure AST analysis, no Spark.

Activity-schema models define many entities as filtered projections of one stream
(`SELECT trim(feature1) AS order_id, ... FROM activity_stream WHERE activity = 'order_placed'`).
A query that asks for measures of three such entities would otherwise read the stream three times,
where a person writing the SQL by hand reads it once and tells the rows apart by their predicate.
`scan_shape` recognises such a query; the planner then reads the table once for all of them.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from lens import sql

# Clauses that make an entity more than a filtered projection of one table.
NOT_A_PROJECTION = ("joins", "group", "having", "distinct", "qualify", "limit", "offset", "order", "with",
                    "laterals", "windows", "pivots")
# Nodes whose value depends on more than the row at hand (or changes per evaluation).
ROW_DEPENDENT = (exp.AggFunc, exp.Window, exp.Star, exp.Subquery, exp.Select, exp.UDTF, exp.Explode,
                 exp.Rand, exp.Uuid)


@dataclass(frozen=True)
class ScanShape:
    """An entity query that is `SELECT <row expressions> FROM <one table> [WHERE <predicate>]`."""

    source: str                          # the FROM clause as Spark SQL: equal sources read the same rows
    table: exp.Table
    columns: dict[str, exp.Expression]   # output name -> its expression over the table's columns
    predicate: exp.Expression | None


def scan_shape(query: exp.Expression) -> ScanShape | None:
    """The query's shape when it is a filtered projection of one table, else None."""
    if not isinstance(query, exp.Select) or any(query.args.get(k) for k in NOT_A_PROJECTION):
        return None
    source = query.args.get("from_")
    if source is None or not isinstance(source.this, exp.Table) or not source.this.name:
        return None
    columns: dict[str, exp.Expression] = {}
    for projection in query.expressions:
        name = projection.alias_or_name
        if not name or name in columns or any(isinstance(n, ROW_DEPENDENT) for n in projection.walk()):
            return None
        columns[name] = projection.unalias()
    where = query.args.get("where")
    predicate = where.this if where is not None else None
    if predicate is not None and any(isinstance(n, ROW_DEPENDENT) for n in predicate.walk()):
        return None
    return ScanShape(source=sql.render(source.this, pretty=False), table=source.this, columns=columns,
                     predicate=predicate)

"""Safe SQL for the lens: snippets and entity queries as sqlglot ASTs, never as pasted strings.

A snippet (`sql_snippet` of a dimension or measure, a measure filter) must be ONE expression built
from an allow-list of node types: no subquery, no statement, no `;`, no JVM-reflection or
non-deterministic function. `${entity.member}` references are swapped for placeholder columns before
parsing, so the parser sees plain SQL and the model resolves each placeholder to the member's own
AST. Filter values only ever enter SQL as literal nodes built here.

Dialect semantics are kept when a model written for Trino (DataOS's engine) runs on Spark:
- `current_date` / `current_timestamp` bind to the run date (a literal), never the wall clock;
- Trino's `day(a - b)` on two datetimes is the day part of an interval (whole days, truncated
  toward zero), which Spark spells `EXTRACT(DAY FROM a - b)` on timestamps;
- Trino's integer division stays integer division (sqlglot's typed division, from type annotation).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError, UnsupportedError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.tokens import TokenType

from lens.errors import LensError

TARGET_DIALECT = "spark"
DEFAULT_DIALECT = "trino"
# Dialects where `day(x)` of an interval is its day part (Trino and the Presto family).
INTERVAL_DAY_DIALECTS = frozenset({"trino", "presto", "athena"})

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
REFERENCE = re.compile(rf"\$\{{(?P<entity>{NAME})\.(?P<member>{NAME})\}}")
PLACEHOLDER_PREFIX = "__lens_ref_"
PLACEHOLDER = re.compile(rf"^{PLACEHOLDER_PREFIX}(\d+)__$")

# Node types a snippet may never contain: statements, queries, tables, windows, parameters.
FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = (
    exp.Query, exp.Subquery, exp.DDL, exp.DML, exp.Command, exp.Table, exp.Join, exp.From, exp.With,
    exp.CTE, exp.Window, exp.Placeholder, exp.Parameter, exp.SessionParameter, exp.Block, exp.Alias,
    exp.PropertyEQ, exp.Lambda, exp.Semicolon,
)
# Everything else must be one of these expression families.
ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    exp.Func, exp.Binary, exp.Unary, exp.Predicate, exp.Column, exp.Identifier, exp.Literal,
    exp.Boolean, exp.Null, exp.Var, exp.DataType, exp.DataTypeParam, exp.Interval, exp.Distinct,
    exp.Star, exp.Tuple, exp.Bracket,
)
# Functions that reach into the JVM, read the environment or are not deterministic.
DENIED_FUNCTIONS = frozenset({
    "REFLECT", "JAVA_METHOD", "TRY_REFLECT", "RAND", "RANDN", "RANDOM", "UUID", "SHUFFLE",
    "INPUT_FILE_NAME", "INPUT_FILE_BLOCK_START", "INPUT_FILE_BLOCK_LENGTH",
    "MONOTONICALLY_INCREASING_ID", "SPARK_PARTITION_ID", "ASSERT_TRUE", "RAISE_ERROR",
    "CURRENT_USER", "USER", "SESSION_USER", "CURRENT_CATALOG", "CURRENT_DATABASE", "CURRENT_SCHEMA",
    "UNIX_TIMESTAMP", "SLEEP",
})
# Statement-level nodes an entity query (a whole SELECT) may not contain.
FORBIDDEN_IN_QUERY: tuple[type[exp.Expression], ...] = (
    exp.DDL, exp.DML, exp.Command, exp.Placeholder, exp.Parameter, exp.SessionParameter, exp.Block,
)
RUN_DATE_DATE = (exp.CurrentDate,)
RUN_DATE_TIMESTAMP = (exp.CurrentTimestamp, exp.CurrentDatetime, exp.Localtimestamp)


class SnippetError(Exception):
    """A snippet that cannot be used; `position` is the character offset of the mistake, if known."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Reference:
    entity: str
    member: str

    def __str__(self) -> str:
        return f"{self.entity}.{self.member}"


@dataclass(frozen=True)
class Snippet:
    """A parsed snippet: its text, its AST with placeholder columns, and what each placeholder means."""

    text: str
    tree: exp.Expression
    references: tuple[Reference, ...]
    bare_columns: tuple[str, ...]

    def has_aggregate(self) -> bool:
        return any(isinstance(n, exp.AggFunc) for n in self.tree.walk())


def pointer(text: str, position: int | None) -> str:
    """The snippet on one line with a caret under `position`, for error messages."""
    flat = " ".join(text.split("\n"))
    if position is None:
        return f"\n    {flat.strip()}"
    lead = len(flat) - len(flat.lstrip())
    return f"\n    {flat.strip()}\n    {' ' * max(position - lead, 0)}^"


def check_dialect(name: str) -> str:
    try:
        Dialect.get_or_raise(name)
    except (ValueError, SqlglotError):
        raise LensError(f"unknown SQL dialect {name!r} (sqlglot dialects, e.g. trino, spark)") from None
    return name.lower()


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).upper()
    return node.sql_name().upper() if isinstance(node, exp.Func) else ""


def _reject_semicolons(text: str, dialect: str) -> None:
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(text)
    except TokenError as exc:
        raise SnippetError(f"not valid SQL: {exc}") from None
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            raise SnippetError("';' is not allowed: a snippet is one expression", token.start)


def _check_nodes(tree: exp.Expression) -> None:
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES) or not isinstance(node, ALLOWED_NODES):
            raise SnippetError(f"{node.key} is not allowed in a snippet (only one scalar or aggregate expression)")
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            raise SnippetError("'*' is only allowed as count(*)")
        if _function_name(node) in DENIED_FUNCTIONS:
            raise SnippetError(f"function {_function_name(node).lower()}() is not allowed in a snippet")
        if isinstance(node, exp.Column) and (node.table or node.args.get("db")) and not PLACEHOLDER.match(node.name):
            raise SnippetError(f"qualified column {node.sql()} is not allowed: write ${{entity.member}}")


def parse_snippet(text: str, dialect: str = DEFAULT_DIALECT) -> Snippet:
    """Parse one snippet; raise SnippetError (with the offending position when known)."""
    if not isinstance(text, str) or not text.strip():
        raise SnippetError("the snippet is empty")
    if PLACEHOLDER_PREFIX in text:
        raise SnippetError(f"{PLACEHOLDER_PREFIX!r} is reserved", text.index(PLACEHOLDER_PREFIX))
    references: list[Reference] = []
    pieces: list[str] = []
    cursor = 0
    for start in (m.start() for m in re.finditer(r"\$\{", text)):
        match = REFERENCE.match(text, start)
        if match is None:
            raise SnippetError("malformed reference: write ${entity.member}, closed by '}'", start)
        pieces.append(text[cursor:start])
        pieces.append(f"{PLACEHOLDER_PREFIX}{len(references)}__")
        references.append(Reference(match["entity"], match["member"]))
        cursor = match.end()
    pieces.append(text[cursor:])
    sql = "".join(pieces)
    _reject_semicolons(sql, dialect)
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        raise SnippetError(f"not valid SQL: {_first_error(exc)}") from None
    if len(statements) != 1:
        raise SnippetError("a snippet must be exactly one expression")
    tree = statements[0]
    _check_nodes(tree)
    seen: set[int] = set()
    bare: list[str] = []
    for column in tree.find_all(exp.Column):
        found = PLACEHOLDER.match(column.name)
        if found:
            seen.add(int(found.group(1)))
        else:
            bare.append(column.name)
    if len(seen) != len(references):
        missing = next(r for i, r in enumerate(references) if i not in seen)
        raise SnippetError(f"${{{missing}}} must stand where a column can (not inside a string or name)")
    return Snippet(text=text, tree=tree, references=tuple(references), bare_columns=tuple(dict.fromkeys(bare)))


def _first_error(exc: SqlglotError) -> str:
    errors = getattr(exc, "errors", None)
    if errors:
        first = errors[0]
        return f"{first.get('description')} (line {first.get('line')}, column {first.get('col')})"
    return str(exc).splitlines()[0]


def substitute(snippet: Snippet, resolve: Callable[[Reference], exp.Expression],
               column: Callable[[str], exp.Expression]) -> exp.Expression:
    """The snippet's AST with each reference and bare column replaced by the AST the caller gives."""

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column):
            found = PLACEHOLDER.match(node.name)
            target = resolve(snippet.references[int(found.group(1))]) if found else column(node.name)
            return exp.Paren(this=target.copy()) if _needs_parens(target) else target.copy()
        return node

    return snippet.tree.copy().transform(replace)


def _needs_parens(node: exp.Expression) -> bool:
    return not isinstance(node, (exp.Column, exp.Literal, exp.Func, exp.Paren, exp.Null, exp.Boolean))


def parse_entity_query(text: str, dialect: str = DEFAULT_DIALECT) -> exp.Query:
    """An entity's `sql.query`: one SELECT (joins, CTEs, unions allowed), no statement of any other kind."""
    if not isinstance(text, str) or not text.strip():
        raise SnippetError("sql.query is empty")
    _reject_semicolons(text.strip().rstrip(";"), dialect)
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        raise SnippetError(f"not valid SQL: {_first_error(exc)}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise SnippetError("sql.query must be exactly one SELECT")
    query = statements[0]
    for node in query.walk():
        if isinstance(node, FORBIDDEN_IN_QUERY):
            raise SnippetError(f"{node.key} is not allowed in sql.query")
        if _function_name(node) in DENIED_FUNCTIONS:
            raise SnippetError(f"function {_function_name(node).lower()}() is not allowed in sql.query")
    return query


def parse_spark(text: str) -> exp.Expression:
    """Spark SQL the lens generated, back as an AST (to check what it reads)."""
    return sqlglot.parse_one(text, read=TARGET_DIALECT)


def table_names(query: exp.Query) -> list[str]:
    """The catalog tables a query reads (lower-cased dotted names), CTE names excluded, in order."""
    return list(dict.fromkeys(_dotted(t) for t in _source_tables(query)))


def _source_tables(query: exp.Query) -> Iterator[exp.Table]:
    ctes = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    for table in query.find_all(exp.Table):
        if not table.name:
            continue  # table functions and the like carry no name
        if not table.args.get("db") and table.name.lower() in ctes:
            continue
        yield table


def _dotted(table: exp.Table) -> str:
    return ".".join(p.name for p in table.parts).lower()


def rewrite_tables(query: exp.Query, views: Mapping[str, str]) -> exp.Query:
    """Point every catalog table at its registered view (AST rewrite; the old name stays the alias)."""
    query = query.copy()
    for table in list(_source_tables(query)):
        name = _dotted(table)
        if name not in views:
            raise LensError(f"table {name} has no catalog mapping")
        alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name))
        table.replace(exp.Table(this=exp.to_identifier(views[name], quoted=True), alias=alias))
    return query


# ----------------------------------------------------------------------------------------------
# Dialect semantics: the run date, Trino's interval day part, typed division
# ----------------------------------------------------------------------------------------------


def date_literal(day: dt.date) -> exp.Expression:
    return exp.cast(exp.Literal.string(day.isoformat()), exp.DataType.build("date"))


def timestamp_literal(moment: dt.datetime) -> exp.Expression:
    """A UTC timestamp literal (the session time zone is UTC; lens.execute checks it)."""
    return exp.cast(exp.Literal.string(moment.strftime("%Y-%m-%d %H:%M:%S")), exp.DataType.build("timestamp"))


def bind_run_date(tree: exp.Expression, run_date: dt.date) -> exp.Expression:
    """current_date -> the run date; current_timestamp/now() -> the run date at 00:00 UTC."""

    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, RUN_DATE_DATE):
            return date_literal(run_date)
        if isinstance(node, RUN_DATE_TIMESTAMP):
            return timestamp_literal(dt.datetime.combine(run_date, dt.time()))
        return node

    return tree.transform(bind)


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def interval_day_part(tree: exp.Expression) -> exp.Expression:
    """Trino `day(a - b)` of two datetimes = whole days of the interval -> Spark EXTRACT(DAY FROM ...)."""

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Day):
            inner = _unparen(node.this)
            if isinstance(inner, exp.Sub) and not isinstance(_unparen(inner.expression), exp.Interval):
                timestamp = exp.DataType.build("timestamp")
                difference = exp.Sub(this=exp.cast(inner.this.copy(), timestamp),
                                     expression=exp.cast(inner.expression.copy(), timestamp))
                return exp.Extract(this=exp.var("DAY"), expression=difference)
        return node

    return tree.transform(rewrite)


def _is_date(node: exp.Expression) -> bool:
    node = _unparen(node)
    if isinstance(node, exp.Cast):
        return node.to.is_type(exp.DataType.Type.DATE)
    return isinstance(node, (exp.Date, exp.TsOrDsToDate, exp.CurrentDate, exp.DateStrToDate))


def day_difference_of_dates(tree: exp.Expression) -> exp.Expression:
    """`date_diff('day', d1, d2)` of two dates -> Spark's DATEDIFF(d2, d1), a subtraction of day numbers.

    sqlglot keeps the unit (DATEDIFF(DAY, d1, d2)), which Spark runs as TIMESTAMPDIFF: both dates
    turned into timestamps and the days between counted on a calendar, row by row -- the same
    number for dates, at several times the cost.
    """

    def rewrite(node: exp.Expression) -> exp.Expression:
        if (isinstance(node, exp.DateDiff) and node.unit is not None and node.unit.name.upper() == "DAY"
                and _is_date(node.this) and _is_date(node.expression)):
            return exp.DateDiff(this=node.this.copy(), expression=node.expression.copy())
        return node

    return tree.transform(rewrite)


def with_spark_semantics(tree: exp.Expression, *, dialect: str, run_date: dt.date) -> exp.Expression:
    """The AST (read in `dialect`) rewritten so that Spark computes what the source dialect meant."""
    tree = bind_run_date(tree.copy(), run_date)
    if dialect in INTERVAL_DAY_DIALECTS:
        tree = interval_day_part(tree)
    tree = day_difference_of_dates(tree)
    # Types drive sqlglot's typed division: Trino's bigint / bigint stays integer division.
    return annotate_types(tree, dialect=dialect)


def render(tree: exp.Expression, *, pretty: bool = True) -> str:
    """Spark SQL text; anything Spark cannot express is an error, not a silent approximation."""
    try:
        return tree.sql(dialect=TARGET_DIALECT, pretty=pretty, comments=False,
                        unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise LensError(f"cannot express in Spark SQL: {exc}") from None


# ----------------------------------------------------------------------------------------------
# Literals and identifiers the planner builds
# ----------------------------------------------------------------------------------------------


def string_literal(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def like_pattern(value: str, *, prefix: str = "", suffix: str = "") -> exp.Literal:
    """A LIKE pattern matching `value` literally (its %, _ and \\ escaped)."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return exp.Literal.string(f"{prefix}{escaped}{suffix}")


def quoted(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def column(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=quoted(name), table=quoted(table) if table else None)

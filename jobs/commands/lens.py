"""`c360 lens query|sql`: answer a lens query, or print the Spark SQL it compiles to (lens/README.md).

    c360 lens query --model FILE (--query FILE [--variant NAME] | --measure M ... --dimension D ...)
                    [--filter MEMBER:OPERATOR[:V1,V2]] ... [--format table|csv|json]
    c360 lens sql   (same query options)
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import decimal
import itertools
import json
import math
import sys
from typing import Any, Iterable, Iterator

from jobs.core.config import REMOTE_HELP, REMOTE_METAVAR
from jobs.core.context import JobContext

FORMATS = ("table", "csv", "json")
DEFAULT_TABLE_ROWS = 100


def _shared_options(parser: argparse.ArgumentParser, run_date_arg) -> None:
    # Accepted after the sub-command too; SUPPRESS keeps `c360 lens --run-date D query` working.
    parser.add_argument("--config", default=argparse.SUPPRESS, help="configuration file (default: conf/local.yml)")
    parser.add_argument("--warehouse", default=argparse.SUPPRESS, help="warehouse root (overrides the config)")
    parser.add_argument("--run-date", type=run_date_arg, default=argparse.SUPPRESS,
                        help="logical date of the run, YYYY-MM-DD (binds current_date; default: today in UTC)")
    parser.add_argument("--remote", default=argparse.SUPPRESS, metavar=REMOTE_METAVAR, help=REMOTE_HELP)


def _query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="lens model file (YAML)")
    parser.add_argument("--query", dest="query_file", help="query file (YAML/JSON, lens/README.md)")
    parser.add_argument("--variant", help="a variant of the query file")
    parser.add_argument("--measure", action="append", default=[], metavar="ENTITY.MEMBER")
    parser.add_argument("--dimension", action="append", default=[], metavar="ENTITY.MEMBER")
    parser.add_argument("--time-dimension", action="append", default=[], metavar="MEMBER[:GRANULARITY][:RANGE]",
                        help="e.g. order_placed.activity_ts:month:2026-01-01,2026-03-31 or ...:month:last 6 months")
    parser.add_argument("--filter", action="append", default=[], metavar="MEMBER:OPERATOR[:V1,V2]",
                        help="e.g. customer.state:equals:CA,NY (a comma inside a value: \\,); repeat = AND")
    parser.add_argument("--order", action="append", default=[], metavar="MEMBER[:asc|desc]")
    parser.add_argument("--limit", type=int, help="at most this many rows")
    parser.add_argument("--timezone", help="IANA time zone for time dimensions and date filters (default UTC)")


def add_arguments(parser: argparse.ArgumentParser, run_date_arg) -> None:
    subs = parser.add_subparsers(dest="lens_command", required=True, metavar="{query,sql}")
    query = subs.add_parser("query", help="answer a lens query", description="answer a lens query")
    sql = subs.add_parser("sql", help="print the Spark SQL a lens query compiles to",
                          description="print the Spark SQL a lens query compiles to")
    for sub in (query, sql):
        _shared_options(sub, run_date_arg)
        _query_options(sub)
    sql.add_argument("--explain", action="store_true",
                     help="print the logical plan after the optimisation passes, and which passes fired, instead of the SQL")
    query.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    query.add_argument("--max-rows", type=int, default=DEFAULT_TABLE_ROWS,
                       help=f"rows the table format shows (default {DEFAULT_TABLE_ROWS}; csv/json print all)")


def build_query(args: argparse.Namespace):
    from lens.errors import LensError
    from lens.query_format import Query, check_timezone, load_query, parse_filter_arg, parse_time_dimension_arg

    extras = {
        "filters": tuple(parse_filter_arg(f) for f in args.filter),
        "order": tuple(_order_arg(o) for o in args.order),
    }
    if args.query_file:
        if args.measure or args.dimension or args.time_dimension:
            raise LensError("give either --query FILE or --measure/--dimension/--time-dimension, not both")
        query = load_query(args.query_file, args.variant)
        return dataclasses.replace(
            query, filters=query.filters + extras["filters"], order=extras["order"] or query.order,
            limit=args.limit or query.limit, timezone=check_timezone(args.timezone, "--timezone") or query.timezone,
        )
    if args.variant:
        raise LensError("--variant needs --query FILE")
    if args.limit is not None and args.limit < 1:
        raise LensError("--limit must be at least 1")
    query = Query(
        measures=tuple(args.measure), dimensions=tuple(args.dimension),
        time_dimensions=tuple(parse_time_dimension_arg(t) for t in args.time_dimension),
        limit=args.limit, timezone=check_timezone(args.timezone, "--timezone"), **extras,
    )
    if not (query.measures or query.dimensions or any(t.granularity for t in query.time_dimensions)):
        raise LensError("ask for at least one --measure, --dimension or --time-dimension with a granularity (or --query FILE)")
    return query


def _order_arg(text: str) -> tuple[str, str]:
    from lens.errors import LensError
    from lens.query_format import MEMBER

    member, _, direction = text.partition(":")
    direction = (direction or "asc").lower()
    if not MEMBER.match(member) or direction not in ("asc", "desc"):
        raise LensError(f"--order {text!r}: expected ENTITY.MEMBER[:asc|desc]")
    return member, direction


def run(ctx: JobContext, args: argparse.Namespace) -> None:
    from lens.execute import QUERY_ERRORS, compile_for, query_error, run_compiled, warehouse_catalog
    from lens.model import load_model

    settings = ctx.config.lens
    catalog = warehouse_catalog(settings.catalog, ctx.warehouse.root)
    model = load_model(args.model, default_dialect=settings.dialect)
    compiled = compile_for(model, build_query(args), ctx.run_date, catalog, settings.as_of)
    if args.lens_command == "sql":
        print(compiled.explain if args.explain else compiled.sql)
        return None
    frame = run_compiled(ctx.spark, compiled, catalog)
    columns = list(compiled.columns)
    try:
        if args.format == "table":
            rows = frame.limit(args.max_rows + 1).collect()  # bounded by --max-rows
            print(format_table(columns, [tuple(r) for r in rows[: args.max_rows]], more=len(rows) > args.max_rows))
        else:
            # streamed, not collected; the first row is fetched before anything is printed, so a
            # query that fails at run time (a malformed cast) fails before any output
            rows = _started((tuple(r) for r in frame.toLocalIterator()))
            write_csv(columns, rows) if args.format == "csv" else write_json(columns, rows)
    except QUERY_ERRORS as exc:
        raise query_error(exc) from None
    return None


def _started(rows: Iterator[tuple]) -> Iterator[tuple]:
    """`rows` with its first row already fetched."""
    first = next(rows, None)
    if first is None:
        return iter(())
    return itertools.chain([first], rows)


def plain(value: Any) -> Any:
    """A JSON-friendly value: dates as ISO text, decimals as numbers, NaN/infinity as null.

    Floats print as the shortest text that reads back as the same double (Python's repr), so a
    sum the lens computed exactly (lens.plan.SUM_DECIMAL) prints as its decimals: 5373.64."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def text(value: Any) -> str:
    """A value as CSV/table text: decimals exactly as stored, without trailing zeros (5373.64)."""
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return format(value.normalize(), "f")
    shown = plain(value)
    return "" if shown is None else str(shown)


def write_json(columns: list[str], rows: Iterable[tuple]) -> None:
    out = sys.stdout
    out.write("[")
    for i, row in enumerate(rows):
        out.write(("," if i else "") + "\n  " + json.dumps({c: plain(v) for c, v in zip(columns, row)}))
    out.write("\n]\n")


def write_csv(columns: list[str], rows: Iterable[tuple]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([text(v) for v in row])


def format_table(columns: list[str], rows: list[tuple], *, more: bool = False) -> str:
    cells = [[("NULL" if plain(v) is None else text(v)) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], (int, float, decimal.Decimal)) or row[i] is None for row in rows)
               for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)]
    out.append(f"({len(rows)} rows{'; more not shown, use --max-rows or --format csv' if more else ''})")
    return "\n".join(out)

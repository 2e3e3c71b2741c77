"""Running compiled lens queries on Spark: catalog tables as temp views, then one spark.sql call."""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from pathlib import Path
from typing import Iterable, Mapping

from pyspark.errors import (AnalysisException, ArithmeticException, DateTimeException, IllegalArgumentException,
                            NumberFormatException, ParseException, SparkRuntimeException)
from pyspark.sql import DataFrame, SparkSession

from lens.defaults import DEFAULT_AS_OF
from lens.errors import LensError
from lens.model import Model, load_model
from lens.passes import DEFAULT_PASSES
from lens.planner import CompiledQuery, compile_query
from lens.query_format import Query, load_query, parse_query
from lens.spark_compat import is_delta_table

UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Z", "+00:00", "GMT", "Etc/GMT"})
# Errors Spark raises for a query that does not fit its tables or data (a column the table lacks, a
# cast of malformed text under ANSI mode): the user's to fix, reported as one paragraph (exit 2).
QUERY_ERRORS = (AnalysisException, ParseException, ArithmeticException, NumberFormatException,
                DateTimeException, IllegalArgumentException, SparkRuntimeException)
# PySpark 4 logs every SQL error with a query context as JSON with a Python stack trace, on the
# stderr of the moment -- the terminal, under the CLI. These loggers write to fd 2 instead (the
# JVM's log file under the CLI, see jobs.core.console).
QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
# Queries run from several threads at once (lens-materialize): one of them sets the handlers up.
_QUERY_LOGGERS_LOCK = threading.Lock()


def view_name(location: str) -> str:
    """A safe temp-view name for a Delta location: lens_ + its path's letters and digits."""
    tail = "_".join(Path(location.rstrip("/")).parts[-2:])
    return "lens_" + re.sub(r"[^a-z0-9]+", "_", tail.lower()).strip("_")


def views_for(catalog: Mapping[str, str]) -> dict[str, str]:
    """Model table name -> view name; two locations that would share a name get a numeric suffix."""
    views: dict[str, str] = {}
    taken: dict[str, str] = {}
    for table, location in catalog.items():
        name = view_name(location)
        if taken.get(name, location) != location:
            name = f"{name}_{len(taken)}"
        taken[name] = location
        views[table.lower()] = name
    return views


def warehouse_catalog(catalog: Mapping[str, str], warehouse_root: str | Path) -> dict[str, str]:
    """Config catalog (warehouse-relative tables) -> absolute Delta locations."""
    root = str(warehouse_root).rstrip("/")
    return {t: (v if "://" in v or Path(v).is_absolute() else f"{root}/{v.strip('/')}") for t, v in catalog.items()}


def as_of_columns(catalog: Mapping[str, str], as_of: Mapping[str, str] | None = None) -> dict[str, str]:
    """Model table -> time column, for each catalog table whose location is (or ends with) a table
    `as_of` names (warehouse tables such as silver/activity_stream, or locations; default:
    lens.defaults.DEFAULT_AS_OF, the activity stream's activity_ts)."""
    wanted = DEFAULT_AS_OF if as_of is None else as_of
    found: dict[str, str] = {}
    for table, location in catalog.items():
        where = str(location).rstrip("/")
        for name, column in wanted.items():
            name = str(name).rstrip("/")
            if where == name or where.endswith("/" + name.lstrip("/")):
                found[table.lower()] = column
                break
    return found


def as_query(query: Query | Mapping | str | Path) -> Query:
    if isinstance(query, Query):
        return query
    if isinstance(query, Mapping):
        return parse_query(query)
    return load_query(query)


def compile_for(model: Model, query: Query, run_date: dt.date, catalog: Mapping[str, str],
                as_of: Mapping[str, str] | None = None, *, passes: Iterable[str] = DEFAULT_PASSES) -> CompiledQuery:
    """The query compiled for the catalog's views, reading the `as_of` tables as of the run date,
    with the optimisation passes `passes` (lens.passes.PASSES; all by default)."""
    return compile_query(model, query, run_date=run_date, views=views_for(catalog),
                         as_of=as_of_columns(catalog, as_of), passes=passes)


def register_tables(spark: SparkSession, compiled: CompiledQuery, catalog: Mapping[str, str]) -> None:
    """Each catalog table the query reads becomes a temp view over its Delta location."""
    views = views_for(catalog)
    for table in compiled.tables:
        location = catalog[table]
        if not is_delta_table(spark, location):
            raise LensError(f"catalog table {table} -> {location} is not a Delta table yet "
                            "(run `c360 nightly` first, or fix lens.catalog)")
        spark.read.format("delta").load(location).createOrReplaceTempView(views[table])


class _FileDescriptor2:
    """A text stream writing to whatever fd 2 is now (not sys.stderr, which the CLI keeps for the user)."""

    def write(self, text: str) -> int:
        return os.write(2, text.encode("utf-8", "replace"))

    def flush(self) -> None:
        pass


def keep_query_errors_off_the_terminal() -> None:
    from pyspark.logger import PySparkLogger

    with _QUERY_LOGGERS_LOCK:
        for name in QUERY_CONTEXT_LOGGERS:
            logger = PySparkLogger.getLogger(name)
            if not any(isinstance(getattr(h, "stream", None), _FileDescriptor2) for h in logger.handlers):
                for handler in list(logger.handlers):
                    logger.removeHandler(handler)
                logger.addHandler(logging.StreamHandler(_FileDescriptor2()))


def spark_error_message(exc: BaseException) -> str:
    """The first meaningful line of a Spark error (no JVM stack trace)."""
    text = exc.getMessage() if hasattr(exc, "getMessage") else str(exc)
    for line in str(text).strip().splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "JVM stacktrace", "Traceback")):
            return line[:1000]
    return type(exc).__name__


def query_error(exc: BaseException) -> LensError:
    return LensError(f"Spark rejected the compiled query (check the model's sql.query and columns "
                     f"against the catalog tables, and the values in them): {spark_error_message(exc)}")


def check_session(spark: SparkSession) -> None:
    zone = spark.conf.get("spark.sql.session.timeZone")
    if zone not in UTC_NAMES:
        raise LensError(f"the Spark session time zone is {zone}; lens queries need UTC "
                        "(spark.sql.session.timeZone), times are UTC unless a query sets timezone")


def run_compiled(spark: SparkSession, compiled: CompiledQuery, catalog: Mapping[str, str]) -> DataFrame:
    """The query's DataFrame (analysed, not run); Spark's query errors become a LensError here
    and, for errors at run time, in the caller (catch QUERY_ERRORS around the action)."""
    keep_query_errors_off_the_terminal()
    check_session(spark)
    register_tables(spark, compiled, catalog)
    try:
        return spark.sql(compiled.sql)
    except QUERY_ERRORS as exc:
        raise query_error(exc) from None


def query(spark: SparkSession, model_path: str | Path | Model, query: Query | Mapping | str | Path,
          run_date: dt.date, catalog: Mapping[str, str], *, dialect: str = "trino",
          as_of: Mapping[str, str] | None = None, passes: Iterable[str] = DEFAULT_PASSES) -> DataFrame:
    """The Python API: answer `query` (a Query, a dict in the query format, or a query file) with
    the model at `model_path`; `catalog` maps model table names to Delta locations. `as_of` maps
    warehouse tables to their time column (default: silver/activity_stream's activity_ts): the
    query ignores their rows after the run date. `passes`: the optimisation passes (default all;
    they never change the answer, only the work)."""
    model = model_path if isinstance(model_path, Model) else load_model(model_path, default_dialect=dialect)
    compiled = compile_for(model, as_query(query), run_date, catalog, as_of, passes=passes)
    return run_compiled(spark, compiled, catalog)

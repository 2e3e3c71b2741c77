"""Running compiled lens queries on Spark: catalog tables as temp views, then one spark.sql call."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Mapping

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame, SparkSession

from lens.errors import LensError
from lens.model import Model, load_model
from lens.planner import CompiledQuery, compile_query
from lens.query_format import Query, load_query, parse_query

UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Z", "+00:00", "GMT", "Etc/GMT"})


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
    root = Path(warehouse_root)
    return {t: (v if "://" in v or Path(v).is_absolute() else str(root / v)) for t, v in catalog.items()}


def as_query(query: Query | Mapping | str | Path) -> Query:
    if isinstance(query, Query):
        return query
    if isinstance(query, Mapping):
        return parse_query(query)
    return load_query(query)


def compile_for(model: Model, query: Query, run_date: dt.date, catalog: Mapping[str, str]) -> CompiledQuery:
    return compile_query(model, query, run_date=run_date, views=views_for(catalog))


def register_tables(spark: SparkSession, compiled: CompiledQuery, catalog: Mapping[str, str]) -> None:
    """Each catalog table the query reads becomes a temp view over its Delta location."""
    from delta.tables import DeltaTable

    views = views_for(catalog)
    for table in compiled.tables:
        location = catalog[table]
        if not DeltaTable.isDeltaTable(spark, location):
            raise LensError(f"catalog table {table} -> {location} is not a Delta table yet "
                            "(run `c360 nightly` first, or fix lens.catalog)")
        spark.read.format("delta").load(location).createOrReplaceTempView(views[table])


def check_session(spark: SparkSession) -> None:
    zone = spark.conf.get("spark.sql.session.timeZone")
    if zone not in UTC_NAMES:
        raise LensError(f"the Spark session time zone is {zone}; lens queries need UTC "
                        "(spark.sql.session.timeZone), times are UTC unless a query sets timezone")


def run_compiled(spark: SparkSession, compiled: CompiledQuery, catalog: Mapping[str, str]) -> DataFrame:
    check_session(spark)
    register_tables(spark, compiled, catalog)
    try:
        return spark.sql(compiled.sql)
    except (AnalysisException, ParseException) as exc:
        first = str(getattr(exc, "desc", None) or exc).strip().splitlines()[0]
        raise LensError(f"Spark rejected the compiled query (check the model's sql.query and columns "
                        f"against the catalog tables): {first}") from None


def query(spark: SparkSession, model_path: str | Path | Model, query: Query | Mapping | str | Path,
          run_date: dt.date, catalog: Mapping[str, str], *, dialect: str = "trino") -> DataFrame:
    """The Python API: answer `query` (a Query, a dict in the query format, or a query file) with
    the model at `model_path`; `catalog` maps model table names to Delta locations."""
    model = model_path if isinstance(model_path, Model) else load_model(model_path, default_dialect=dialect)
    compiled = compile_for(model, as_query(query), run_date, catalog)
    return run_compiled(spark, compiled, catalog)

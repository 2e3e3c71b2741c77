"""c360 lens: a YAML semantic layer (model loading, validation, query planning, SQL generation).

`lens.query(spark, model_path, query, run_date, catalog) -> DataFrame` is the Python API; the
planner (lens.model, lens.query_format, lens.planner, lens.sql) is pure Python and never needs Spark.
"""
from __future__ import annotations


def query(spark, model_path, query, run_date, catalog, **options):
    """Answer a lens query on Spark; see lens.execute.query (imported lazily: it needs pyspark)."""
    from lens.execute import query as run

    return run(spark, model_path, query, run_date, catalog, **options)

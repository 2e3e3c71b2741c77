"""c360 lens: a YAML semantic layer (model loading, validation, query planning, SQL generation).

`lens.query(spark, model_path, query, run_date, catalog) -> DataFrame` is the Python API. The
compiler is pure Python and never needs Spark: lens.model and lens.query_format read the YAML,
lens.planner turns a query into a logical plan (lens.plan), lens.passes optimises it and
lens.render writes it as Spark SQL (lens.planner.compile_query does all of it; lens.planner.explain
shows the plan). The lens imports nothing from jobs/.
"""
from __future__ import annotations


def query(spark, model_path, query, run_date, catalog, **options):
    """Answer a lens query on Spark; see lens.execute.query (imported lazily: it needs pyspark)."""
    from lens.execute import query as run

    return run(spark, model_path, query, run_date, catalog, **options)

"""`c360 lens-materialize` (nightly stage): write each configured lens query to gold/lens_<name>.

The queries are `lens.materialize` in the config (model, query file, optional variant). Each table is
overwritten for the run date, so re-running a date changes nothing. Every query is compiled before
any is written, then `spark.concurrent_jobs` of them are written at once. Before the activity stream
exists (a fresh warehouse) the stage does nothing and says so.
"""
from __future__ import annotations

import functools

from jobs.core import tables
from jobs.core.context import JobContext, RunParams, StageResult
from jobs.core.session import concurrently


def run(ctx: JobContext, params: RunParams, names: tuple[str, ...] = ()) -> StageResult:
    """Every lens.materialize query (or only `names`) to gold/lens_<name>."""
    from lens.errors import LensError
    from lens.execute import QUERY_ERRORS, compile_for, query_error, run_compiled, warehouse_catalog
    from lens.model import load_model
    from lens.query_format import load_query

    settings = ctx.config.lens
    wanted = list(names)
    items = [m for m in settings.materialize if not wanted or m.name in wanted]
    if wanted and len(items) != len(set(wanted)):
        known = ", ".join(m.name for m in settings.materialize) or "none"
        raise LensError(f"--name {', '.join(wanted)}: not all are in lens.materialize ({known})")
    if not items:
        return StageResult(metrics={"queries": 0}, notes=["no lens.materialize entries configured"])
    if not ctx.warehouse.exists(ctx.spark, tables.ACTIVITY_STREAM):
        return StageResult(metrics={"queries": 0},
                           notes=[f"{tables.ACTIVITY_STREAM} does not exist yet: no lens query materialized"])
    catalog = warehouse_catalog(settings.catalog, ctx.warehouse.root)
    models: dict = {}
    compiled = []
    for item in items:  # compiled first (pure Python): a model or query error stops the stage before any write
        path = item.model_path()
        if path not in models:
            models[path] = load_model(path, default_dialect=settings.dialect)
        compiled.append(compile_for(models[path], load_query(item.query_path(), item.variant), ctx.run_date,
                                    catalog, settings.as_of))

    def write(item, query) -> int:
        table = tables.lens_table(item.name)
        try:
            # the rows as the commit recorded them: the table is not read back to count them
            return ctx.warehouse.overwrite_counted(ctx.spark, run_compiled(ctx.spark, query, catalog), table)
        except LensError as exc:
            raise LensError(f"lens.materialize {item.name}: {exc}") from None
        except QUERY_ERRORS as exc:
            raise LensError(f"lens.materialize {item.name}: {query_error(exc)}") from None

    rows = sum(concurrently(ctx.spark, [functools.partial(write, item, query) for item, query in zip(items, compiled)],
                            ctx.config.spark.concurrent_jobs))
    return StageResult(metrics={"queries": len(items), "rows": rows},
                       notes=[f"wrote {', '.join(tables.lens_table(m.name) for m in items)}"])
